"""Uploads and their receipts, accepted or not, and the daily rejection counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

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
            Jsonb(upload.receipt),
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
