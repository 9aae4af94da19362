"""MHD across institutions under the resident's consent: a clinician at B finds (ITI-67) and
opens (ITI-68) A's discharge summary only while the resident's consent covers B, else by
break-glass (flagged for review); every access is in the resident's access history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hie.cli.main import app as cli
from tests.conftest import CdaFixtures
from tests.documents.conftest import CHEN, A, B, Tokens, auth

CDA = "application/hl7-cda+xml"
QUERY = f"patient.identifier={CHEN}&status=current"
MISSING = "/documents/00000000-0000-0000-0000-000000000000"
RESIDENT_ID_SYSTEM, RESIDENT_ID = CHEN.split("|")
INSTITUTION = "urn:oid:2.16.156.10011.1.5"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def consent(
    status: str = "active", actors: tuple[str, ...] = (B,), classes: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Chen's consent, recorded by A (which holds her discharge summary), naming her by her
    resident ID number."""
    provision: dict[str, Any] = {"type": "permit"}
    if actors:
        provision["actor"] = [
            {
                "role": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]},
                "reference": {"identifier": {"system": INSTITUTION, "value": code}},
            }
            for code in actors
        ]
    if classes:
        provision["class"] = [{"system": "urn:hie:document-class", "code": c} for c in classes]
    return {
        "resourceType": "Consent",
        "id": "share-1",
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"identifier": {"system": RESIDENT_ID_SYSTEM, "value": RESIDENT_ID}},
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": provision,
    }


def record_consent(client: TestClient, tokens: Tokens, terms: dict[str, Any]) -> None:
    response = client.put("/fhir/Consent/share-1", json=terms, headers=auth(tokens.a))
    assert response.status_code in (200, 201), response.text


def upload_summary(client: TestClient, tokens: Tokens, cda: CdaFixtures) -> tuple[str, bytes]:
    """A's discharge summary of Chen: its retrieval URL and bytes."""
    data = cda.bytes("C0053-valid.xml")
    response = client.post("/cda", content=data, headers=auth(tokens.a, **{"Content-Type": CDA}))
    assert response.status_code == 201, response.text
    found = client.get(f"/fhir/DocumentReference?{QUERY}", headers=auth(tokens.a)).json()
    return found["entry"][0]["resource"]["content"][0]["attachment"]["url"], data


def search(client: TestClient, token: str, **headers: str) -> list[str]:
    response = client.get(f"/fhir/DocumentReference?{QUERY}", headers=auth(token, **headers))
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json().get("entry", [])]


def assert_no_hint(client: TestClient, token: str, url: str) -> None:
    """Refused exactly as a document that does not exist."""
    refused = client.get(url, headers=auth(token))
    missing = client.get(MISSING, headers=auth(token))
    assert refused.status_code == missing.status_code == 403
    assert refused.json() == missing.json()
    html = client.get(url + "?_format=html", headers=auth(token))
    assert html.status_code == 403 and html.json() == missing.json()


