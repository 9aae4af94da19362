"""What the entry points record in the audit trail (``hie.storage.audit``): who is calling
(:class:`Agent`), from where, and what they asked for with resident ID numbers and tokens masked.

Writes record their entry in their own transaction; reads record theirs after answering
(``record_read``), through a background writer (``ReadTrail``) when the app runs one.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from starlette.requests import HTTPConnection

from hie.auth import Principal
from hie.errors import HieError
from hie.storage import Connection, Database
from hie.storage.audit import record_event, record_event_nowait

log = logging.getLogger(__name__)

# 18-character resident ID numbers (17 digits and a check character), 15-digit old ones, and
# bearer tokens; the numbers are masked wherever they appear in a value (system|value too).
_SECRET = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9Xx])|hie_[A-Za-z0-9_\-]+")
MASK = "***"


def mask(text: str) -> str:
    """``text`` with anything that looks like a resident ID number or a token masked."""
    return _SECRET.sub(MASK, text)


def masked_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Search parameters as a query string for the audit trail, secrets masked."""
    return "&".join(f"{mask(name)}={mask(value)}" for name, value in pairs)


def address_of(connection: HTTPConnection) -> str | None:
    """The client's network address, as the server saw it."""
    return connection.client.host if connection.client else None


@dataclass(frozen=True)
class Agent:
    """Who an audit entry is about: the token (or local user), its role and institution, and
    the client's address."""

    actor: str
    role: str | None = None
    institution: str | None = None
    address: str | None = None

    @classmethod
    def of(cls, principal: Principal, address: str | None) -> Agent:
        return cls(principal.actor, principal.role, principal.institution_code, address)

    def record(
        self,
        conn: Connection,
        action: str,
        target: str | None,
        *,
        status: int = 200,
        wait: bool = True,
        **detail: Any,
    ) -> None:
        """Append the entry in ``conn``'s transaction (or alone, on an autocommit one; there
        ``wait=False`` does not wait for the disk, see ``record_event_nowait``)."""
        (record_event if wait else record_event_nowait)(
            conn,
            self.actor,
            action,
            target,
            role=self.role,
            institution=self.institution,
            address=self.address,
            outcome=status,
            status=status,
            **detail,
        )


def status_of(exc: BaseException) -> int:
    """The HTTP status hie's error handlers answer an exception with (hie/http/errors.py)."""
    return exc.status if isinstance(exc, HieError) else 500


class ReadTrail:
    """The audit entries of reads, written by a background thread in batches.

    A read puts its entry here (microseconds) instead of writing it before answering: one more
    round trip to the database would cost a search far more than the allowed 10 %. The thread
    writes whatever has queued up in one transaction whose commit does not wait for the disk.
    Each entry keeps the time of the read. ``close`` (at shutdown) writes what is left; a crash
    of the process loses only the entries of the last moment, never a write's (those commit
    with the write) and never the chain's consistency (an entry and its head commit together).
    """

    def __init__(self, database: Database, *, batch: int = 1000) -> None:
        self._database = database
        self._batch = batch
        self._queue: queue.SimpleQueue[_Read | None] = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="hie-audit-reads", daemon=True)
        self._thread.start()

    def put(self, entry: _Read) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(entry)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every entry put so far is written; False if that took over ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            # Linger a moment so a busy server writes many entries per transaction: one
            # transaction per read would cost the database as much as the search itself.
            deadline = time.monotonic() + LINGER_SECONDS
            while len(batch) < self._batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

    def _write(self, batch: list[_Read]) -> None:
        for attempt in range(RETRIES):
            try:
                with self._database.connection() as conn, conn.transaction():
                    conn.execute("set local synchronous_commit = off")
                    with conn.pipeline():
                        for read in batch:
                            read.write(conn)
                return
            except (psycopg.DataError, ValueError):
                # One entry the database refuses (or that is not JSON at all: the dumper refuses
                # NaN) must not take the rest of the batch with it.
                if len(batch) > 1:
                    for read in batch:
                        self._write([read])
                else:
                    log.exception("an audit entry of a read could not be written")
                return
            except Exception:  # the database may be down for a moment: try again
                if attempt == RETRIES - 1:
                    log.exception("%d audit entries of reads could not be written", len(batch))
                    return
                time.sleep(0.5 * (attempt + 1))


RETRIES = 5
LINGER_SECONDS = 0.2
# Who reads the trail first waits (at most this long) for this process's queued reads, so a read
# made a moment ago is there; other processes' last fraction of a second may not be yet.
FLUSH_BEFORE_READING = 2.0


@dataclass(frozen=True)
class _Read:
    agent: Agent
    action: str
    target: str | None
    status: int
    detail: dict[str, Any]

    def write(self, conn: Connection) -> None:
        self.agent.record(conn, self.action, self.target, status=self.status, **self.detail)


_trails: dict[int, ReadTrail] = {}
_trails_lock = threading.Lock()


def start_read_trail(database: Database) -> ReadTrail:
    """Write the reads' entries of ``database`` in the background from now on (the app does
    this at start-up; elsewhere, e.g. on the command line, each is written at once)."""
    with _trails_lock:
        trail = _trails.get(id(database))
        if trail is None:
            trail = _trails[id(database)] = ReadTrail(database)
        return trail


def stop_read_trail(database: Database) -> None:
    """Write what is queued, and go back to writing each entry at once."""
    with _trails_lock:
        trail = _trails.pop(id(database), None)
    if trail is not None:
        trail.close()


def flush_reads(database: Database | None = None, timeout: float = 30.0) -> bool:
    """Wait until the queued reads' entries of ``database`` (of every one, when None) are
    written: what a test does before it looks at the trail."""
    with _trails_lock:
        trails = list(_trails.values()) if database is None else [_trails.get(id(database))]
    return all(trail.flush(timeout) for trail in trails if trail is not None)


def record_read(
    database: Database,
    agent: Agent,
    action: str,
    target: str | None,
    *,
    status: int = 200,
    **detail: Any,
) -> None:
    """Record a read once its answer is ready: queued for the background writer when the app
    runs one, else one statement on an autocommit connection that does not wait for the disk
    (``record_event_nowait``)."""
    trail = _trails.get(id(database))
    if trail is not None:
        detail.setdefault("at", datetime.now(UTC))
        trail.put(_Read(agent, action, target, status, detail))
        return
    with database.connection() as conn:
        agent.record(conn, action, target, status=status, wait=False, **detail)
