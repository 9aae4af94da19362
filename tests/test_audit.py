"""The background writer of read entries: one entry the database refuses costs only itself."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from hie.audit import Agent, ReadTrail, _Read
from hie.storage import Database


def test_an_entry_the_database_refuses_does_not_take_its_batch_with_it(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        trail = ReadTrail(Database(connection=conn))
        agent = Agent("token:9", "regulator", None, "127.0.0.1")
        # NaN is not JSON: this entry's detail is refused (by the JSON dumper, or PostgreSQL).
        details = [{"n": 1}, {"n": float("nan")}, {"n": 3}]
        for detail in details:
            trail.put(_Read(agent, "fhir.search", "Patient", 200, detail))
        assert trail.flush(30)
        trail.close()
        written = conn.execute(
            "select detail from audit_event where actor = 'token:9' order by seq"
        ).fetchall()
    assert [row["detail"] for row in written] == [{"n": 1, "status": 200}, {"n": 3, "status": 200}]
