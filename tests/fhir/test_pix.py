"""PIXm (ITI-83) ``Patient/$ihe-pix`` over the person index: one resident uploaded by two
hospitals under different identifiers."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from hie.config import Settings
from hie.storage import open_database
from hie.storage.tokens import create_token
from tests.hospitals import Tokens, auth

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
HEALTH_CARD = "urn:oid:2.16.156.10011.1.19"
INPATIENT = "urn:oid:2.16.156.10011.1.12"
ZHANG_ID = "11010519491231002X"
ZHANG_LEGACY = "110105491231002"
PIX = "/fhir/Patient/$ihe-pix"


def zhang(pid: str, *identifiers: tuple[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": s, "value": v} for s, v in identifiers],
        "name": [{"text": "张伟"}],
        "gender": "male",
        "birthDate": "1949-12-31",
    }


@pytest.fixture(scope="module")
def uploaded(client: TestClient, tokens: Tokens) -> None:
    for token, resource in (
        (tokens.h1, zhang("zhang-h1", (RESIDENT_ID, ZHANG_ID), (HEALTH_CARD, "HC-778"))),
        (tokens.h2, zhang("zhang-h2", (HEALTH_CARD, "HC-778"), (INPATIENT, "ZY-55"))),
    ):
        response = client.put(f"/fhir/Patient/{resource['id']}", json=resource, headers=auth(token))
        assert response.status_code == 201, response.text


def pix(client: TestClient, token: str, **params: str):
    return client.get(PIX, params=params, headers=auth(token))


def test_resident_id_cross_references_both_hospitals(
    client: TestClient, tokens: Tokens, uploaded: None
) -> None:
    response = pix(client, tokens.admin, sourceIdentifier=f"{RESIDENT_ID}|{ZHANG_LEGACY}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "Parameters"
    identifiers = [
        p["valueIdentifier"] for p in body["parameter"] if p["name"] == "targetIdentifier"
    ]
    assert {"system": HEALTH_CARD, "value": "HC-778"} in identifiers
    assert {
        "system": INPATIENT,
        "value": "ZY-55",
        "assigner": {"identifier": {"system": "urn:oid:2.16.156.10011.1.5", "value": "H2"}},
    } in identifiers
    targets = {
        (p["valueReference"]["reference"], p["valueReference"]["identifier"]["value"])
        for p in body["parameter"]
        if p["name"] == "targetId"
    }
    assert targets == {("Patient/zhang-h1", "H1"), ("Patient/zhang-h2", "H2")}


def test_target_system_limits_the_identifiers(
    client: TestClient, tokens: Tokens, uploaded: None
) -> None:
    response = pix(
        client,
        tokens.admin,
        sourceIdentifier="2.16.156.10011.1.12|ZY-55",
        targetSystem=RESIDENT_ID,
    )
    assert response.status_code == 200, response.text
    identifiers = [
        p["valueIdentifier"]
        for p in response.json()["parameter"]
        if p["name"] == "targetIdentifier"
    ]
    assert identifiers == [{"system": RESIDENT_ID, "value": ZHANG_ID}]


def test_unknown_source_is_404_unknown_target_domain_403_and_missing_source_400(
    client: TestClient, tokens: Tokens, uploaded: None
) -> None:
    assert pix(client, tokens.admin, sourceIdentifier=f"{HEALTH_CARD}|nobody").status_code == 404
    assert (
        pix(
            client,
            tokens.admin,
            sourceIdentifier=f"{HEALTH_CARD}|HC-778",
            targetSystem="urn:oid:1.2.3",
        ).status_code
        == 403
    )
    missing = pix(client, tokens.admin)
    assert missing.status_code == 400
    assert missing.json()["resourceType"] == "OperationOutcome"


def test_only_an_administrator_may_cross_reference_and_every_ask_is_audited(
    client: TestClient, tokens: Tokens, uploaded: None, fhir_settings: Settings
) -> None:
    refused = pix(client, tokens.h2, sourceIdentifier=f"{RESIDENT_ID}|{ZHANG_ID}")
    assert refused.status_code == 403
    assert pix(client, tokens.regulator, sourceIdentifier=f"{HEALTH_CARD}|HC-778").status_code == (
        403
    )
    client.get("/fhir/AuditEvent", headers=auth(tokens.admin))  # waits for queued read entries
    with psycopg.connect(fhir_settings.database_url.get_secret_value()) as conn:
        rows = conn.execute(
            "select outcome, detail::text from audit_event where action = 'fhir.pix'"
        ).fetchall()
    assert len(rows) >= 2
    with psycopg.connect(fhir_settings.database_url.get_secret_value()) as conn:
        answered = conn.execute(
            "select detail->'persons' from audit_event where action = 'fhir.pix'"
            " and outcome = 0 limit 1"
        ).fetchone()
    assert answered is not None and len(answered[0]) == 1  # which resident was looked up
    assert all(ZHANG_ID not in detail and ZHANG_LEGACY not in detail for _, detail in rows)


def test_pdqm_across_institutions_by_identifier_and_demographics(
    client: TestClient, tokens: Tokens, uploaded: None
) -> None:
    response = client.get(
        "/fhir/Patient",
        params={"identifier": f"2.16.156.10011.1.3|{ZHANG_LEGACY}"},
        headers=auth(tokens.admin),
    )
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    found = {(e["resource"]["id"], e["resource"]["meta"]["source"]) for e in entries}
    assert found == {
        ("zhang-h1", "urn:hie:institution:H1"),
        ("zhang-h2", "urn:hie:institution:H2"),
    }

    # By demographics: H1's Patient carries the name as text only, both match; a wrong birth
    # date matches none.
    by_name = client.get(
        "/fhir/Patient",
        params={"name": "张伟", "birthdate": "1949-12-31", "gender": "male"},
        headers=auth(tokens.admin),
    )
    assert by_name.status_code == 200, by_name.text
    assert {e["resource"]["id"] for e in by_name.json()["entry"]} == {"zhang-h1", "zhang-h2"}
    none = client.get(
        "/fhir/Patient",
        params={"name": "张伟", "birthdate": "1950-01-01"},
        headers=auth(tokens.admin),
    )
    assert none.json().get("entry", []) == []


def test_pdqm_brings_the_persons_records_at_other_institutions(
    client: TestClient, tokens: Tokens, uploaded: None
) -> None:
    # An older record at H1 under the legacy number, its birth date mistyped: the demographics
    # do not match it, the person index brings it along.
    old = zhang("zhang-old", (RESIDENT_ID, ZHANG_LEGACY))
    old["birthDate"] = "1949-12-13"
    assert (
        client.put("/fhir/Patient/zhang-old", json=old, headers=auth(tokens.h1)).status_code == 201
    )
    response = client.get(
        "/fhir/Patient",
        params={"name": "张伟", "birthdate": "1949-12-31"},
        headers=auth(tokens.admin),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    modes = {e["resource"]["id"]: e["search"]["mode"] for e in body["entry"]}
    assert modes == {"zhang-h1": "match", "zhang-h2": "match", "zhang-old": "include"}
    assert body["total"] == 2
    by_number = client.get(
        "/fhir/Patient", params={"identifier": f"{INPATIENT}|ZY-55"}, headers=auth(tokens.admin)
    )
    assert {e["resource"]["id"] for e in by_number.json()["entry"]} == {
        "zhang-h1",
        "zhang-h2",
        "zhang-old",
    }
    client.delete("/fhir/Patient/zhang-old", headers=auth(tokens.h1))


def test_pdqm_refuses_other_parameters_and_a_submitter_stays_in_its_institution(
    client: TestClient, tokens: Tokens, uploaded: None
) -> None:
    refused = client.get(
        "/fhir/Patient", params={"_has:Encounter:subject:status": "x"}, headers=auth(tokens.admin)
    )
    assert refused.status_code == 400
    own = client.get(
        "/fhir/Patient", params={"identifier": f"{HEALTH_CARD}|HC-778"}, headers=auth(tokens.h2)
    )
    assert own.status_code == 200
    assert {e["resource"]["id"] for e in own.json()["entry"]} == {"zhang-h2"}


@pytest.fixture(scope="module")
def clinician(fhir_settings: Settings, tokens: Tokens) -> str:
    """A clinician at H2."""
    database = open_database(fhir_settings)
    try:
        with database.transaction() as tx:
            return create_token(
                tx.conn, role="clinician", institution_code="H2", label="", actor="t"
            )[1]
    finally:
        database.close()


def test_a_clinician_looks_residents_up_across_institutions(
    client: TestClient, clinician: str, uploaded: None
) -> None:
    found = pix(client, clinician, sourceIdentifier=f"{HEALTH_CARD}|HC-778")
    assert found.status_code == 200, found.text
    searched = client.get(
        "/fhir/Patient", params={"identifier": f"{HEALTH_CARD}|HC-778"}, headers=auth(clinician)
    )
    # Without the resident's consent, another hospital's Patient is not shown (tests/consent).
    assert {e["resource"]["id"] for e in searched.json()["entry"]} == {"zhang-h2"}


def test_a_clinician_reads_its_own_institution_and_writes_nothing(
    client: TestClient, clinician: str, uploaded: None
) -> None:
    assert client.get("/fhir/Patient/zhang-h2", headers=auth(clinician)).status_code == 200
    # Another institution's records wait for consent: 403 whether the record exists or not.
    other = auth(clinician, **{"X-HIE-Institution": "H1"})
    existing = client.get("/fhir/Patient/zhang-h1", headers=other)
    missing = client.get("/fhir/Patient/nobody", headers=other)
    assert existing.status_code == missing.status_code == 403
    assert existing.json() == missing.json()
    written = client.put(
        "/fhir/Patient/zhang-h2",
        json=zhang("zhang-h2", (HEALTH_CARD, "HC-778")),
        headers=auth(clinician),
    )
    assert written.status_code == 403


def test_pdqm_refuses_a_modifier_on_identifier(
    client: TestClient, tokens: Tokens, uploaded: None
) -> None:
    response = client.get(
        "/fhir/Patient",
        params={"identifier:of-type": f"{HEALTH_CARD}|HC-778"},
        headers=auth(tokens.admin),
    )
    assert response.status_code == 400
