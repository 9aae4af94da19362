"""Every stored CDA document gets its DocumentReference (MHD), found by ITI-67 and retrieved by
ITI-68 exactly as uploaded."""

from __future__ import annotations

import base64
import hashlib

import psycopg
from fastapi.testclient import TestClient

from hie.audit import flush_reads
from tests.conftest import CdaFixtures
from tests.documents.conftest import CHEN, CHEN_CARD, A, Tokens, auth

CDA = "application/hl7-cda+xml"


def upload(client: TestClient, token: str, data: bytes) -> None:
    response = client.post("/cda", content=data, headers=auth(token, **{"Content-Type": CDA}))
    assert response.status_code == 201, response.text


def find(client: TestClient, token: str, query: str) -> dict:
    response = client.get(f"/fhir/DocumentReference?{query}", headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()


def test_a_stored_discharge_summary_has_its_document_reference(
    client: TestClient, tokens: Tokens, cda: CdaFixtures
) -> None:
    data = cda.bytes("C0053-valid.xml")
    upload(client, tokens.a, data)
    found = find(client, tokens.a, f"patient.identifier={CHEN}&status=current")
    assert found["total"] == 1
    doc = found["entry"][0]["resource"]
    assert doc["status"] == "current"
    assert doc["masterIdentifier"] == {
        "system": "urn:oid:2.16.156.10011.1.1",
        "value": "455755678-C0053-20190720-0002",
    }
    codings = {(c["system"], c["code"]) for c in doc["type"]["coding"]}
    assert codings == {("http://loinc.org", "18842-5"), ("urn:oid:2.16.156.10011.2.4", "C0053")}
    assert doc["category"][0]["coding"][0]["code"] == "discharge"
    attachment = doc["content"][0]["attachment"]
    assert attachment["contentType"] == CDA
    assert attachment["size"] == len(data)
    assert (
        attachment["hash"]
        == base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()
    )
    assert doc["custodian"]["identifier"]["value"] == A
    assert doc["author"][0]["display"] == "刘医生"
    assert doc["context"]["period"]["start"].startswith("2019-07-10T17:30:00")
    assert doc["context"]["practiceSetting"]["coding"][0]["code"] == "IMP"
    # The same resident found by another of her identifiers.
    assert find(client, tokens.a, f"patient.identifier={CHEN_CARD}&status=current")["total"] == 1

    retrieved = client.get(attachment["url"], headers=auth(tokens.a))
    assert retrieved.status_code == 200
    assert retrieved.content == data
    assert retrieved.headers["content-type"] == CDA


def test_iti67_requires_a_patient_and_a_status(client: TestClient, tokens: Tokens) -> None:
    for query in (
        "status=current",
        f"patient.identifier={CHEN}",
        f"patient.identifier={CHEN}&status=final",
        f"patient.identifier={CHEN}&status=current&colour=blue",
        f"patient.identifier={CHEN}&status=current&type:text=x",
    ):
        response = client.get(f"/fhir/DocumentReference?{query}", headers=auth(tokens.a))
        assert response.status_code == 400, query
        assert response.json()["resourceType"] == "OperationOutcome"


def test_search_parameters_narrow_the_result(
    client: TestClient, tokens: Tokens, cda: CdaFixtures
) -> None:
    upload(client, tokens.a, cda.bytes("C0053-valid.xml"))
    base = f"patient.identifier={CHEN}&status=current"
    hits = {
        "type=http://loinc.org|18842-5": 1,
        "type=C0002": 0,
        "category=urn:hie:document-class|discharge": 1,
        "category=outpatient": 0,
        f"facility=urn:hie:institution|{A}": 1,
        "facility=other": 0,
        "setting=IMP": 1,
        "identifier=urn:oid:2.16.156.10011.1.1|455755678-C0053-20190720-0002": 1,
        "identifier=nothing": 0,
        "author=刘医生": 1,
        "format=urn:oid:2.16.156.10011.2.1.1.73": 1,
        "period=ge2019-07-15": 1,
        "period=lt2019-07-01": 0,
        "period=2019-07": 1,
        "date=le2000-01-01": 0,
        "date=ge2000-01-01": 1,
        "type=C0053,C0002": 1,
    }
    for query, expected in hits.items():
        assert find(client, tokens.a, f"{base}&{query}")["total"] == expected, query


def test_a_replacement_supersedes_the_document_it_replaces(
    client: TestClient, tokens: Tokens, cda: CdaFixtures
) -> None:
    upload(client, tokens.a, cda.bytes("C0002-valid.xml"))
    upload(client, tokens.a, cda.bytes("C0002-replacement.xml"))
    identifier = "urn:oid:2.16.156.10011.1.3|320106197503211230"
    everything = find(
        client, tokens.a, f"patient.identifier={identifier}&status=current,superseded"
    )
    by_status = {e["resource"]["status"]: e["resource"] for e in everything["entry"]}
    assert set(by_status) == {"current", "superseded"}
    current = find(client, tokens.a, f"patient.identifier={identifier}&status=current")
    assert [e["resource"]["id"] for e in current["entry"]] == [by_status["current"]["id"]]
    assert by_status["current"]["relatesTo"] == [
        {
            "code": "replaces",
            "target": {"reference": f"DocumentReference/{by_status['superseded']['id']}"},
        }
    ]


def test_submitters_see_their_own_institution_and_the_admin_all(
    client: TestClient, tokens: Tokens, cda: CdaFixtures
) -> None:
    upload(client, tokens.a, cda.bytes("C0053-valid.xml"))
    query = f"patient.identifier={CHEN}&status=current"
    admin = find(client, tokens.admin, query)
    assert admin["total"] == 1
    assert find(client, tokens.b, query)["total"] == 0
    assert find(client, tokens.clinician_b, query)["total"] == 0
    regulator = client.get(f"/fhir/DocumentReference?{query}", headers=auth(tokens.regulator))
    assert regulator.status_code == 403
    url = admin["entry"][0]["resource"]["content"][0]["attachment"]["url"]
    # Another institution's document and a document that does not exist are answered alike.
    other = client.get(url, headers=auth(tokens.b))
    missing = client.get("/documents/00000000-0000-0000-0000-000000000000", headers=auth(tokens.b))
    assert other.status_code == missing.status_code == 403
    assert other.json()["issue"][0]["diagnostics"] == missing.json()["issue"][0]["diagnostics"]
    assert client.get(url, headers=auth(tokens.admin)).status_code == 200


def test_html_rendering_of_a_stored_document(
    client: TestClient, tokens: Tokens, cda: CdaFixtures
) -> None:
    upload(client, tokens.a, cda.bytes("C0053-valid.xml"))
    found = find(client, tokens.a, f"patient.identifier={CHEN}&status=current")
    url = found["entry"][0]["resource"]["content"][0]["attachment"]["url"]
    for headers, query in (({"Accept": "text/html"}, ""), ({}, "?_format=html")):
        page = client.get(url + query, headers=auth(tokens.a, **headers))
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src" not in page.headers["content-security-policy"]
        assert "default-src 'none'" in page.headers["content-security-policy"]
        text = page.text
        for shown in (
            "出院小结",
            "陈静",
            "南京鼓楼医院",
            "刘医生",
            "1989-06-30",
            "急性阑尾炎",
            "住院过程",
        ):
            assert shown in text


def test_every_search_and_retrieval_is_audited(
    client: TestClient, tokens: Tokens, cda: CdaFixtures, database_url: str
) -> None:
    upload(client, tokens.a, cda.bytes("C0053-valid.xml"))
    found = find(client, tokens.a, f"patient.identifier={CHEN}&status=current")
    doc = found["entry"][0]["resource"]
    client.get(doc["content"][0]["attachment"]["url"], headers=auth(tokens.a))
    client.get(doc["content"][0]["attachment"]["url"], headers=auth(tokens.b))
    assert flush_reads()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "select action, target, outcome, detail from audit_event"
            " where action like 'mhd.%' order by at"
        ).fetchall()
    assert [(r[0], r[2]) for r in rows] == [
        ("mhd.find", 0),
        ("mhd.retrieve", 0),
        ("mhd.retrieve", 4),
    ]
    assert rows[0][3]["documents"] == [doc["id"]]
    assert rows[0][3]["persons"]
    assert "320113198906300623" not in str(rows)  # the resident ID number is masked
    assert rows[1][1] == rows[2][1] == f"DocumentReference/{doc['id']}"
