"""Beat's daily purge of events published more than a week ago, run in-process."""

from __future__ import annotations

from hie.config import Settings
from hie.storage import open_database
from hie.storage.outbox import mark_published, pending_events
from hie.workers.app import configure
from hie.workers.maintenance import purge_events
from hie.workers.runtime import bind_runtime
from tests.events.test_relay import RECORDS, VERSIONS, write_events


def test_beat_purges_events_published_a_week_ago(settings: Settings) -> None:
    assert configure(settings).conf.beat_schedule["purge-events"]["task"] == purge_events.name
    write_events(settings)
    database = open_database(settings, migrate=False)
    bind_runtime(settings, database)
    try:
        with database.transaction() as tx:
            seqs = [r["seq"] for r in pending_events(tx.conn, 10)]
            mark_published(tx.conn, seqs)
            tx.conn.execute(
                "update event_outbox set published_at = now() - interval '8 days' "
                "where seq = any(%s)",
                (seqs[:4],),
            )
        assert purge_events.delay().get() == 4
        with database.connection() as conn:
            row = conn.execute("select count(*) as n from event_outbox").fetchone()
        assert row is not None and row["n"] == RECORDS * VERSIONS - 4
    finally:
        bind_runtime(settings, None)
        database.close()
