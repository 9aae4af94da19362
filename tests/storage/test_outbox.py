"""The outbox table: order of writing, pending rows, purging what was published long ago."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hie.registry import Institution
from hie.storage import Database
from hie.storage.institutions import add_institution
from hie.storage.outbox import (
    NewEvent,
    append_events,
    mark_published,
    outbox_counts,
    pending_events,
    purge_published,
)


def event(n: int) -> NewEvent:
    return NewEvent(
        event_id=uuid.uuid4(),
        outcome="accepted",
        institution_code="H1" if n % 2 else "X9",
        received_at=datetime(2019, 7, 10, tzinfo=UTC),
        upload_id=None,
        table_code="C0002",
        record_kind="cda",
        logical_id=f"d^{n}",
        version=1,
    )


def test_events_keep_their_order_and_only_published_old_ones_are_purged(db: Database) -> None:
    with db.transaction() as tx:
        add_institution(tx.conn, Institution("H1", "医院", "hospital"), actor="t")
        written = [event(n) for n in range(5)]
        append_events(tx.conn, written)
        rows = pending_events(tx.conn, 10)
        assert [r["event_id"] for r in rows] == [e.event_id for e in written]
        # The kind at the time of the event; an institution unknown to the registry says so.
        assert [r["institution_kind"] for r in rows[:2]] == ["unknown", "hospital"]

        mark_published(tx.conn, [rows[0]["seq"], rows[1]["seq"]])
        tx.conn.execute(
            "update event_outbox set published_at = now() - interval '8 days' where seq = %s",
            (rows[0]["seq"],),
        )
        tx.conn.execute(
            "update event_outbox set created_at = now() - interval '30 days' where seq = %s",
            (rows[4]["seq"],),
        )
        assert purge_published(tx.conn, datetime.now(UTC) - timedelta(days=7)) == 1
        left = [r["seq"] for r in tx.conn.execute("select seq from event_outbox order by seq")]
        assert left == [r["seq"] for r in rows[1:]]  # the old pending one stays
        assert outbox_counts(tx.conn)["pending"] == 3
