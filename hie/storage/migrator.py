"""Numbered SQL migrations (``migrations/NNNN_name.sql``), applied once under an advisory lock."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

from hie.storage.database import Connection, Database

log = logging.getLogger(__name__)

# Any fixed 64-bit number; every hie process agrees on it, nothing else in the database uses it.
MIGRATION_LOCK = 0x6869655F6D696772  # "hie_migr"

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    found = []
    for entry in resources.files("hie.storage.migrations").iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    duplicates = sorted({v for v in versions if versions.count(v) > 1})
    if duplicates:
        raise RuntimeError(f"two migrations share the number(s) {duplicates}; renumber one")
    return found


def _ensure_ledger(conn: Connection) -> None:
    conn.execute(
        """
        create table if not exists schema_migration (
            version integer primary key,
            name text not null,
            checksum text not null,
            applied_at timestamptz not null default now()
        )
        """
    )


def applied(conn: Connection) -> dict[int, str]:
    """Applied versions and their checksums; empty on a database hie never touched."""
    exists = conn.execute("select to_regclass('schema_migration') is not null as e").fetchone()
    if not exists or not exists["e"]:
        return {}
    rows = conn.execute("select version, checksum from schema_migration").fetchall()
    return {r["version"]: r["checksum"] for r in rows}


def upgrade(database: Database) -> list[Migration]:
    """Apply every pending migration, then seed the default catalog into an empty database.

    Holding a session advisory lock makes concurrent starters wait; each re-reads the ledger once
    it has the lock, so every migration runs exactly once whoever starts first.
    """
    from hie.storage.catalog import seed_default_catalog

    done_now: list[Migration] = []
    with database.connection() as conn:
        conn.execute("select pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            _ensure_ledger(conn)
            done = applied(conn)
            for migration in available():
                recorded = done.get(migration.version)
                if recorded is not None:
                    if recorded != migration.checksum:
                        log.warning(
                            "migration %04d_%s was edited after it was applied; "
                            "migrations are append-only, add a new one instead",
                            migration.version,
                            migration.name,
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "insert into schema_migration (version, name, checksum)"
                        " values (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                log.info("applied migration %04d_%s", migration.version, migration.name)
                done_now.append(migration)
            with conn.transaction():
                seed_default_catalog(conn)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return done_now
