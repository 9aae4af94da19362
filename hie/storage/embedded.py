"""The embedded PostgreSQL (pgserver) hie runs in its data folder when no database is configured."""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from hie.errors import ConfigError

log = logging.getLogger(__name__)

DATABASE_NAME = "hie"


@dataclass
class EmbeddedServer:
    """A handle on the embedded server; it stops when the last process holding one closes it."""

    pgdata: Path
    url: str
    _handle: Any

    def close(self) -> None:
        self._handle.cleanup()


def start_embedded(pgdata: Path) -> EmbeddedServer:
    """Start (or join) the PostgreSQL kept in ``pgdata``, creating it and the hie database once."""
    with warnings.catch_warnings():
        # pgserver keeps its lock files in the user runtime folder and warns when XDG_RUNTIME_DIR
        # is unset (servers, containers); the fallback it picks works.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        return _start(pgdata)


def _start(pgdata: Path) -> EmbeddedServer:
    import pgserver  # imported late: its import looks for binaries, needless with a real server

    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # PostgreSQL's Unix socket path is limited to 107 bytes; say so instead of a cryptic failure.
    socket = pgdata / ".s.PGSQL.5432"
    if len(str(socket).encode()) > 107:
        raise ConfigError(
            f"HIE_DATA_DIR is too deep for PostgreSQL's socket ({socket}); choose a shorter path"
        )
    handle = pgserver.get_server(pgdata, cleanup_mode="stop")
    admin_url = handle.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (DATABASE_NAME,)
        ).fetchone()
        if not exists:
            # Another hie process may create it at the same moment.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE_NAME)))
    log.info("embedded PostgreSQL running in %s", pgdata)
    return EmbeddedServer(pgdata=pgdata, url=handle.get_uri(DATABASE_NAME), _handle=handle)
