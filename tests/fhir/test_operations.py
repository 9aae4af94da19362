"""The operations a HAPI-trained engineer reaches for, answered as HAPI FHIR JPA does:
Patient/$everything, $meta, $meta-add, $meta-delete, $validate with mode and profile; and the
CapabilityStatement listing each of them and the interactions that work."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from fhirpy import SyncFHIRClient

from tests.hospitals import Tokens, auth

SYSTEM = "urn:oid:2.16.156.10011.1.2"
TAG = {"system": "urn:hie:test", "code": "reviewed"}
PROFILE = "http://example.org/StructureDefinition/hie-patient"


def create(client: TestClient, token: str, resource: dict[str, Any]) -> str:
    response = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=auth(token))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def patient(value: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}]}


def encounter(subject: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": subject},
        **extra,
    }


def condition(subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "code": {"text": "高血压"},
        "subject": {"reference": subject},
    }


def test_everything_returns_the_patient_and_their_records(
    client: TestClient, tokens: Tokens
) -> None:
    h1 = auth(tokens.h1)
    pid = create(client, tokens.h1, patient("EVERY-1"))
    org = create(client, tokens.h1, {"resourceType": "Organization", "name": "EVERY"})
    eid = create(
        client,
        tokens.h1,
        encounter(f"Patient/{pid}", serviceProvider={"reference": f"Organization/{org}"}),
    )
    cid = create(client, tokens.h1, condition(f"Patient/{pid}"))
    create(client, tokens.h1, condition(f"Patient/{create(client, tokens.h1, patient('OTHER'))}"))
    response = client.get(f"/fhir/Patient/{pid}/$everything", headers=h1)
    assert response.status_code == 200
    bundle = response.json()
    found = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]]
    assert found[0] == f"Patient/{pid}"
    assert set(found) == {
        f"Patient/{pid}",
        f"Encounter/{eid}",
        f"Condition/{cid}",
        f"Organization/{org}",
    }
    assert bundle["type"] == "searchset" and bundle["total"] == 4


def test_everything_with_type_since_and_paging(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    pid = create(client, tokens.h1, patient("EVERY-2"))
    for _ in range(3):
        create(client, tokens.h1, encounter(f"Patient/{pid}"))
    create(client, tokens.h1, condition(f"Patient/{pid}"))
    only = client.get(
        f"/fhir/Patient/{pid}/$everything", params={"_type": "Encounter"}, headers=h1
    ).json()
    assert {e["resource"]["resourceType"] for e in only["entry"]} == {"Encounter"}
    later = client.get(
        f"/fhir/Patient/{pid}/$everything", params={"_since": "2999-01-01"}, headers=h1
    ).json()
    assert later["total"] == 0
    first = client.get(
        f"/fhir/Patient/{pid}/$everything", params={"_count": "2"}, headers=h1
    ).json()
    assert len(first["entry"]) == 2
    links = {link["relation"]: link["url"] for link in first["link"]}
    rest = client.get(links["next"], headers=h1).json()
    ids = [e["resource"]["id"] for e in first["entry"] + rest["entry"]]
    while "next" in {link["relation"] for link in rest["link"]}:
        url = {link["relation"]: link["url"] for link in rest["link"]}["next"]
        rest = client.get(url, headers=h1).json()
        ids += [e["resource"]["id"] for e in rest["entry"]]
    assert len(ids) == 5 and len(set(ids)) == 5


def test_everything_of_another_institutions_patient_is_404(
    client: TestClient, tokens: Tokens
) -> None:
    pid = create(client, tokens.h2, patient("EVERY-H2"))
    response = client.get(f"/fhir/Patient/{pid}/$everything", headers=auth(tokens.h1))
    assert response.status_code == 404


def meta_parameters(**meta: Any) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": meta}]}


def test_meta_add_and_delete_change_no_version(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    pid = create(client, tokens.h1, patient("META-1"))
    added = client.post(
        f"/fhir/Patient/{pid}/$meta-add",
        json=meta_parameters(tag=[TAG], profile=[PROFILE]),
        headers=h1,
    )
    assert added.status_code == 200, added.text
    returned = added.json()["parameter"][0]["valueMeta"]
    assert returned["tag"] == [TAG] and returned["profile"] == [PROFILE]
    assert returned["versionId"] == "1"
    read = client.get(f"/fhir/Patient/{pid}", headers=h1).json()
    assert read["meta"]["tag"] == [TAG] and read["meta"]["versionId"] == "1"
    # Adding the same tag again keeps one.
    again = client.post(
        f"/fhir/Patient/{pid}/$meta-add", json=meta_parameters(tag=[TAG]), headers=h1
    ).json()
    assert again["parameter"][0]["valueMeta"]["tag"] == [TAG]
    meta = client.get(f"/fhir/Patient/{pid}/$meta", headers=h1).json()
    assert meta["resourceType"] == "Parameters"
    assert meta["parameter"][0]["valueMeta"]["tag"] == [TAG]
    removed = client.post(
        f"/fhir/Patient/{pid}/$meta-delete", json=meta_parameters(tag=[TAG]), headers=h1
    ).json()
    assert "tag" not in removed["parameter"][0]["valueMeta"]
    history = client.get(f"/fhir/Patient/{pid}/_history", headers=h1).json()
    assert len(history["entry"]) == 1
    # The resource sent back as read is still recognised as unchanged.
    current = client.get(f"/fhir/Patient/{pid}", headers=h1).json()
    same = client.put(f"/fhir/Patient/{pid}", json=current, headers=h1).json()
    assert same["meta"]["versionId"] == "1"


def test_meta_add_needs_a_meta_and_a_resource(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    pid = create(client, tokens.h1, patient("META-2"))
    bad = client.post(
        f"/fhir/Patient/{pid}/$meta-add", json={"resourceType": "Parameters"}, headers=h1
    )
    assert bad.status_code == 400
    missing = client.post(
        "/fhir/Patient/no-such/$meta-add", json=meta_parameters(tag=[TAG]), headers=h1
    )
    assert missing.status_code == 404
    assert client.get("/fhir/Patient/no-such/$meta", headers=h1).status_code == 404


def test_validate_valid_is_200_invalid_is_412(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    ok = client.post("/fhir/Patient/$validate", json=patient("VAL-1"), headers=h1)
    assert ok.status_code == 200 and ok.json()["resourceType"] == "OperationOutcome"
    bad = client.post(
        "/fhir/Patient/$validate", json={**patient("VAL-2"), "gender": "robot"}, headers=h1
    )
    assert bad.status_code == 412
    assert any(i["severity"] == "error" for i in bad.json()["issue"])


def test_validate_modes(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    with_id = {**patient("VAL-3"), "id": "given"}
    create_mode = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": with_id},
            {"name": "mode", "valueCode": "create"},
        ],
    }
    refused = client.post("/fhir/Patient/$validate", json=create_mode, headers=h1)
    assert refused.status_code == 422
    assert "ID must not be populated" in refused.json()["issue"][0]["diagnostics"]
    no_id = client.post(
        "/fhir/Patient/$validate", params={"mode": "update"}, json=patient("VAL-4"), headers=h1
    )
    assert no_id.status_code == 422
    assert (
        client.post(
            "/fhir/Patient/$validate", params={"mode": "sideways"}, json=patient("V"), headers=h1
        ).status_code
        == 400
    )


def test_validate_mode_delete_names_the_referrers(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    pid = create(client, tokens.h1, patient("VAL-DEL"))
    eid = create(client, tokens.h1, encounter(f"Patient/{pid}"))
    url = f"/fhir/Patient/{pid}/$validate"
    conflict = client.post(url, params={"mode": "delete"}, headers=h1)
    assert conflict.status_code == 409
    assert f"Encounter/{eid}" in conflict.json()["issue"][0]["diagnostics"]
    free = create(client, tokens.h1, patient("VAL-DEL-FREE"))
    ok = client.post(f"/fhir/Patient/{free}/$validate", params={"mode": "delete"}, headers=h1)
    assert ok.status_code == 200 and ok.json()["issue"][0]["diagnostics"] == "Ok to delete"
    assert (
        client.post("/fhir/Patient/$validate", params={"mode": "delete"}, headers=h1).status_code
        == 400
    )


def test_validate_the_stored_resource_and_a_profile(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    pid = create(client, tokens.h1, patient("VAL-STORED"))
    stored = client.post(f"/fhir/Patient/{pid}/$validate", headers=h1)
    assert stored.status_code == 200
    unknown_profile = client.post(
        "/fhir/Patient/$validate",
        params={"profile": "http://example.org/StructureDefinition/none"},
        json=patient("VAL-PROFILE"),
        headers=h1,
    )
    assert unknown_profile.status_code in (200, 412)
    assert "http://example.org/StructureDefinition/none" in unknown_profile.text


def test_capability_statement_lists_the_operations_and_interactions(
    client: TestClient,
) -> None:
    statement = client.get("/fhir/metadata").json()
    rest = statement["rest"][0]
    assert {"code": "history-system"} in rest["interaction"]
    assert "application/json-patch+json" in statement["patchFormat"]
    patient_entry = next(r for r in rest["resource"] if r["type"] == "Patient")
    operations = {o["name"] for o in patient_entry["operation"]}
    assert operations == {"validate", "meta", "meta-add", "meta-delete", "everything"}
    assert {"code": "patch"} in patient_entry["interaction"]
    assert patient_entry["conditionalDelete"] == "single"
    assert patient_entry["conditionalRead"] == "full-support"
    assert "enforced" in patient_entry["referencePolicy"]
    encounter_entry = next(r for r in rest["resource"] if r["type"] == "Encounter")
    assert "everything" not in {o["name"] for o in encounter_entry["operation"]}


def test_every_declared_operation_answers(client: TestClient, tokens: Tokens) -> None:
    """Nothing is listed that does not work: each operation of Patient answers 2xx."""
    h1 = auth(tokens.h1)
    pid = create(client, tokens.h1, patient("CAP-OPS"))
    entry = next(
        r
        for r in client.get("/fhir/metadata").json()["rest"][0]["resource"]
        if r["type"] == "Patient"
    )
    for operation in entry["operation"]:
        name = operation["name"]
        if name in ("meta-add", "meta-delete"):
            response = client.post(
                f"/fhir/Patient/{pid}/${name}", json=meta_parameters(tag=[TAG]), headers=h1
            )
        elif name == "validate":
            response = client.post(f"/fhir/Patient/{pid}/$validate", headers=h1)
        else:
            response = client.get(f"/fhir/Patient/{pid}/${name}", headers=h1)
        assert response.status_code == 200, (name, response.text)


def test_operations_through_fhirpy(live_server: str, tokens: Tokens) -> None:
    h1 = SyncFHIRClient(live_server, authorization=f"Bearer {tokens.h1}")
    person = h1.resource("Patient", identifier=[{"system": SYSTEM, "value": "FHIRPY-OPS"}])
    person.save()
    visit = h1.resource(
        "Encounter",
        **{k: v for k, v in encounter(f"Patient/{person.id}").items() if k != "resourceType"},
    )
    visit.save()
    everything = person.execute("$everything", method="get")
    assert {e["resource"]["resourceType"] for e in everything["entry"]} == {"Patient", "Encounter"}
    added = person.execute("$meta-add", data=meta_parameters(tag=[TAG]))
    assert added["parameter"][0]["valueMeta"]["tag"] == [TAG]