def test_a_clinician_at_b_opens_as_discharge_summary_only_under_consent_or_break_glass(
    client: TestClient, tokens: Tokens, cda: CdaFixtures, database_url: str, tmp_path: Path
) -> None:
    url, data = upload_summary(client, tokens, cda)
    doc_id = url.rsplit("/", 1)[1]
    clinician = tokens.clinician_b

    # No consent: not found, and refused as if it did not exist.
    assert search(client, clinician) == []
    assert_no_hint(client, clinician, url)

    # Granted to B for discharge documents: found and opened, bytes and HTML.
    record_consent(client, tokens, consent(classes=("discharge",)))
    assert search(client, clinician) == [doc_id]
    original = client.get(url, headers=auth(clinician))
    assert original.status_code == 200 and original.content == data
    page = client.get(url, headers=auth(clinician, Accept="text/html"))
    assert page.status_code == 200 and "陈静" in page.text

    # Revoked: gone again, with no hint that it exists.
    record_consent(client, tokens, consent(status="inactive", classes=("discharge",)))
    assert search(client, clinician) == []
    assert_no_hint(client, clinician, url)

    # Break-glass: allowed, and flagged for review once per resident and institution.
    glass = {"X-Break-Glass": "unconscious on arrival"}
    assert search(client, clinician, **glass) == [doc_id]
    opened = client.get(url, headers=auth(clinician, **glass))
    assert opened.status_code == 200 and opened.content == data
    with psycopg.connect(database_url) as conn:
        flagged = conn.execute(
            "select institution_code, source_institution, person_id, reason from break_glass"
        ).fetchall()
        [(person,)] = conn.execute(
            "select person_id from person_link where institution_code = %s", (A,)
        ).fetchall()
    assert flagged == [(B, A, person, "unconscious on arrival")] * 2
    env = {"HIE_DATABASE_URL": database_url, "HIE_DATA_DIR": str(tmp_path)}
    listed = CliRunner().invoke(cli, ["consent", "breakglass"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "unconscious on arrival" in listed.output and "2 to review" in listed.output

    # Every access, allowed or refused, is in Chen's access history with what let it through.
    history = client.get(f"/api/persons/{person}/access-history", headers=auth(tokens.admin))
    assert history.status_code == 200, history.text
    accesses = [
        (e["action"], e["outcome"], e["resources"], e["consents"], e["break_glass"])
        for e in reversed(history.json()["entries"])
        if e["role"] == "clinician"
    ]
    share, doc = f"{A}/Consent/share-1", [f"DocumentReference/{doc_id}"]
    reason = "unconscious on arrival"
    assert accesses == [
        ("mhd.find", 0, [], [], None),
        ("mhd.retrieve", 4, [], [], None),
        ("mhd.retrieve", 4, [], [], None),
        ("mhd.find", 0, doc, [share], None),
        ("mhd.retrieve", 0, doc, [share], None),
        ("mhd.retrieve", 0, doc, [share], None),
        ("mhd.find", 0, [], [], None),
        ("mhd.retrieve", 4, [], [], None),
        ("mhd.retrieve", 4, [], [], None),
        ("mhd.find", 0, doc, [], reason),
        ("mhd.retrieve", 0, doc, [], reason),
    ]
    assert RESIDENT_ID not in history.text


def test_a_consent_opens_only_the_institutions_and_classes_it_names(
    client: TestClient, tokens: Tokens, cda: CdaFixtures
) -> None:
    url, _ = upload_summary(client, tokens, cda)
    for terms in (
        consent(classes=("report", "Condition")),  # not this document's class
        consent(actors=("999999999",)),  # another institution
    ):
        record_consent(client, tokens, terms)
        assert search(client, tokens.clinician_b) == []
        assert_no_hint(client, tokens.clinician_b, url)
    # Every class, the document's type (LOINC), or the resource type: each covers it.
    for classes in ((), ("18842-5",), ("DocumentReference",)):
        record_consent(client, tokens, consent(classes=classes))
        assert len(search(client, tokens.clinician_b)) == 1
        assert client.get(url, headers=auth(tokens.clinician_b)).status_code == 200


def test_consent_is_for_clinicians_submitters_and_regulators_are_unchanged(
    client: TestClient, tokens: Tokens, cda: CdaFixtures
) -> None:
    url, _ = upload_summary(client, tokens, cda)
    record_consent(client, tokens, consent(actors=()))  # every institution
    glass = {"X-Break-Glass": "curious"}
    # A submitter at B sees its own institution only, consent or break-glass.
    assert search(client, tokens.b) == search(client, tokens.b, **glass) == []
    assert client.get(url, headers=auth(tokens.b, **glass)).status_code == 403
    # A regulator reads figures, never documents.
    regulator = client.get(f"/fhir/DocumentReference?{QUERY}", headers=auth(tokens.regulator))
    assert regulator.status_code == 403
    assert client.get(url, headers=auth(tokens.regulator)).status_code == 403
    # The custodian and the admin, as before.
    assert len(search(client, tokens.a)) == len(search(client, tokens.admin)) == 1
    assert client.get(url, headers=auth(tokens.admin)).status_code == 200
