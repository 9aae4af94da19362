"""MHD under a resident's opt-out: ITI-67 does not list, and ITI-68 does not retrieve, what a
deny provision keeps from the clinician's institution (``documents.service.readable`` asks
the one decision); break-glass over it is flagged as having overridden the deny."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi.testclient import TestClient

from tests.conftest import CdaFixtures
from tests.documents.conftest import A, B, Tokens, auth, client, tokens
from tests.documents.test_consent import assert_no_hint, consent, search, upload_summary

__all__ = ["client", "tokens"]  # the fixtures, used by name


def record(client: TestClient, tokens: Tokens, cid: str, terms: dict[str, Any]) -> None:
    response = client.put(f"/fhir/Consent/{cid}", json={**terms, "id": cid}, headers=auth(tokens.a))
    assert response.status_code in (200, 201), response.text


def opt_out(status: str = "active") -> dict[str, Any]:
    """Chen forbids B everything (a base deny)."""
    terms = consent(status=status, actors=(B,))
    terms["provision"]["type"] = "deny"
    return terms


def test_mhd_obeys_a_deny(
    client: TestClient, tokens: Tokens, cda: CdaFixtures, database_url: str
) -> None:
    url, data = upload_summary(client, tokens, cda)
    clinician = tokens.clinician_b

    # Everything to everyone, except discharge documents: the summary is neither listed nor
    # retrieved, and the refusal looks like a document that does not exist.
    all_but = consent(actors=())
    all_but["provision"]["provision"] = [
        {"type": "deny", "class": [{"system": "urn:hie:document-class", "code": "discharge"}]}
    ]
    record(client, tokens, "share-1", all_but)
    assert search(client, clinician) == []
    assert_no_hint(client, clinician, url)

    # Everything to everyone, and a second consent denying B: the deny wins.
    record(client, tokens, "share-1", consent(actors=()))
    assert len(search(client, clinician)) == 1
    record(client, tokens, "no-b", opt_out())
    assert search(client, clinician) == []
    assert_no_hint(client, clinician, url)

    # Break-glass over the deny: allowed, and each review entry names the deny overridden.
    glass = {"X-Break-Glass": "unconscious on arrival"}
    assert len(search(client, clinician, **glass)) == 1
    opened = client.get(url, headers=auth(clinician, **glass))
    assert opened.status_code == 200 and opened.content == data
    with psycopg.connect(database_url) as conn:
        flagged = conn.execute(
            "select source_institution, overrode_deny from break_glass"
        ).fetchall()
    assert flagged == [(A, f"{A}/Consent/no-b")] * 2

    # Revoked, the deny no longer counts.
    record(client, tokens, "no-b", opt_out("inactive"))
    assert len(search(client, clinician)) == 1
    assert client.get(url, headers=auth(clinician)).status_code == 200
