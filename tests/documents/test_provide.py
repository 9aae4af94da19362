"""ITI-65 Provide Document Bundle, tested against what IHE MHD says a Document Recipient does:
the transaction is atomic (one bad entry and nothing is stored), the metadata MHD requires is
checked, attachment hash and size must match the Binary, and a replace supersedes its target."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from hie.fhir.xml_format import to_fhir_xml
from tests.conftest import CdaFixtures
from tests.documents.conftest import Tokens, auth

FHIR_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"
MHD = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/"
PATIENT_RECORD = "urn:oid:2.16.156.10011.1.2|HR-3201-0001"  # the Patient fixture's record number


def sha1(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()


def document(
    number: int, data: bytes, content_type: str = "text/plain", **extra: Any
) -> list[dict[str, Any]]:
    """A DocumentReference entry and its Binary entry."""
    attachment = {
        "contentType": content_type,
        "url": f"urn:uuid:00000000-0000-0000-0000-0000000b{number:04d}",
        "size": len(data),
        "hash": sha1(data),
    }
    reference = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:1.2.156.9.{number}"},
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]},
        "category": [{"coding": [{"system": "urn:hie:document-class", "code": "progress"}]}],
        "subject": {"reference": "Patient/p1"},
        "date": "2026-11-30T10:00:00+08:00",
        "content": [{"attachment": attachment}],
        **extra,
    }
    binary = {
        "resourceType": "Binary",
        "contentType": content_type,
        "data": base64.b64encode(data).decode(),
    }
    return [
        {
            "fullUrl": f"urn:uuid:00000000-0000-0000-0000-0000000d{number:04d}",
            "resource": reference,
            "request": {"method": "POST", "url": "DocumentReference"},
        },
        {
            "fullUrl": attachment["url"],
            "resource": binary,
            "request": {"method": "POST", "url": "Binary"},
        },
    ]


def provide_bundle(*documents: list[dict[str, Any]], profile: str = "Minimal") -> dict[str, Any]:
    entries = [e for pair in documents for e in pair]
    submission_set = {
        "resourceType": "List",
        "extension": [
            {"url": f"{MHD}ihe-sourceId", "valueIdentifier": {"value": "urn:oid:1.2.156.9"}}
        ],
        "identifier": [{"use": "usual", "system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.9"}],
        "status": "current",
        "mode": "working",
        "code": {
            "coding": [
                {
                    "system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes",
                    "code": "submissionset",
                }
            ]
        },
        "subject": {"reference": "Patient/p1"},
        "date": "2026-11-30T10:00:00+08:00",
        "entry": [
            {"item": {"reference": e["fullUrl"]}}
            for e in entries
            if e["resource"]["resourceType"] == "DocumentReference"
        ],
    }
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [f"{MHD}IHE.MHD.{profile}.ProvideBundle"]},
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:00000000-0000-0000-0000-000000000501",
                "resource": submission_set,
                "request": {"method": "POST", "url": "List"},
            },
            *entries,
        ],
    }


@pytest.fixture
def patient(client: TestClient, tokens: Tokens) -> None:
    body = json.loads((FHIR_FIXTURES / "patient-cn.json").read_text())
    response = client.put("/fhir/Patient/p1", json=body, headers=auth(tokens.a))
    assert response.status_code in (200, 201), response.text


def post(client: TestClient, token: str, bundle: dict[str, Any]) -> Any:
    return client.post("/fhir", json=bundle, headers=auth(token))


def documents(client: TestClient, token: str, status: str = "current") -> list[dict[str, Any]]:
    response = client.get(
        f"/fhir/DocumentReference?patient=Patient/p1&status={status}", headers=auth(token)
    )
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


def registry_rows(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("select count(*) from document_reference").fetchone()
    assert row is not None
    return int(row[0])


def test_a_provided_document_is_found_and_retrieved_as_sent(
    client: TestClient, tokens: Tokens, patient: None
) -> None:
    data = "病程记录：患者一般情况好。<b>not markup</b>".encode()
    response = post(client, tokens.a, provide_bundle(document(1, data)))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "transaction-response"
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created"] * 3
    location = answer["entry"][1]["response"]["location"]
    found = documents(client, tokens.a)
    assert [f"DocumentReference/{d['id']}" for d in found] == [location]
    # The same resident through the person index, by an identifier of hers.
    by_identifier = client.get(
        f"/fhir/DocumentReference?patient.identifier={PATIENT_RECORD}&status=current",
        headers=auth(tokens.a),
    )
    assert by_identifier.json()["total"] == 1
    attachment = found[0]["content"][0]["attachment"]
    assert attachment["hash"] == sha1(data)
    assert attachment["size"] == len(data)
    retrieved = client.get(attachment["url"], headers=auth(tokens.a))
    assert retrieved.status_code == 200
    assert retrieved.content == data
    assert retrieved.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("breakage", "rule", "where"),
    [
        ({"hash": sha1(b"other bytes")}, "mhd.hash", "Bundle.entry[3].resource.content[0]"),
        ({"size": 3}, "mhd.size", "Bundle.entry[3].resource.content[0]"),
    ],
)
def test_one_bad_document_refuses_the_whole_bundle(
    client: TestClient,
    tokens: Tokens,
    database_url: str,
    patient: None,
    breakage: dict[str, Any],
    rule: str,
    where: str,
) -> None:
    second = document(2, b"second document")
    second[0]["resource"]["content"][0]["attachment"].update(breakage)
    response = post(client, tokens.a, provide_bundle(document(1, b"first document"), second))
    assert response.status_code == 422, response.text
    issues = response.json()["issue"]
    assert {i["details"]["coding"][0]["code"] for i in issues} == {rule}
    assert issues[0]["expression"][0].startswith(where)
    assert documents(client, tokens.a) == []
    assert registry_rows(database_url) == 0


def test_a_failure_inside_the_transaction_rolls_back_the_documents_before_it(
    client: TestClient, tokens: Tokens, database_url: str, patient: None, cda: CdaFixtures
) -> None:
    # The first document (a CDA, stored as a CDA record) is written before the second's
    # replace target is found unknown: both go.
    first = document(1, cda.bytes("C0053-valid.xml"), "application/hl7-cda+xml")
    unknown = [{"code": "replaces", "target": {"reference": "DocumentReference/nowhere"}}]
    second = document(2, b"second", relatesTo=unknown)
    response = post(client, tokens.a, provide_bundle(first, second))
    assert response.status_code == 422, response.text
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[3].resource.relatesTo"]
    assert registry_rows(database_url) == 0
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select count(*) from record_head").fetchone() == (1,)  # the Patient


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda r: r.pop("masterIdentifier"), "Bundle.entry[1].resource.masterIdentifier"),
        (lambda r: r.update(status="superseded"), "Bundle.entry[1].resource.status"),
        (lambda r: r.pop("subject"), "Bundle.entry[1].resource.subject"),
        (
            lambda r: r["content"][0]["attachment"].update(url="urn:uuid:nowhere"),
            "Bundle.entry[1].resource.content[0].attachment.url",
        ),
    ],
)
def test_missing_minimal_metadata_is_refused(
    client: TestClient, tokens: Tokens, patient: None, edit: Any, where: str
) -> None:
    one = document(1, b"content")
    edit(one[0]["resource"])
    response = post(client, tokens.a, provide_bundle(one))
    assert response.status_code == 422, response.text
    assert where in [e for i in response.json()["issue"] for e in i.get("expression", [])]
    assert documents(client, tokens.a) == []


def test_comprehensive_metadata_is_required_when_claimed(
    client: TestClient, tokens: Tokens, patient: None
) -> None:
    response = post(client, tokens.a, provide_bundle(document(1, b"x"), profile="Comprehensive"))
    assert response.status_code == 422
    expressions = {e for i in response.json()["issue"] for e in i.get("expression", [])}
    for element in ("securityLabel", "content[0].format", "context.facilityType"):
        assert f"Bundle.entry[1].resource.{element}" in expressions


def test_a_bundle_without_its_submission_set_is_not_a_provide_bundle(
    client: TestClient, tokens: Tokens, patient: None
) -> None:
    bundle = provide_bundle(document(1, b"x"), document(2, b"y"))
    second_set = copy.deepcopy(bundle["entry"][0])
    second_set["fullUrl"] = "urn:uuid:00000000-0000-0000-0000-000000000502"
    bundle["entry"].append(second_set)
    response = post(client, tokens.a, bundle)
    assert response.status_code == 422
    assert "exactly one SubmissionSet" in response.text


def test_a_replace_supersedes_its_target_in_the_same_transaction(
    client: TestClient, tokens: Tokens, patient: None
) -> None:
    assert post(client, tokens.a, provide_bundle(document(1, b"v1"))).status_code == 200
    (first,) = documents(client, tokens.a)
    replace = [{"code": "replaces", "target": {"reference": f"DocumentReference/{first['id']}"}}]
    response = post(client, tokens.a, provide_bundle(document(2, b"v2", relatesTo=replace)))
    assert response.status_code == 200, response.text
    (current,) = documents(client, tokens.a)
    assert current["relatesTo"] == replace
    (superseded,) = documents(client, tokens.a, "superseded")
    assert superseded["id"] == first["id"]
    # A superseded document cannot be replaced again; nothing of that Bundle stays.
    again = post(client, tokens.a, provide_bundle(document(3, b"v3", relatesTo=replace)))
    assert again.status_code == 422
    assert "mhd.replace" in again.text
    assert len(documents(client, tokens.a, "current,superseded")) == 2


def test_a_provided_cda_is_stored_once_and_registered_once(
    client: TestClient, tokens: Tokens, database_url: str, patient: None, cda: CdaFixtures
) -> None:
    data = cda.bytes("C0053-valid.xml")
    response = post(client, tokens.a, provide_bundle(document(1, data, "application/hl7-cda+xml")))
    assert response.status_code == 200, response.text
    assert registry_rows(database_url) == 1
    (found,) = documents(client, tokens.a)
    assert found["masterIdentifier"]["value"] == "urn:oid:1.2.156.9.1"
    retrieved = client.get(found["content"][0]["attachment"]["url"], headers=auth(tokens.a))
    assert retrieved.content == data
    assert retrieved.headers["content-type"] == "application/hl7-cda+xml"
    with psycopg.connect(database_url) as conn:
        tables = conn.execute("select table_code from record_head order by 1").fetchall()
    assert tables == [("C0053",), ("FHIR.Patient",)]


def test_a_duplicate_master_identifier_is_refused(
    client: TestClient, tokens: Tokens, patient: None
) -> None:
    assert post(client, tokens.a, provide_bundle(document(1, b"one"))).status_code == 200
    again = post(client, tokens.a, provide_bundle(document(1, b"another")))
    assert again.status_code == 409
    assert "mhd.duplicate" in again.text


def test_documents_of_two_patients_in_one_bundle_are_refused(
    client: TestClient, tokens: Tokens, patient: None
) -> None:
    second = document(2, b"second")
    second[0]["resource"]["subject"] = {"reference": "Patient/p2"}
    response = post(client, tokens.a, provide_bundle(document(1, b"first"), second))
    assert response.status_code == 422
    assert "mhd.patient" in response.text


def test_a_provide_bundle_in_fhir_xml_is_read_as_json_is(
    client: TestClient, tokens: Tokens, patient: None
) -> None:
    body = to_fhir_xml(provide_bundle(document(1, b"xml submission")))
    response = client.post(
        "/fhir", content=body, headers=auth(tokens.a, **{"Content-Type": "application/fhir+xml"})
    )
    assert response.status_code == 200, response.text
    (found,) = documents(client, tokens.a)
    retrieved = client.get(found["content"][0]["attachment"]["url"], headers=auth(tokens.a))
    assert retrieved.content == b"xml submission"
