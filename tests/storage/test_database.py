"""Database.transaction: what a unit of work may rely on."""

from __future__ import annotations

import pytest

from hie.config import Settings
from hie.storage import open_database


class _Undo(Exception):
    pass


def test_a_savepoint_inside_a_pipelined_transaction_does_not_commit_it(settings: Settings) -> None:
    """A batch entry runs under ``conn.transaction()`` inside a pipelined write transaction: it
    must be a savepoint. Were it a transaction of its own (psycopg sees a pipelined connection
    idle until a sync point), it would commit the outer work half-way and release its locks."""
    database = open_database(settings)
    try:
        with database.connection() as conn:
            conn.execute("create table pipelined_probe (n int)")

        def failing_request() -> None:
            with database.transaction(pipelined=True) as tx:
                tx.conn.execute("insert into pipelined_probe values (1)")
                # A result read before the savepoint (as a write reads its record head's id).
                assert tx.conn.execute("select count(*) as n from pipelined_probe").fetchone()
                with tx.conn.transaction():  # a batch entry's savepoint
                    tx.conn.execute("insert into pipelined_probe values (2)")
                raise _Undo  # the request fails after its entries: nothing of it may stay

        with pytest.raises(_Undo):
            failing_request()
        with database.connection() as conn:
            left = conn.execute("select count(*) as n from pipelined_probe").fetchone()
        assert left is not None and left["n"] == 0
    finally:
        database.close()
