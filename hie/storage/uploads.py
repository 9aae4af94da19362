"""Uploads and their receipts, accepted or not, and the daily rejection counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import simplejson
from psycopg.types.json import Jsonb

from hie.storage.database import Connection


@dataclass
class UploadRow:
    id: UUID
    received_at: datetime
    institution_code: str
    channel: str  # cda | fhir | ingest
    content_type: str | None
    byte_size: int
    content_sha256: bytes | None
    outcome: str  # accepted | unchanged | rejected | partial
    http_status: int | None
    records_written: int
    rejected_count: int
    receipt: dict[str, Any]
    token_id: int | None


# A stored receipt is kept under this size: the dashboard reads receipts for its sample issues,
# and one hostile upload must not make that page (or the table) heavy. The client got the
# answer in full.
MAX_RECEIPT_BYTES = 64 * 1024


def _size(value: Any) -> int:
    return len(simplejson.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _trimmed(value: Any, keep: int) -> Any:
    """``value`` with every ``issue`` and ``entry`` list cut to its first ``keep`` items."""
    if isinstance(value, list):
        return [_trimmed(v, keep) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key in ("issue", "entry") and isinstance(item, list) and len(item) > keep:
            item = item[:keep]
        out[key] = _trimmed(item, keep)
    return out


def bounded_receipt(receipt: dict[str, Any], limit: int = MAX_RECEIPT_BYTES) -> dict[str, Any]:
    """The receipt as stored: whole when under ``limit`` bytes, else with its issue and entry
    lists cut short and a note saying so."""
    if _size(receipt) <= limit:
        return receipt
    note = {
        "severity": "information",
        "code": "informational",
        "diagnostics": f"the stored receipt is cut to {limit} bytes; the answer was sent whole",
    }
    keep = 100
    while keep >= 1:
        trimmed: dict[str, Any] = _trimmed(receipt, keep)
        if isinstance(trimmed.get("issue"), list):
            trimmed["issue"] = [*trimmed["issue"], note]
        else:
            trimmed["truncated"] = note["diagnostics"]
        if _size(trimmed) <= limit:
            return trimmed
        keep //= 2
    return {"resourceType": "OperationOutcome", "issue": [note]}


def record_upload(conn: Connection, upload: UploadRow) -> None:
    conn.execute(
        """
        insert into upload (id, received_at, institution_code, channel, content_type, byte_size,
            content_sha256, outcome, http_status, records_written, rejected_count, receipt,
            token_id)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            upload.id,
            upload.received_at,
            upload.institution_code,
            upload.channel,
            upload.content_type,
            upload.byte_size,
            upload.content_sha256,
            upload.outcome,
            upload.http_status,
            upload.records_written,
            upload.rejected_count,
            Jsonb(bounded_receipt(upload.receipt)),
            upload.token_id,
        ),
    )


def count_rejection(conn: Connection, institution_code: str, day: date, rules: list[str]) -> None:
    """Count one rejected document or resource, and each rule that fired in it."""
    conn.execute(
        """
        insert into daily_rejection (institution_code, day, shard, rejected)
        values (%s, %s, pg_backend_pid() %% 8, 1)
        on conflict (institution_code, day, shard)
        do update set rejected = daily_rejection.rejected + 1
        """,
        (institution_code, day),
    )
    for rule_id, times in Counter(rules).items():
        conn.execute(
            """
            insert into daily_rejection_reason (institution_code, day, rule_id, shard, occurrences)
            values (%s, %s, %s, pg_backend_pid() %% 8, %s)
            on conflict (institution_code, day, rule_id, shard)
            do update set occurrences = daily_rejection_reason.occurrences + excluded.occurrences
            """,
            (institution_code, day, rule_id, times),
        )


def find_receipt(conn: Connection, upload_id: UUID) -> dict[str, Any] | None:
    row = conn.execute("select receipt from upload where id = %s", (upload_id,)).fetchone()
    return None if row is None else row["receipt"]


def find_upload(conn: Connection, upload_id: UUID) -> dict[str, Any] | None:
    """An upload's institution, outcome, HTTP status and receipt."""
    row: dict[str, Any] | None = conn.execute(
        """
        select institution_code, received_at, outcome, http_status, receipt
        from upload where id = %s
        """,
        (upload_id,),
    ).fetchone()
    return row
