"""Every stored FHIR document Bundle gets its DocumentReference (MHD) too: found by ITI-67 for its
resident, retrieved by ITI-68 as the bytes its size and hash describe, superseded by a new
version, and registered by ``hie documents rebuild`` when stored before."""

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
from lxml import etree
from typer.testing import CliRunner

from hie.cli import app
from tests.documents.conftest import A, Tokens, auth

FIXTURE = Path(__file__).parent.parent / "fixtures" / "fhir" / "document-c0002.json"
RESIDENT = "urn:oid:2.16.156.10011.1.3|11010519491231002X"  # the fixture's Patient


def document(bundle_id: str = "doc1", value: str = "455755678-20190701-0001") -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    bundle["id"] = bundle_id
    bundle["identifier"]["value"] = value
    return bundle


def put(client: TestClient, token: str, bundle: dict[str, Any]) -> None:
    response = client.put(f"/fhir/Bundle/{bundle['id']}", json=bundle, headers=auth(token))
    assert response.status_code in (200, 201), response.text


def find(client: TestClient, token: str, status: str = "current") -> list[dict[str, Any]]:
    response = client.get(
        f"/fhir/DocumentReference?patient.identifier={RESIDENT}&status={status}",
        headers=auth(token),
    )
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


def sha1(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()


def test_a_stored_fhir_document_is_found_and_retrieved(client: TestClient, tokens: Tokens) -> None:
    put(client, tokens.a, document())
    [doc] = find(client, tokens.a)
    assert doc["masterIdentifier"] == {
        "system": "urn:oid:2.16.156.10011.1.1",
        "value": "455755678-20190701-0001",
    }
    codes = {c["code"] for c in doc["type"]["coding"]}
    assert codes == {"C0002", "34108-1"}  # the Composition's type, and LOINC for the table
    assert doc["category"][0]["coding"][0]["code"] == "outpatient"
    assert doc["author"] == [{"display": "李医生"}]
    assert doc["custodian"]["identifier"]["value"] == A
    assert doc["context"]["period"]["start"].startswith("2019-07-01T09:30:00")
    assert doc["context"]["practiceSetting"]["coding"][0]["code"] == "AMB"
    attachment = doc["content"][0]["attachment"]
    assert attachment["contentType"] == "application/fhir+json"

    retrieved = client.get(attachment["url"], headers=auth(tokens.a))
    assert retrieved.status_code == 200, retrieved.text
    assert retrieved.headers["content-type"] == "application/fhir+json"
    assert len(retrieved.content) == attachment["size"]
    assert sha1(retrieved.content) == attachment["hash"]
    served = retrieved.json()
    assert served["resourceType"] == "Bundle" and served["type"] == "document"
    assert served["entry"][0]["resource"]["title"] == "门（急）诊病历"

    as_xml = client.get(attachment["url"], headers=auth(tokens.a, Accept="application/fhir+xml"))
    assert as_xml.status_code == 200
    root = etree.fromstring(as_xml.content)
    assert root.tag == "{http://hl7.org/fhir}Bundle"

    for asked in ({"Accept": "text/html"}, {"_format": "html"}):
        query = {"_format": asked["_format"]} if "_format" in asked else None
        headers = auth(tokens.a, Accept=asked.get("Accept", "application/fhir+json"))
        html = client.get(attachment["url"], params=query, headers=headers)
        assert html.status_code == 200, html.text
        assert html.headers["content-type"].startswith("text/html")
        assert "script-src" not in html.headers["content-security-policy"]
        assert "default-src 'none'" in html.headers["content-security-policy"]
        page = html.text
        assert "<title>门（急）诊病历</title>" in page
        assert "<h2>主诉</h2><div>头痛三天</div>" in page
        assert "男 male" in page and "1949-12-31" in page and "李医生" in page
        assert "2019-07-01 09:30" in page and "final" in page


def test_a_new_version_of_a_fhir_document_supersedes_the_old(
    client: TestClient, tokens: Tokens
) -> None:
    first = document("doc1")
    put(client, tokens.a, first)
    [old] = find(client, tokens.a)
    # The same document (Bundle.identifier) stored again, corrected, as another Bundle.
    second = copy.deepcopy(first)
    second["id"] = "doc1-v2"
    second["entry"][0]["resource"]["title"] = "门（急）诊病历（更正）"
    put(client, tokens.a, second)
    [current] = find(client, tokens.a)
    assert current["id"] != old["id"]
    assert current["masterIdentifier"] == old["masterIdentifier"]
    assert current["relatesTo"] == [
        {"code": "replaces", "target": {"reference": f"DocumentReference/{old['id']}"}}
    ]
    [superseded] = find(client, tokens.a, "superseded")
    assert superseded["id"] == old["id"]
    retrieved = client.get(current["content"][0]["attachment"]["url"], headers=auth(tokens.a))
    assert retrieved.json()["entry"][0]["resource"]["title"] == "门（急）诊病历（更正）"

    # A Bundle with an identifier of its own replacing it through Composition.relatesTo.
    third = document("doc1-v3", "455755678-20190701-0003")
    third["entry"][0]["resource"]["relatesTo"] = [
        {"code": "replaces", "targetIdentifier": second["identifier"]}
    ]
    put(client, tokens.a, third)
    [latest] = find(client, tokens.a)
    assert latest["masterIdentifier"]["value"] == "455755678-20190701-0003"
    assert latest["relatesTo"][0]["target"]["reference"] == f"DocumentReference/{current['id']}"
    assert {d["id"] for d in find(client, tokens.a, "superseded")} == {old["id"], current["id"]}


def test_the_bundle_stored_last_under_an_identifier_is_current(
    client: TestClient, tokens: Tokens
) -> None:
    first, second = document("doc1"), document("doc1-v2")
    put(client, tokens.a, first)
    put(client, tokens.a, second)
    [newer] = find(client, tokens.a)
    first["entry"][0]["resource"]["title"] = "更正"
    put(client, tokens.a, first)  # the first Bundle resource corrected: now the latest
    [current] = find(client, tokens.a)
    assert current["id"] != newer["id"]
    assert current["relatesTo"][0]["target"]["reference"] == f"DocumentReference/{newer['id']}"
    assert [d["id"] for d in find(client, tokens.a, "superseded")] == [newer["id"]]


def test_an_updated_bundle_is_served_as_its_entry_describes(
    client: TestClient, tokens: Tokens
) -> None:
    bundle = document()
    put(client, tokens.a, bundle)
    bundle["entry"][0]["resource"]["title"] = "更正"
    put(client, tokens.a, bundle)
    [doc] = find(client, tokens.a)
    attachment = doc["content"][0]["attachment"]
    retrieved = client.get(attachment["url"], headers=auth(tokens.a))
    assert retrieved.json()["entry"][0]["resource"]["title"] == "更正"
    assert (len(retrieved.content), sha1(retrieved.content)) == (
        attachment["size"],
        attachment["hash"],
    )


def test_rebuild_registers_stored_fhir_documents(
    client: TestClient,
    tokens: Tokens,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put(client, tokens.a, document("doc1"))
    put(client, tokens.a, document("doc1-v2"))  # the same identifier: supersedes doc1's
    with psycopg.connect(database_url) as conn:
        before = conn.execute(
            "select document_record, status, hash from document_reference order by 1"
        ).fetchall()
        conn.execute("delete from document_reference")  # as before FHIR documents had entries
    assert [(r[0], r[1]) for r in before] == [
        ("Bundle/doc1", "superseded"),
        ("Bundle/doc1-v2", "current"),
    ]
    monkeypatch.setenv("HIE_DATABASE_URL", database_url)
    monkeypatch.setenv("HIE_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["documents", "rebuild", "--batch", "1"])
    assert result.exit_code == 0, result.output
    assert "registered 2" in result.output
    with psycopg.connect(database_url) as conn:
        after = conn.execute(
            "select document_record, status, hash from document_reference order by 1"
        ).fetchall()
    assert after == before
    [doc] = find(client, tokens.a)
    retrieved = client.get(doc["content"][0]["attachment"]["url"], headers=auth(tokens.a))
    assert sha1(retrieved.content) == doc["content"][0]["attachment"]["hash"]


def test_a_deleted_fhir_document_is_entered_in_error_until_stored_again(
    client: TestClient, tokens: Tokens
) -> None:
    bundle = document()
    put(client, tokens.a, bundle)
    [doc] = find(client, tokens.a)
    deleted = client.delete("/fhir/Bundle/doc1", headers=auth(tokens.a))
    assert deleted.status_code in (200, 204), deleted.text
    assert find(client, tokens.a) == []
    assert [d["id"] for d in find(client, tokens.a, "entered-in-error")] == [doc["id"]]
    gone = client.get(doc["content"][0]["attachment"]["url"], headers=auth(tokens.a))
    assert gone.status_code == 404
    put(client, tokens.a, bundle)
    assert [d["id"] for d in find(client, tokens.a)] == [doc["id"]]


def test_another_institution_reads_a_fhir_document_only_as_the_resident_allows(
    client: TestClient, tokens: Tokens
) -> None:
    put(client, tokens.a, document())
    assert find(client, tokens.clinician_b) == []  # no consent: left out
    glass = {"X-Break-Glass": "unconscious on arrival"}
    response = client.get(
        f"/fhir/DocumentReference?patient.identifier={RESIDENT}&status=current",
        headers=auth(tokens.clinician_b, **glass),
    )
    [entry] = response.json()["entry"]
    url = entry["resource"]["content"][0]["attachment"]["url"]
    assert client.get(url, headers=auth(tokens.clinician_b)).status_code == 403
    retrieved = client.get(url, headers=auth(tokens.clinician_b, **glass))
    assert retrieved.status_code == 200
    assert retrieved.json()["identifier"]["value"] == "455755678-20190701-0001"
