"""Status codes and headers of each interaction, with TestClient."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from hie.config import Settings
from tests.hospitals import Tokens, auth

RESIDENT_ID = "320114198001011233"


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "gender": "female", **extra}


def ident(value: str) -> list[dict[str, str]]:
    return [{"system": "urn:oid:2.16.156.10011.1.2", "value": value}]


def test_metadata_lists_what_is_supported(client: TestClient) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = response.json()
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch", "history-system"}
    resources = {r["type"]: r for r in rest["resource"]}
    assert "Account" not in resources
    observation = {p["name"] for p in resources["Observation"]["searchParam"]}
    assert {
        "_id",
        "_lastUpdated",
        "identifier",
        "patient",
        "subject",
        "date",
        "code",
    } <= observation
    assert "class" in {p["name"] for p in resources["Encounter"]["searchParam"]}
    assert "Observation:patient" in resources["Patient"]["searchRevInclude"]


def test_create_read_vread_headers(client: TestClient, tokens: Tokens) -> None:
    created = client.post("/fhir/Patient", json=patient(id="ignored"), headers=auth(tokens.h1))
    assert created.status_code == 201
    body = created.json()
    assert body["id"] != "ignored"
    assert created.headers["etag"] == 'W/"1"'
    assert created.headers["location"].endswith(f"/fhir/Patient/{body['id']}/_history/1")
    assert created.headers["last-modified"].endswith("GMT")
    read = client.get(f"/fhir/Patient/{body['id']}", headers=auth(tokens.h1))
    assert read.status_code == 200 and read.headers["etag"] == 'W/"1"'
    assert (
        client.get(f"/fhir/Patient/{body['id']}/_history/1", headers=auth(tokens.h1)).status_code
        == 200
    )
    assert (
        client.get(f"/fhir/Patient/{body['id']}/_history/9", headers=auth(tokens.h1)).status_code
        == 404
    )
    assert client.get("/fhir/Patient/nope", headers=auth(tokens.h1)).status_code == 404
    assert client.get("/fhir/Account/x", headers=auth(tokens.h1)).status_code == 404
    assert client.get("/fhir/Patient/bad$id", headers=auth(tokens.h1)).status_code == 400


def test_update_with_client_id_if_match_and_no_op(client: TestClient, tokens: Tokens) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    url = f"/fhir/Patient/{pid}"
    first = client.put(url, json=patient(id=pid), headers=auth(tokens.h1))
    assert first.status_code == 201 and first.headers["etag"] == 'W/"1"'
    same = client.put(url, json=first.json(), headers=auth(tokens.h1))  # meta as served
    assert same.status_code == 200 and same.headers["etag"] == 'W/"1"'
    changed = client.put(
        url, json=patient(id=pid, gender="male"), headers=auth(tokens.h1, **{"If-Match": 'W/"1"'})
    )
    assert changed.status_code == 200 and changed.headers["etag"] == 'W/"2"'
    stale = client.put(
        url, json=patient(id=pid, gender="other"), headers=auth(tokens.h1, **{"If-Match": 'W/"1"'})
    )
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    mismatch = client.put(url, json=patient(id="other"), headers=auth(tokens.h1))
    assert mismatch.status_code == 400
    history = client.get(f"{url}/_history", headers=auth(tokens.h1)).json()
    assert len(history["entry"]) == 2


def test_prefer_return(client: TestClient, tokens: Tokens) -> None:
    minimal = client.post(
        "/fhir/Patient", json=patient(), headers=auth(tokens.h1, Prefer="return=minimal")
    )
    assert minimal.status_code == 201 and minimal.content == b""
    assert "location" in minimal.headers
    outcome = client.post(
        "/fhir/Patient", json=patient(), headers=auth(tokens.h1, Prefer="return=OperationOutcome")
    )
    assert outcome.json()["resourceType"] == "OperationOutcome"


def test_delete_then_gone(client: TestClient, tokens: Tokens) -> None:
    pid = client.post("/fhir/Patient", json=patient(), headers=auth(tokens.h1)).json()["id"]
    deleted = client.delete(f"/fhir/Patient/{pid}", headers=auth(tokens.h1))
    assert deleted.status_code == 200 and deleted.headers["etag"] == 'W/"2"'
    assert client.get(f"/fhir/Patient/{pid}", headers=auth(tokens.h1)).status_code == 410
    assert client.delete(f"/fhir/Patient/{pid}", headers=auth(tokens.h1)).status_code == 204
    again = client.put(f"/fhir/Patient/{pid}", json=patient(id=pid), headers=auth(tokens.h1))
    assert again.status_code == 200 and again.headers["etag"] == 'W/"3"'


def test_refusals(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    assert client.post("/fhir/Patient", json=patient()).status_code == 401
    bad_json = client.post("/fhir/Patient", content=b"{not json", headers=h1)
    assert bad_json.status_code == 400
    assert bad_json.json()["resourceType"] == "OperationOutcome"
    wrong_type = client.post("/fhir/Patient", json={"resourceType": "Encounter"}, headers=h1)
    assert wrong_type.status_code == 400
    invalid = client.post("/fhir/Patient", json=patient(gender=5), headers=h1)
    assert invalid.status_code == 422
    text = client.post(
        "/fhir/Patient", content=b"female", headers={**h1, "Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    regulator_write = client.post(
        "/fhir/Patient",
        json=patient(),
        headers=auth(tokens.regulator, **{"X-HIE-Institution": "H1"}),
    )
    assert regulator_write.status_code == 403
    no_institution = client.get("/fhir/Patient", headers=auth(tokens.admin))
    assert no_institution.status_code == 400
    other = client.get("/fhir/Patient", headers=auth(tokens.h1, **{"X-HIE-Institution": "H2"}))
    assert other.status_code == 403
    unknown = client.get("/fhir/Patient", headers=auth(tokens.admin, **{"X-HIE-Institution": "ZZ"}))
    assert unknown.status_code == 404


def test_admin_acts_for_an_institution_it_names(client: TestClient, tokens: Tokens) -> None:
    admin_h2 = auth(tokens.admin, **{"X-HIE-Institution": "H2"})
    pid = client.post(
        "/fhir/Patient", json=patient(identifier=ident("ADMIN-1")), headers=admin_h2
    ).json()["id"]
    assert client.get(f"/fhir/Patient/{pid}", headers=auth(tokens.h2)).status_code == 200
    assert client.get(f"/fhir/Patient/{pid}", headers=auth(tokens.h1)).status_code == 404
    # A regulator sees figures, not residents' records.
    regulator = auth(tokens.regulator, **{"X-HIE-Institution": "H2"})
    assert client.get(f"/fhir/Patient/{pid}", headers=regulator).status_code == 403


def test_conditional_create_and_update(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    condition = "identifier=urn:oid:2.16.156.10011.1.2|COND-1"
    body = patient(identifier=ident("COND-1"))
    first = client.post("/fhir/Patient", json=body, headers={**h1, "If-None-Exist": condition})
    again = client.post("/fhir/Patient", json=body, headers={**h1, "If-None-Exist": condition})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    updated = client.put(f"/fhir/Patient?{condition}", json={**body, "gender": "male"}, headers=h1)
    assert updated.status_code == 200 and updated.json()["id"] == first.json()["id"]
    fresh = client.put(
        "/fhir/Patient?identifier=urn:oid:2.16.156.10011.1.2|COND-2",
        json=patient(identifier=ident("COND-2")),
        headers=h1,
    )
    assert fresh.status_code == 201
    # HL7 China's resident-ID system is an alias of the national one: stored canonical, and
    # found by either.
    resident = [{"system": "urn:oid:2.16.840.1.113883.2.23.1.19.1", "value": RESIDENT_ID}]
    made = client.post("/fhir/Patient", json=patient(identifier=resident), headers=h1).json()
    assert made["identifier"][0]["system"] == "urn:oid:2.16.156.10011.1.3"
    for system in ("urn:oid:2.16.156.10011.1.3", "urn:oid:2.16.840.1.113883.2.23.1.19.1"):
        found = client.get(f"/fhir/Patient?identifier={system}|{RESIDENT_ID}", headers=h1)
        assert [e["resource"]["id"] for e in found.json()["entry"]] == [made["id"]]
    client.post("/fhir/Patient", json=body, headers=h1)  # a second COND-1, unconditionally
    multiple = client.post("/fhir/Patient", json=body, headers={**h1, "If-None-Exist": condition})
    assert multiple.status_code == 412


def test_bundles(client: TestClient, tokens: Tokens, fhir_settings: Any) -> None:
    h1 = auth(tokens.h1)
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {"resource": patient(gender=7), "request": {"method": "POST", "url": "Patient"}},
            {"request": {"method": "GET", "url": "Patient?_count=1"}},
        ],
    }
    response = client.post("/fhir", json=batch, headers=h1)
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert (
        statuses[0] == "201 Created" and statuses[1].startswith("422") and statuses[2] == "200 OK"
    )

    transaction = {**batch, "type": "transaction"}
    failed = client.post("/fhir", json=transaction, headers=h1)
    assert failed.status_code == 422
    unresolved = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:missing"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        ],
    }
    assert client.post("/fhir", json=unresolved, headers=h1).status_code == 422
    too_big = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Patient"}}]
        * (fhir_settings.max_bundle_entries + 1),
    }
    refused = client.post("/fhir", json=too_big, headers=h1)
    assert refused.status_code == 413
    (issue,) = refused.json()["issue"]
    assert issue["code"] == "too-costly"
    assert f"at most {fhir_settings.max_bundle_entries} " in issue["diagnostics"]
    assert "$import" in issue["diagnostics"]
    document = client.post(
        "/fhir", json={"resourceType": "Bundle", "type": "collection"}, headers=h1
    )
    assert document.status_code == 400


def _document_reference(document: bytes) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [
            {
                "attachment": {
                    "contentType": "application/hl7-cda+xml",
                    "data": base64.b64encode(document).decode(),
                }
            }
        ],
    }


def test_mhd_document_goes_through_the_cda_pipeline(
    client: TestClient, tokens: Tokens, fhir_settings: Settings
) -> None:
    fixture = (
        Path(__file__).resolve().parents[1] / "fixtures" / "cda" / "C0002-valid.xml"
    ).read_bytes()
    h1 = auth(tokens.h1)
    broken = client.post(
        "/fhir/DocumentReference", json=_document_reference(b"<ClinicalDocument/>"), headers=h1
    )
    assert broken.status_code == 422
    assert all(
        i["expression"] == ["DocumentReference.content.attachment.data"]
        for i in broken.json()["issue"]
    )

    theirs = client.post("/fhir/DocumentReference", json=_document_reference(fixture), headers=h1)
    assert theirs.status_code == 422
    assert "submission.custodian" in {
        i["details"]["coding"][0]["code"] for i in theirs.json()["issue"]
    }

    ours = fixture.replace(
        b'root="2.16.156.10011.1.5" extension="455755678"',
        b'root="2.16.156.10011.1.5" extension="H1"',
    )
    stored = client.post("/fhir/DocumentReference", json=_document_reference(ours), headers=h1)
    assert stored.status_code == 201, stored.text
    url = fhir_settings.database_url.get_secret_value()  # type: ignore[union-attr]
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select table_code from record_head where institution_code = 'H1'"
            " and table_code in ('C0002', 'FHIR.DocumentReference')"
        ).fetchall()
        visits = conn.execute(
            "select sum(units) from monthly_unit_count"
            " where institution_code = 'H1' and figure = 'outpatient_visits'"
        ).fetchone()
    assert sorted(t for (t,) in tables) == ["C0002", "FHIR.DocumentReference"]
    assert visits == (1,)


def test_validate_operation(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    valid = client.post("/fhir/Patient/$validate", json=patient(), headers=h1)
    assert valid.status_code == 200
    assert all(i["severity"] not in ("error", "fatal") for i in valid.json()["issue"])
    wrapped = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": patient(gender=3)}],
    }
    invalid = client.post("/fhir/Patient/x1/$validate", json=wrapped, headers=h1)
    assert invalid.status_code == 412  # HAPI: a failed validation is 412 with the outcome
    assert any(i["severity"] == "error" for i in invalid.json()["issue"])
    assert client.get("/fhir/Patient?_id=x1", headers=h1).json().get("total") == 0


def test_rejections_are_counted_for_the_report(
    client: TestClient, tokens: Tokens, fhir_settings: Any
) -> None:
    from hie.storage import open_database

    rejected = (
        "select coalesce(sum(rejected), 0) as n from daily_rejection where institution_code = 'H2'"
    )
    last_upload = (
        "select outcome, http_status from upload where institution_code = 'H2'"
        " and channel = 'fhir' order by received_at desc limit 1"
    )
    database = open_database(fhir_settings, migrate=False)
    try:
        with database.connection() as conn:
            before = conn.execute(rejected).fetchone()["n"]
            client.post("/fhir/Patient", json=patient(gender=5), headers=auth(tokens.h2))
            after = conn.execute(rejected).fetchone()["n"]
            uploads = conn.execute(last_upload).fetchone()
    finally:
        database.close()
    assert after == before + 1
    assert uploads == {"outcome": "rejected", "http_status": 422}


def test_an_admin_backfill_keeps_a_given_receipt_time(client: TestClient, tokens: Tokens) -> None:
    patient = {"resourceType": "Patient", "gender": "female", "birthDate": "1980-02-02"}
    when = "2019-07-31T23:59:59+08:00"
    refused = client.post(
        "/fhir/Patient", json=patient, headers=auth(tokens.h1, **{"X-HIE-Received-At": when})
    )
    assert refused.status_code == 403
    kept = client.post(
        "/fhir/Patient",
        json=patient,
        headers=auth(tokens.admin, **{"X-HIE-Institution": "H2", "X-HIE-Received-At": when}),
    )
    assert kept.status_code == 201
    assert kept.headers["last-modified"] == "Wed, 31 Jul 2019 15:59:59 GMT"
    naive = client.post(
        "/fhir/Patient",
        json=patient,
        headers=auth(
            tokens.admin, **{"X-HIE-Institution": "H2", "X-HIE-Received-At": "2019-07-31T23:59:59"}
        ),
    )
    assert naive.status_code == 400
