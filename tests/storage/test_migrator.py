"""Migrations are applied exactly once, even when several processes start at the same moment."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from hie.storage.migrator import available

STARTER = """
import sys, threading
from pathlib import Path
from hie.config import Settings
from hie.storage import open_database
barrier_file = Path(sys.argv[2])
# Wait until every starter is ready, then all open the database at once.
while not barrier_file.exists():
    pass
open_database(Settings(database_url=sys.argv[1], data_dir=Path("/nonexistent"))).close()
"""


def test_concurrent_starters_apply_each_migration_once(empty_database_url: str, tmp_path) -> None:
    go = tmp_path / "go"
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, empty_database_url, str(go)],
            env={k: v for k, v in os.environ.items() if not k.startswith("HIE_")},
        )
        for _ in range(5)
    ]
    go.touch()
    assert [p.wait(timeout=120) for p in starters] == [0] * 5

    with psycopg.connect(empty_database_url) as conn:
        ledger = conn.execute("select version from schema_migration order by version").fetchall()
        catalog_loads = conn.execute(
            "select count(*) from audit_event where action = 'catalog.load'"
        ).fetchone()
        tables = conn.execute("select count(*) from catalog_table").fetchone()
    assert [v for (v,) in ledger] == [m.version for m in available()]
    assert catalog_loads == (1,)
    assert tables == (109,)


def test_upgrade_of_a_current_database_applies_nothing(database_url: str) -> None:
    from pathlib import Path

    from hie.config import Settings
    from hie.storage import open_database
    from hie.storage.migrator import upgrade

    database = open_database(Settings(database_url=database_url, data_dir=Path("/nonexistent")))
    try:
        assert upgrade(database) == []
    finally:
        database.close()
