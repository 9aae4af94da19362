"""PATCH as HAPI FHIR JPA answers it: JSON Patch and FHIRPath Patch, If-Match, validation of
the result, no new version without a change, conditional PATCH, PATCH entries in Bundles."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhirpy import SyncFHIRClient

from tests.hospitals import Tokens, auth

JSON_PATCH = "application/json-patch+json"
FHIR_JSON = "application/fhir+json"
SYSTEM = "urn:oid:2.16.156.10011.1.2"


def new_patient(client: TestClient, token: str, value: str, **extra: Any) -> dict[str, Any]:
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": value}],
        "gender": "female",
        **extra,
    }
    response = client.post("/fhir/Patient", json=body, headers=auth(token))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def json_patch(
    client: TestClient, url: str, token: str, operations: list[Any], **headers: str
) -> Any:
    return client.patch(
        url,
        content=json.dumps(operations),
        headers=auth(token, **{"Content-Type": JSON_PATCH, **headers}),
    )


def operation(kind: str, path: str, **parts: Any) -> dict[str, Any]:
    part: list[dict[str, Any]] = [
        {"name": "type", "valueCode": kind},
        {"name": "path", "valueString": path},
    ]
    for name, value in parts.items():
        if name == "name":
            part.append({"name": "name", "valueString": value})
        elif name in ("index", "source", "destination"):
            part.append({"name": name, "valueInteger": value})
        else:  # value_<type>
            part.append({"name": "value", name.removeprefix("value_"): value})
    return {"name": "operation", "part": part}


def fhirpath_patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


def test_json_patch_changes_the_resource_in_a_new_version(
    client: TestClient, tokens: Tokens
) -> None:
    made = new_patient(client, tokens.h1, "PATCH-1")
    url = f"/fhir/Patient/{made['id']}"
    response = json_patch(
        client,
        url,
        tokens.h1,
        [
            {"op": "replace", "path": "/gender", "value": "male"},
            {"op": "add", "path": "/birthDate", "value": "1970-05-06"},
        ],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["gender"] == "male" and body["birthDate"] == "1970-05-06"
    assert body["meta"]["versionId"] == "2"
    assert response.headers["ETag"] == 'W/"2"'
    assert client.get(url, headers=auth(tokens.h1)).json()["gender"] == "male"


def test_json_patch_test_operation_failing_is_400(client: TestClient, tokens: Tokens) -> None:
    made = new_patient(client, tokens.h1, "PATCH-TEST")
    response = json_patch(
        client,
        f"/fhir/Patient/{made['id']}",
        tokens.h1,
        [{"op": "test", "path": "/gender", "value": "male"}],
    )
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "Failed to apply patch" in response.json()["issue"][0]["diagnostics"]


def test_patch_without_change_makes_no_new_version(client: TestClient, tokens: Tokens) -> None:
    made = new_patient(client, tokens.h1, "PATCH-SAME")
    response = json_patch(
        client,
        f"/fhir/Patient/{made['id']}",
        tokens.h1,
        [{"op": "replace", "path": "/gender", "value": "female"}],
    )
    assert response.status_code == 200
    assert response.json()["meta"]["versionId"] == "1"


def test_patch_with_stale_if_match_is_412(client: TestClient, tokens: Tokens) -> None:
    made = new_patient(client, tokens.h1, "PATCH-IFMATCH")
    url = f"/fhir/Patient/{made['id']}"
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    assert json_patch(client, url, tokens.h1, ops, **{"If-Match": 'W/"1"'}).status_code == 200
    stale = json_patch(
        client,
        url,
        tokens.h1,
        [{"op": "replace", "path": "/gender", "value": "other"}],
        **{"If-Match": 'W/"1"'},
    )
    assert stale.status_code == 412
    assert client.get(url, headers=auth(tokens.h1)).json()["gender"] == "male"


def test_patch_making_the_resource_invalid_is_422_located(
    client: TestClient, tokens: Tokens
) -> None:
    made = new_patient(client, tokens.h1, "PATCH-INVALID")
    url = f"/fhir/Patient/{made['id']}"
    response = json_patch(
        client, url, tokens.h1, [{"op": "replace", "path": "/gender", "value": "sometimes"}]
    )
    assert response.status_code == 422
    issues = response.json()["issue"]
    assert any("Patient.gender" in str(i.get("expression")) for i in issues), issues
    assert client.get(url, headers=auth(tokens.h1)).json()["meta"]["versionId"] == "1"


def test_patch_cannot_change_the_id(client: TestClient, tokens: Tokens) -> None:
    made = new_patient(client, tokens.h1, "PATCH-ID")
    response = json_patch(
        client,
        f"/fhir/Patient/{made['id']}",
        tokens.h1,
        [{"op": "replace", "path": "/id", "value": "other"}],
    )
    assert response.status_code == 400


def test_patch_of_unknown_and_deleted_resources(client: TestClient, tokens: Tokens) -> None:
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    assert json_patch(client, "/fhir/Patient/no-such", tokens.h1, ops).status_code == 404
    made = new_patient(client, tokens.h1, "PATCH-GONE")
    client.delete(f"/fhir/Patient/{made['id']}", headers=auth(tokens.h1))
    assert json_patch(client, f"/fhir/Patient/{made['id']}", tokens.h1, ops).status_code == 410


def test_patch_of_another_institutions_resource_is_404(client: TestClient, tokens: Tokens) -> None:
    made = new_patient(client, tokens.h1, "PATCH-H1")
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    assert json_patch(client, f"/fhir/Patient/{made['id']}", tokens.h2, ops).status_code == 404


def test_patch_body_of_another_media_type_is_415_and_unreadable_is_400(
    client: TestClient, tokens: Tokens
) -> None:
    made = new_patient(client, tokens.h1, "PATCH-MEDIA")
    url = f"/fhir/Patient/{made['id']}"
    text = client.patch(
        url, content=b"gender=male", headers=auth(tokens.h1, **{"Content-Type": "text/plain"})
    )
    assert text.status_code == 415
    not_a_patch = client.patch(url, json={"gender": "male"}, headers=auth(tokens.h1))
    assert not_a_patch.status_code == 400


def test_fhirpath_patch_add_insert_replace_delete_move(client: TestClient, tokens: Tokens) -> None:
    made = new_patient(
        client,
        tokens.h1,
        "FP-1",
        name=[{"family": "张", "given": ["三"]}],
        birthDate="1960-01-01",
    )
    url = f"/fhir/Patient/{made['id']}"
    body = fhirpath_patch(
        operation("replace", "Patient.gender", value_valueCode="male"),
        operation("add", "Patient", name="active", value_valueBoolean=True),
        operation(
            "add",
            "Patient",
            name="telecom",
            value_valueContactPoint={"system": "phone", "value": "025-1"},
        ),
        operation(
            "insert",
            "Patient.identifier",
            index=0,
            value_valueIdentifier={"system": "urn:oid:2.16.156.10011.1.5", "value": "X-1"},
        ),
        operation("move", "Patient.identifier", source=0, destination=1),
        operation("delete", "Patient.birthDate"),
        operation("add", "Patient.name[0]", name="given", value_valueString="丰"),
    )
    response = client.patch(url, json=body, headers=auth(tokens.h1, **{"Content-Type": FHIR_JSON}))
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["gender"] == "male" and patched["active"] is True
    assert patched["telecom"] == [{"system": "phone", "value": "025-1"}]
    assert [i["value"] for i in patched["identifier"]] == ["FP-1", "X-1"]
    assert "birthDate" not in patched
    assert patched["name"][0]["given"] == ["三", "丰"]
    assert patched["meta"]["versionId"] == "2"


def test_fhirpath_patch_with_where_and_a_bad_path(client: TestClient, tokens: Tokens) -> None:
    made = new_patient(client, tokens.h1, "FP-WHERE")
    url = f"/fhir/Patient/{made['id']}"
    headers = auth(tokens.h1, **{"Content-Type": FHIR_JSON})
    body = fhirpath_patch(
        operation("delete", f"Patient.identifier.where(system='{SYSTEM}')"),
        operation(
            "add",
            "Patient",
            name="identifier",
            value_valueIdentifier={"system": SYSTEM, "value": "FP-WHERE-2"},
        ),
    )
    response = client.patch(url, json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["identifier"] == [{"system": SYSTEM, "value": "FP-WHERE-2"}]
    bad = client.patch(
        url,
        json=fhirpath_patch(operation("replace", "Patient.(", value_valueCode="x")),
        headers=headers,
    )
    assert bad.status_code == 400
    assert bad.json()["issue"][0]["expression"] == ["Parameters.parameter[0]"]
    # A replace must select exactly one element.
    two = fhirpath_patch(
        operation(
            "add",
            "Patient",
            name="identifier",
            value_valueIdentifier={"system": SYSTEM, "value": "B"},
        ),
        operation("replace", "Patient.identifier.value", value_valueString="x"),
    )
    several = client.patch(url, json=two, headers=headers)
    assert several.status_code == 400
    assert several.json()["issue"][0]["expression"] == ["Parameters.parameter[1]"]


def test_conditional_patch(client: TestClient, tokens: Tokens) -> None:
    made = new_patient(client, tokens.h1, "CPATCH-1")
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    url = f"/fhir/Patient?identifier={SYSTEM}|CPATCH-1"
    response = json_patch(client, url, tokens.h1, ops)
    assert response.status_code == 200
    assert response.json()["id"] == made["id"]
    none = json_patch(client, f"/fhir/Patient?identifier={SYSTEM}|CPATCH-NONE", tokens.h1, ops)
    assert none.status_code == 404
    new_patient(client, tokens.h1, "CPATCH-2")
    new_patient(client, tokens.h1, "CPATCH-2")
    several = json_patch(client, f"/fhir/Patient?identifier={SYSTEM}|CPATCH-2", tokens.h1, ops)
    assert several.status_code == 412


def test_patch_entries_in_a_transaction(client: TestClient, tokens: Tokens) -> None:
    first = new_patient(client, tokens.h1, "TXPATCH-1")
    second = new_patient(client, tokens.h1, "TXPATCH-2")
    binary = {
        "resourceType": "Binary",
        "contentType": JSON_PATCH,
        "data": base64.b64encode(
            json.dumps([{"op": "replace", "path": "/gender", "value": "male"}]).encode()
        ).decode(),
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": binary,
                "request": {"method": "PATCH", "url": f"Patient/{first['id']}"},
            },
            {
                "resource": fhirpath_patch(
                    operation("replace", "Patient.gender", value_valueCode="other")
                ),
                "request": {"method": "PATCH", "url": f"Patient?identifier={SYSTEM}|TXPATCH-2"},
            },
        ],
    }
    response = client.post("/fhir", json=bundle, headers=auth(tokens.h1))
    assert response.status_code == 200, response.text
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["200 OK", "200 OK"]
    h1 = auth(tokens.h1)
    assert client.get(f"/fhir/Patient/{first['id']}", headers=h1).json()["gender"] == "male"
    assert client.get(f"/fhir/Patient/{second['id']}", headers=h1).json()["gender"] == "other"
    # A failing PATCH entry rolls the whole transaction back.
    bundle["entry"][1]["request"]["ifMatch"] = 'W/"1"'
    failed = client.post("/fhir", json=bundle, headers=h1)
    assert failed.status_code == 412


MALE = fhirpath_patch(operation("replace", "Patient.gender", value_valueCode="male"))


def test_patch_entry_in_a_batch_fails_alone(client: TestClient, tokens: Tokens) -> None:
    made = new_patient(client, tokens.h1, "BATCHPATCH-1")
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": fhirpath_patch(
                    operation("replace", "Patient.gender", value_valueCode="male")
                ),
                "request": {"method": "PATCH", "url": f"Patient/{made['id']}"},
            },
            {
                "resource": fhirpath_patch(
                    operation("replace", "Patient.gender", value_valueCode="male")
                ),
                "request": {"method": "PATCH", "url": "Patient/not-there"},
            },
        ],
    }
    response = client.post("/fhir", json=batch, headers=auth(tokens.h1))
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0] == "200 OK" and statuses[1].startswith("404")


def test_patch_is_audited_as_an_update(client: TestClient, tokens: Tokens) -> None:
    made = new_patient(client, tokens.h1, "PATCH-AUDIT")
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    json_patch(client, f"/fhir/Patient/{made['id']}", tokens.h1, ops)
    events = client.get(
        "/fhir/AuditEvent",
        params={"entity": f"Patient/{made['id']}"},
        headers=auth(tokens.admin),
    ).json()
    actions = [e["resource"]["action"] for e in events.get("entry", [])]
    assert "U" in actions


@pytest.fixture(scope="module")
def fhirpy_h1(live_server: str, tokens: Tokens) -> SyncFHIRClient:
    return SyncFHIRClient(live_server, authorization=f"Bearer {tokens.h1}")


def test_fhirpath_patch_through_fhirpy(fhirpy_h1: SyncFHIRClient) -> None:
    patient = fhirpy_h1.resource(
        "Patient", identifier=[{"system": SYSTEM, "value": "FHIRPY-PATCH"}], gender="female"
    )
    patient.save()
    patched = fhirpy_h1.execute(
        f"Patient/{patient.id}",
        method="patch",
        data=fhirpath_patch(operation("replace", "Patient.gender", value_valueCode="male")),
    )
    assert patched["gender"] == "male"
    patient.refresh()
    assert patient["gender"] == "male" and patient.meta.versionId == "2"


def test_fhirpath_patch_in_xml(client: TestClient, tokens: Tokens) -> None:
    made = new_patient(client, tokens.h1, "FP-XML")
    body = b"""<Parameters xmlns="http://hl7.org/fhir">
  <parameter>
    <name value="operation"/>
    <part><name value="type"/><valueCode value="replace"/></part>
    <part><name value="path"/><valueString value="Patient.gender"/></part>
    <part><name value="value"/><valueCode value="male"/></part>
  </parameter>
</Parameters>"""
    response = client.patch(
        f"/fhir/Patient/{made['id']}",
        content=body,
        headers=auth(tokens.h1, **{"Content-Type": "application/fhir+xml"}),
    )
    assert response.status_code == 200, response.text
    assert response.json()["gender"] == "male"
