"""The embedded PostgreSQL (pgserver) hie runs in its data folder when no database is configured."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from hie.errors import ConfigError

log = logging.getLogger(__name__)

DATABASE_NAME = "hie"

# Any fixed 64-bit number every hie process agrees on: held while the hie database is created.
CREATE_LOCK = 0x6869655F63726561  # "hie_crea"

# pgserver's record of the processes holding the server; the last one to leave stops it.
HANDLES_FILE = ".handle_pids.json"


@dataclass
class EmbeddedServer:
    """A handle on the embedded server; it stops when the last process holding one closes it."""

    pgdata: Path
    url: str
    _handle: Any

    def close(self) -> None:
        with start_lock(self.pgdata):
            self._handle.cleanup()


@contextlib.contextmanager
def start_lock(pgdata: Path) -> Iterator[None]:
    """Serialise starting and stopping the server of one data folder across processes.

    pgserver has a lock of its own, but in the user runtime folder (``/tmp/runtime-UID`` when
    XDG_RUNTIME_DIR is unset), which the system or another program may clean while hie runs;
    this one lives beside the data.
    """
    path = pgdata.parent / ".hie-postgres.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    # pgserver makes the folder with exist_ok=False: two processes starting together on a fresh
    # data folder would race there, so it is made here first (initdb then runs under its lock).
    pgdata.mkdir(exist_ok=True)
    with start_lock(pgdata):
        _forget_dead_holders(pgdata)
        handle = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        _create_database(handle.get_uri())
    except BaseException:
        with start_lock(pgdata):
            handle.cleanup()
        raise
    log.info("embedded PostgreSQL running in %s", pgdata)
    return EmbeddedServer(pgdata=pgdata, url=handle.get_uri(DATABASE_NAME), _handle=handle)


def _create_database(admin_url: str) -> None:
    """Create the hie database once, whoever else is starting at the same moment.

    Concurrent ``create database`` of one name fails with a unique violation on
    ``pg_database_datname_index`` (not always ``DuplicateDatabase``), so creators queue on an
    advisory lock and look again once they hold it.
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (CREATE_LOCK,))
        try:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE_NAME)))
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (CREATE_LOCK,))


def _forget_dead_holders(pgdata: Path) -> None:
    """Drop processes that died without leaving (SIGKILL, power loss) from pgserver's list.

    Otherwise the last live process never sees itself alone and the server is never stopped.
    """
    import pgserver.postgres_server as pgs

    path = pgdata / HANDLES_FILE
    with pgs.PostgresServer._lock:
        try:
            pids = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
        if alive != pids:
            path.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


@dataclass(frozen=True)
class EmbeddedState:
    """What ``hie db status`` says about the embedded server."""

    pgdata: Path
    initialised: bool
    pid: int | None
    holders: list[int]


def embedded_state(pgdata: Path) -> EmbeddedState:
    """Whether the embedded PostgreSQL in ``pgdata`` exists and runs, without starting it."""
    pgdata = pgdata.expanduser().resolve()
    pid: int | None = None
    try:
        first = (pgdata / "postmaster.pid").read_text().splitlines()[0]
        pid = int(first) if _alive(int(first)) else None
    except (OSError, ValueError, IndexError):
        pid = None
    try:
        holders = [p for p in json.loads((pgdata / HANDLES_FILE).read_text()) if _alive(p)]
    except (OSError, ValueError):
        holders = []
    return EmbeddedState(pgdata, (pgdata / "PG_VERSION").exists(), pid, holders)


def stop_embedded(pgdata: Path) -> bool:
    """Stop the embedded PostgreSQL in ``pgdata`` if it runs; True if it was running.

    For a server left behind by a process that was killed; processes still using it lose their
    connections.
    """
    import pgserver.postgres_server as pgs
    from pgserver._commands import pg_ctl

    pgdata = pgdata.expanduser().resolve()
    with start_lock(pgdata), pgs.PostgresServer._lock:
        if embedded_state(pgdata).pid is None:
            return False
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_system_user())
        (pgdata / HANDLES_FILE).unlink(missing_ok=True)
    return True


def _system_user() -> str | None:
    # As root, pgserver runs PostgreSQL as its own system user (see the README).
    return "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
