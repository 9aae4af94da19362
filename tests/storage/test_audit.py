"""The audit trail is a hash chain: an edited, deleted, inserted or reordered entry is found, and
the first broken entry is named."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from hie.storage import Database
from hie.storage.audit import (
    EventFilter,
    action_code,
    outcome_code,
    record_event,
    search_events,
    verify_chain,
)


def _write(db: Database, n: int = 5) -> list[int]:
    with db.connection() as conn:
        for i in range(n):
            record_event(
                conn,
                "token:7",
                "fhir.read",
                f"Patient/p{i}",
                role="submitter",
                institution="H01",
                address="10.0.0.9",
                outcome=200 if i % 2 == 0 else 403,
                status=200,
            )
        rows = conn.execute(
            "select id from audit_event where actor = 'token:7' order by seq"
        ).fetchall()
    return [r["id"] for r in rows]


def test_entries_are_chained_and_verify(db: Database) -> None:
    ids = _write(db)
    with db.connection() as conn:
        rows = conn.execute(
            "select id, role, institution, address, outcome, detail, seq, prev_hash, hash"
            " from audit_event where actor = 'token:7' order by seq"
        ).fetchall()
        result = verify_chain(conn)
    assert [r["id"] for r in rows] == ids
    assert rows[0]["role"] == "submitter" and rows[0]["institution"] == "H01"
    assert rows[0]["address"] == "10.0.0.9"
    assert [r["outcome"] for r in rows] == [0, 4, 0, 4, 0]
    assert rows[0]["detail"] == {"status": 200}  # lifted fields leave the detail
    for before, after in itertools.pairwise(rows):
        assert after["seq"] == before["seq"] + 1
        assert bytes(after["prev_hash"]) == bytes(before["hash"])
    assert result.intact, result.breaks
    assert result.entries >= 5


def test_an_edited_entry_is_named(db: Database) -> None:
    ids = _write(db)
    with db.connection() as conn:
        conn.execute("update audit_event set target = 'Patient/other' where id = %s", (ids[2],))
        result = verify_chain(conn)
    assert not result.intact
    first = result.breaks[0]
    assert first.event_id == ids[2]
    assert "edited" in first.problem
    assert str(ids[2]) in first.describe()


def test_an_edited_detail_or_time_is_found(db: Database) -> None:
    ids = _write(db)
    with db.connection() as conn:
        conn.execute("update audit_event set at = at - interval '1 hour' where id = %s", (ids[1],))
        assert verify_chain(conn).breaks[0].event_id == ids[1]
        conn.execute("update audit_event set at = at + interval '1 hour' where id = %s", (ids[1],))
        assert verify_chain(conn).intact
        conn.execute("update audit_event set detail = '{}' where id = %s", (ids[3],))
        assert verify_chain(conn).breaks[0].event_id == ids[3]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(db: Database) -> None:
    ids = _write(db)
    with db.connection() as conn:
        conn.execute(
            "update audit_event set outcome = 0, hash = audit_entry_hash(prev_hash, day, shard,"
            " seq, at, actor, role, institution, action, target, 0::smallint, address, detail)"
            " where id = %s",
            (ids[1],),
        )
        first = verify_chain(conn).breaks[0]
    assert first.event_id == ids[2]
    assert "previous hash" in first.problem


def test_a_deleted_entry_is_named(db: Database) -> None:
    ids = _write(db)
    with db.connection() as conn:
        seq = conn.execute("select seq from audit_event where id = %s", (ids[2],)).fetchone()
        conn.execute("delete from audit_event where id = %s", (ids[2],))
        first = verify_chain(conn).breaks[0]
    assert seq is not None
    assert first.seq == seq["seq"]
    assert first.event_id is None
    assert "deleted" in first.problem and str(ids[3]) in first.problem


def test_deleting_the_newest_entry_is_found(db: Database) -> None:
    ids = _write(db)
    with db.connection() as conn:
        conn.execute("delete from audit_event where id = %s", (ids[-1],))
        first = verify_chain(conn).breaks[0]
    assert "deleted" in first.problem and "newest" in first.problem


def test_an_inserted_entry_is_found(db: Database) -> None:
    _write(db)
    with db.connection() as conn:
        conn.execute(
            "insert into audit_event (actor, action, target) values ('token:1', 'fhir.read', 'x')"
        )
        inserted = conn.execute("select max(id) as id from audit_event").fetchone()
        first = verify_chain(conn).breaks[0]
    assert inserted is not None
    assert first.event_id == inserted["id"]
    assert "inserted" in first.problem


def test_an_entry_inserted_into_the_chain_is_named(db: Database) -> None:
    """A forger who shifts the later entries up to make room is still found at the forgery."""
    ids = _write(db)
    with db.connection() as conn:
        conn.execute("drop index audit_event_chain_idx")
        row = conn.execute(
            "select day, shard, seq, prev_hash from audit_event where id = %s", (ids[2],)
        ).fetchone()
        assert row is not None
        conn.execute(
            "update audit_event set seq = seq + 1 where day = %s and shard = %s and seq >= %s",
            (row["day"], row["shard"], row["seq"]),
        )
        forged = conn.execute(
            "insert into audit_event (at, day, shard, seq, prev_hash, hash, actor, action, target)"
            " values (now(), %(day)s, %(shard)s, %(seq)s, %(prev_hash)s, audit_entry_hash("
            "%(prev_hash)s, %(day)s, %(shard)s, %(seq)s, now(), 'token:1', null, null,"
            " 'fhir.read', 'x', 0::smallint, null, '{}'), 'token:1', 'fhir.read', 'x')"
            " returning id",
            row,
        ).fetchone()
        first = verify_chain(conn).breaks[0]
    assert forged is not None
    # The forged entry itself hashes right and links to the one before; the entry after it was
    # renumbered (its hash covers its number) and no longer links to it.
    assert first.event_id == ids[2]
    assert "edited" in first.problem or "previous hash" in first.problem


def test_reordered_entries_are_found(db: Database) -> None:
    ids = _write(db)
    with db.connection() as conn:
        conn.execute("drop index audit_event_chain_idx")
        conn.execute(
            "update audit_event set seq = case when id = %s then (select seq from audit_event"
            " where id = %s) else (select seq from audit_event where id = %s) end"
            " where id in (%s, %s)",
            (ids[1], ids[2], ids[1], ids[1], ids[2]),
        )
        first = verify_chain(conn).breaks[0]
    assert first.event_id in (ids[1], ids[2])


def test_verify_limits_itself_to_the_days_asked(db: Database) -> None:
    ids = _write(db)
    with db.connection() as conn:
        conn.execute("update audit_event set target = 'x' where id = %s", (ids[0],))
        today = datetime.now(UTC).date()
        assert not verify_chain(conn, start=today, end=today + timedelta(days=1)).intact
        assert verify_chain(conn, start=date(2001, 1, 1), end=date(2001, 2, 1)).intact


def test_search_by_actor_target_action_and_outcome(db: Database) -> None:
    _write(db)
    with db.connection() as conn:
        assert len(search_events(conn, EventFilter(actor="token:7"))) == 5
        assert len(search_events(conn, EventFilter(target="Patient/p1"))) == 1
        assert len(search_events(conn, EventFilter(actor="token:7", target="Patient"))) == 5
        assert len(search_events(conn, EventFilter(actor="token:7", action="R"))) == 5
        assert search_events(conn, EventFilter(actor="token:7", action="D")) == []
        assert len(search_events(conn, EventFilter(actor="token:7", outcome=4))) == 2


@pytest.mark.parametrize(
    ("action", "code"),
    [("fhir.read", "R"), ("token.create", "C"), ("fhir.delete", "D"), ("fhir.search", "E")],
)
def test_action_codes(action: str, code: str) -> None:
    assert action_code(action) == code


def test_outcome_codes() -> None:
    assert [outcome_code(v) for v in (200, 201, 403, 404, 500, "success", "failure", 8)] == [
        0,
        0,
        4,
        4,
        8,
        0,
        4,
        8,
    ]


def test_concurrent_writers_keep_every_segment_intact(database_url: str) -> None:
    """Writers on several connections append at once; no entry is lost and no link breaks."""

    def write(n: int) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for i in range(40):
                with conn.transaction():
                    record_event(conn, f"token:{n}", "fhir.read", f"Patient/{n}-{i}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        written = conn.execute(
            "select count(*) as n from audit_event where action = 'fhir.read'"
        ).fetchone()
        result = verify_chain(conn)
    assert written == {"n": 240}
    assert result.intact, result.breaks


def test_unstorable_characters_are_recorded_replaced_and_the_chain_holds(db: Database) -> None:
    # A hostile request is audited with what it asked for: NUL and lone surrogates included.
    with db.connection() as conn:
        record_event(
            conn,
            "token:8",
            "fhir.search",
            "Patient\x00x",
            outcome=400,
            query="name=\x00\ud800",
            nested={"k\x00": ["\udfff"]},
        )
        row = conn.execute(
            "select target, detail from audit_event where actor = 'token:8'"
        ).fetchone()
        result = verify_chain(conn)
    assert row is not None
    assert row["target"] == "Patient\ufffdx"
    assert row["detail"] == {"query": "name=\ufffd\ufffd", "nested": {"k\ufffd": ["\ufffd"]}}
    assert result.intact, result.breaks
