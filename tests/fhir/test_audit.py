"""Every FHIR read and write is in the audit trail (who, what, when, where, outcome), and admins
and regulators read the trail as AuditEvent."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from hie.audit import flush_reads
from hie.auth.tokens import hash_token
from hie.catalog import read_catalog
from hie.catalog.reader import default_catalog_path
from hie.config import Settings
from hie.validators.fhir import validate_resource
from tests.hospitals import Tokens, auth

RESIDENT_ID = "320114198001011233"


def _rows(settings: Settings, sql: str, *params: Any) -> list[dict[str, Any]]:
    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()
    assert flush_reads()  # reads are audited in the background
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def _token_id(settings: Settings, token: str) -> int:
    rows = _rows(settings, "select id from access_token where token_hash = %s", hash_token(token))
    return int(rows[0]["id"])


def _entries(settings: Settings, target: str) -> list[dict[str, Any]]:
    return _rows(
        settings,
        "select actor, role, institution, address, action, target, outcome, detail"
        " from audit_event where target = %s order by at, id",
        target,
    )


def test_writes_and_reads_are_recorded(
    client: TestClient, tokens: Tokens, fhir_settings: Settings
) -> None:
    pid = f"a-{uuid.uuid4().hex[:8]}"
    url = f"/fhir/Patient/{pid}"
    h1 = auth(tokens.h1)
    assert client.put(url, json={"resourceType": "Patient", "id": pid}, headers=h1).status_code
    assert client.get(url, headers=h1).status_code == 200
    assert client.get(f"{url}/_history/1", headers=h1).status_code == 200
    assert client.get(f"{url}/_history", headers=h1).status_code == 200
    assert client.delete(url, headers=h1).status_code in (200, 204)
    assert client.get(url, headers=h1).status_code == 410

    actor = f"token:{_token_id(fhir_settings, tokens.h1)}"
    entries = _entries(fhir_settings, f"Patient/{pid}")
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("fhir.update", 0),
        ("fhir.read", 0),
        ("fhir.history", 0),
        ("fhir.delete", 0),
        ("fhir.read", 4),  # 410 Gone
    ]
    for entry in entries:
        assert entry["actor"] == actor
        assert entry["role"] == "submitter" and entry["institution"] == "H1"
        assert entry["address"] == "testclient"  # TestClient's client address
        assert entry["detail"]["acting_for"] == "H1"
    assert entries[0]["detail"]["status"] == 201
    vread = _entries(fhir_settings, f"Patient/{pid}/_history/1")
    assert [e["action"] for e in vread] == ["fhir.vread"]


def test_a_refused_read_is_recorded_with_its_outcome(
    client: TestClient, tokens: Tokens, fhir_settings: Settings
) -> None:
    pid = f"r-{uuid.uuid4().hex[:8]}"
    other = auth(tokens.h1, **{"X-HIE-Institution": "H2"})
    assert client.get(f"/fhir/Patient/{pid}", headers=other).status_code == 403
    assert client.get(f"/fhir/Patient/{pid}", headers=auth(tokens.h1)).status_code == 404
    entries = _entries(fhir_settings, f"Patient/{pid}")
    assert [(e["detail"]["status"], e["outcome"]) for e in entries] == [(403, 4), (404, 4)]


def test_searches_are_recorded_without_resident_id_numbers(
    client: TestClient, tokens: Tokens, fhir_settings: Settings
) -> None:
    marker = uuid.uuid4().hex[:10]
    params = {"identifier": f"urn:oid:2.16.156.10011.1.3|{RESIDENT_ID}", "name": marker}
    assert client.get("/fhir/Patient", params=params, headers=auth(tokens.h1)).status_code == 200
    rows = _rows(
        fhir_settings,
        "select detail from audit_event where action = 'fhir.search' and detail->>'query' like %s",
        f"%{marker}%",
    )
    assert len(rows) == 1
    query = rows[0]["detail"]["query"]
    assert RESIDENT_ID not in query
    assert "identifier=urn:oid:2.16.156.10011.1.3|***" in query
    everything = _rows(fhir_settings, "select detail::text as d, target from audit_event")
    assert not any(RESIDENT_ID in (r["d"] + (r["target"] or "")) for r in everything)


def test_a_transaction_names_every_resource_it_wrote(
    client: TestClient, tokens: Tokens, fhir_settings: Settings
) -> None:
    ids = [f"t-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": i},
                "request": {"method": "PUT", "url": f"Patient/{i}"},
            }
            for i in ids
        ],
    }
    assert client.post("/fhir", json=bundle, headers=auth(tokens.h1)).status_code == 200
    rows = _rows(
        fhir_settings,
        "select action, outcome, detail from audit_event where detail->'entities' ? %s",
        f"Patient/{ids[0]}",
    )
    assert len(rows) == 1
    assert rows[0]["action"] == "fhir.transaction" and rows[0]["outcome"] == 0
    assert rows[0]["detail"]["entities"] == [f"Patient/{i}" for i in ids]


def test_a_batch_names_the_reads_it_answered(
    client: TestClient, tokens: Tokens, fhir_settings: Settings
) -> None:
    pid = f"b-{uuid.uuid4().hex[:8]}"
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": pid},
                "request": {"method": "PUT", "url": f"Patient/{pid}"},
            },
            {"request": {"method": "GET", "url": f"Patient?identifier=x|{RESIDENT_ID}"}},
        ],
    }
    assert client.post("/fhir", json=bundle, headers=auth(tokens.h1)).status_code == 200
    entries = _entries(fhir_settings, f"Patient/{pid}")
    assert [e["action"] for e in entries] == ["fhir.batch"]
    assert entries[0]["detail"]["reads"] == ["Patient?identifier=x|***"]


def test_a_refused_write_is_recorded(
    client: TestClient, tokens: Tokens, fhir_settings: Settings
) -> None:
    pid = f"w-{uuid.uuid4().hex[:8]}"
    bad = {"resourceType": "Patient", "id": pid, "gender": "nonsense"}
    assert client.put(f"/fhir/Patient/{pid}", json=bad, headers=auth(tokens.h1)).status_code == 422
    entries = _entries(fhir_settings, f"Patient/{pid}")
    assert [(e["action"], e["outcome"], e["detail"]["status"]) for e in entries] == [
        ("fhir.update", 4, 422)
    ]


def test_audit_event_search(client: TestClient, tokens: Tokens, fhir_settings: Settings) -> None:
    pid = f"s-{uuid.uuid4().hex[:8]}"
    h2 = auth(tokens.h2)
    client.put(f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid}, headers=h2)
    client.get(f"/fhir/Patient/{pid}", headers=auth(tokens.h1, **{"X-HIE-Institution": "H2"}))
    agent = _token_id(fhir_settings, tokens.h2)  # flushes the reads' entries too
    admin = auth(tokens.admin)

    found = client.get("/fhir/AuditEvent", params={"entity": f"Patient/{pid}"}, headers=admin)
    assert found.status_code == 200
    events = [e["resource"] for e in found.json()["entry"]]
    assert len(events) == 2
    written = events[-1]  # newest first
    assert written["action"] == "U" and written["outcome"] == "0"
    assert written["agent"][0]["who"]["identifier"]["value"] == f"token:{agent}"
    assert written["agent"][0]["network"]["address"] == "testclient"
    assert written["entity"][0]["what"]["reference"] == f"Patient/{pid}"
    assert events[0]["outcome"] == "4"  # H1 may not read H2's data

    by_agent = client.get(
        "/fhir/AuditEvent",
        params=[("agent", str(agent)), ("entity", f"Patient/{pid}"), ("date", "ge2020-01-01")],
        headers=auth(tokens.regulator),
    )
    assert [e["resource"]["id"] for e in by_agent.json()["entry"]] == [written["id"]]
    failed = client.get(
        "/fhir/AuditEvent", params={"entity": f"Patient/{pid}", "outcome": "4"}, headers=admin
    )
    assert [e["resource"]["id"] for e in failed.json()["entry"]] == [events[0]["id"]]
    past = client.get(
        "/fhir/AuditEvent", params={"entity": f"Patient/{pid}", "date": "lt2020"}, headers=admin
    )
    assert "entry" not in past.json()
    paged = client.get("/fhir/AuditEvent", params={"_count": "1"}, headers=admin).json()
    assert len(paged["entry"]) == 1
    assert any(link["relation"] == "next" for link in paged["link"])

    one = client.get(f"/fhir/AuditEvent/{written['id']}", headers=admin)
    assert one.status_code == 200 and one.json() == written
    xml = client.get(f"/fhir/AuditEvent/{written['id']}", params={"_format": "xml"}, headers=admin)
    assert xml.status_code == 200 and "<AuditEvent" in xml.text
    bad = client.get("/fhir/AuditEvent", params={"date": "soon"}, headers=admin)
    assert bad.status_code == 400


def test_audit_events_are_valid_r4(client: TestClient, tokens: Tokens) -> None:
    client.get("/fhir/Patient", params={"name": "x"}, headers=auth(tokens.h1))
    assert flush_reads()
    bundle = client.get("/fhir/AuditEvent", params={"_count": "20"}, headers=auth(tokens.admin))
    catalog = read_catalog(default_catalog_path())
    for entry in bundle.json()["entry"]:
        report = validate_resource(entry["resource"], catalog=catalog).report
        structural = [i for i in report.errors if not i.rule.startswith("fhir.catalog")]
        assert structural == [], structural
    query = next(
        e["resource"]["entity"][0]["query"]
        for e in bundle.json()["entry"]
        if e["resource"]["subtype"][0]["code"] == "search-type"
    )
    assert base64.b64decode(query).decode().startswith("name=")


def test_only_admins_and_regulators_read_the_trail(
    client: TestClient, tokens: Tokens, fhir_settings: Settings
) -> None:
    response = client.get("/fhir/AuditEvent", headers=auth(tokens.h1))
    assert response.status_code == 403
    assert client.get("/fhir/AuditEvent/1", headers=auth(tokens.h1)).status_code == 403
    actor = f"token:{_token_id(fhir_settings, tokens.h1)}"
    refused = _rows(
        fhir_settings,
        "select action, outcome from audit_event where actor = %s and action like 'audit.%%'",
        actor,
    )
    assert {(r["action"], r["outcome"]) for r in refused} == {
        ("audit.search", 4),
        ("audit.read", 4),
    }


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_clients_cannot_write_the_trail(client: TestClient, tokens: Tokens, method: str) -> None:
    url = "/fhir/AuditEvent" if method == "post" else "/fhir/AuditEvent/1"
    kwargs: dict[str, Any] = {"headers": auth(tokens.admin)}
    if method != "delete":
        kwargs["json"] = {"resourceType": "AuditEvent"}
    assert getattr(client, method)(url, **kwargs).status_code == 405


def test_capability_statement_lists_audit_event(client: TestClient) -> None:
    rest = client.get("/fhir/metadata").json()["rest"][0]
    audit = next(r for r in rest["resource"] if r["type"] == "AuditEvent")
    assert {i["code"] for i in audit["interaction"]} == {"read", "search-type"}
    assert {p["name"] for p in audit["searchParam"]} == {
        "agent",
        "entity",
        "date",
        "outcome",
        "action",
    }
