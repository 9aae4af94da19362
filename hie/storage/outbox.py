"""The event outbox (``event_outbox``): events written in the transaction of the record they
announce, read in order and marked published by the relay once RabbitMQ has confirmed them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from psycopg.types.json import Jsonb

from hie.storage.database import Connection

Outcome = Literal["accepted", "rejected"]

# One relay per database publishes (pg_try_advisory_lock, released when its connection ends):
# per-record order needs a single reader of the outbox.
RELAY_LOCK = 0x6869652E6576  # "hie.ev"


@dataclass(frozen=True)
class NewEvent:
    """An event about one accepted record version or one rejected record: identifiers, never
    content."""

    event_id: UUID
    outcome: Outcome
    institution_code: str
    received_at: datetime
    upload_id: UUID | None
    table_code: str | None = None
    record_kind: str | None = None  # "cda" or "fhir"
    logical_id: str | None = None
    version: int | None = None
    deleted: bool = False
    replaces: str | None = None
    rules: tuple[str, ...] = ()


# Column arrays unnested into rows: one statement, of one text whatever the number of events (so
# it is prepared once), for one event or a whole transaction's.
_APPEND = """
    insert into event_outbox (event_id, outcome, institution_code, institution_kind, table_code,
        record_kind, logical_id, version, deleted, replaces, rules, received_at, upload_id)
    select e.event_id, e.outcome, e.institution_code,
        coalesce((select i.kind from institution i where i.code = e.institution_code), 'unknown'),
        e.table_code, e.record_kind, e.logical_id, e.version, e.deleted, e.replaces, e.rules,
        e.received_at, e.upload_id
    from unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
        %s::integer[], %s::boolean[], %s::text[], %s::jsonb[], %s::timestamptz[], %s::uuid[])
        with ordinality as e(event_id, outcome, institution_code, table_code, record_kind,
            logical_id, version, deleted, replaces, rules, received_at, upload_id, n)
    order by e.n
"""


def append_events(conn: Connection, events: Sequence[NewEvent]) -> None:
    """Write ``events`` to the outbox, in order, in one statement of the caller's transaction."""
    if not events:
        return
    conn.execute(
        _APPEND,
        (
            [e.event_id for e in events],
            [e.outcome for e in events],
            [e.institution_code for e in events],
            [e.table_code for e in events],
            [e.record_kind for e in events],
            [e.logical_id for e in events],
            [e.version for e in events],
            [e.deleted for e in events],
            [e.replaces for e in events],
            [Jsonb(list(e.rules)) if e.rules else None for e in events],
            [e.received_at for e in events],
            [e.upload_id for e in events],
        ),
    )


def pending_events(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The oldest ``limit`` events not yet published, in the order they were written."""
    return conn.execute(
        "select * from event_outbox where published_at is null order by seq limit %s", (limit,)
    ).fetchall()


def mark_published(conn: Connection, seqs: Sequence[int]) -> None:
    conn.execute("update event_outbox set published_at = now() where seq = any(%s)", (list(seqs),))


def outbox_counts(conn: Connection) -> dict[str, Any]:
    """Events not yet published, and when the oldest of them was written (how far the relay lags);
    read through the partial index of pending rows only."""
    row = conn.execute(
        """
        select count(*) as pending, min(created_at) as oldest_pending
        from event_outbox where published_at is null
        """
    ).fetchone()
    return dict(row) if row is not None else {"pending": 0, "oldest_pending": None}


def try_relay_lock(conn: Connection) -> bool:
    """Become this database's relay: True while no other connection holds the relay lock."""
    row = conn.execute("select pg_try_advisory_lock(%s) as locked", (RELAY_LOCK,)).fetchone()
    return bool(row and row["locked"])


def purge_published(conn: Connection, before: datetime, limit: int = 10_000) -> int:
    """Delete at most ``limit`` events published before ``before``, oldest first; how many.
    Pending events are never deleted, however old."""
    cursor = conn.execute(
        """
        delete from event_outbox where seq in (
            select seq from event_outbox
            where published_at is not null and published_at < %s
            order by seq limit %s
        )
        """,
        (before, limit),
    )
    return cursor.rowcount
