"""A small hostile body must not become a large answer or a large stored receipt: issues are
listed up to 100 per rule, with the rest counted, and receipts are stored bounded."""

from __future__ import annotations

import json

import psycopg
from fastapi.testclient import TestClient

from hie.config import Settings
from hie.storage.uploads import MAX_RECEIPT_BYTES, bounded_receipt
from hie.validators.report import ISSUES_PER_RULE
from tests.http.conftest import Tokens, bearer

KEYS = 200_000


def test_two_hundred_thousand_unknown_keys_answer_and_store_bounded(
    client: TestClient, tokens: Tokens, hostile_settings: Settings
) -> None:
    fields = ",".join(f'"k{n}":1' for n in range(KEYS))
    body = f'{{"resourceType":"Patient",{fields}}}'.encode()
    answer = client.post(
        "/fhir/Patient",
        content=body,
        headers=bearer(tokens.submitter, **{"Content-Type": "application/fhir+json"}),
    )
    assert answer.status_code == 422, answer.text[:300]
    # Each key's issue is ~100 bytes: all of them would be some 20 MB.
    assert len(answer.content) < 100_000
    issues = answer.json()["issue"]
    rules = [i["details"]["coding"][0]["code"] for i in issues if "details" in i]
    assert rules.count("fhir.structure.element") == ISSUES_PER_RULE
    note = issues[-1]
    assert note["severity"] == "information"
    assert f"{KEYS - ISSUES_PER_RULE} more issues" in note["diagnostics"]
    assert hostile_settings.database_url is not None
    with psycopg.connect(hostile_settings.database_url.get_secret_value()) as conn:
        row = conn.execute(
            "select octet_length(receipt::text) from upload "
            "where byte_size = %s order by received_at desc limit 1",
            (len(body),),
        ).fetchone()
    assert row is not None
    assert row[0] <= MAX_RECEIPT_BYTES * 1.1  # jsonb's text form spaces a little more


def test_stored_receipts_of_large_bundles_are_cut_with_a_note() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": "x" * 200}] * 50,
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": {"status": "422", "outcome": outcome}}] * 500,
    }
    stored = bounded_receipt(bundle)
    assert len(json.dumps(stored).encode()) <= MAX_RECEIPT_BYTES
    assert stored["resourceType"] == "Bundle"
    assert "cut" in stored["truncated"]
    small = {"status": "created", "upload": "u"}
    assert bounded_receipt(small) is small
