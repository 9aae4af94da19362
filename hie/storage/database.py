"""Connections and transactions: one code path for the embedded and a configured PostgreSQL."""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg.types.json
import simplejson
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from hie.config import Settings
from hie.storage.embedded import EmbeddedServer, start_embedded

log = logging.getLogger(__name__)

IDLE = TransactionStatus.IDLE

Connection = psycopg.Connection[dict[str, Any]]


def _json_dumps(value: Any) -> str:
    return simplejson.dumps(value, ensure_ascii=False)


def _decimal_loads(data: str | bytes) -> Any:
    return simplejson.loads(data, use_decimal=True)


# jsonb written with simplejson: a FHIR decimal parsed as Decimal is stored with its digits
# (jsonb keeps 1.50 as 1.50), and JSON text already made (RawJSON) goes in as it is.
psycopg.types.json.set_json_dumps(_json_dumps)


def decimal_cursor(conn: Connection) -> psycopg.Cursor[dict[str, Any]]:
    """A cursor that reads jsonb numbers with a fraction as Decimal, for stored FHIR resources
    (a decimal is served as it was sent). Other jsonb stays float: the figures computed from
    normalized records mix them with floats."""
    cursor = conn.cursor()
    psycopg.types.json.set_json_loads(_decimal_loads, cursor)
    return cursor


@dataclass
class Transaction:
    """An open transaction and what to do once it has committed (send tasks, for instance)."""

    conn: Connection
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` only if and after this transaction commits."""
        self._after_commit.append(callback)


# A connection back in the pool for less than this is handed out again unchecked: checking
# costs a round trip per request (a fifth of a CDA upload's time on a busy server), and one
# just returned in good order has had no time to be broken by a restart unnoticed; one that is
# broken all the same fails its request with a 503 and is discarded when it comes back.
CHECK_AFTER_IDLE = 1.0

_returned_at: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()


def _returned(conn: Connection) -> None:
    _returned_at[conn] = time.monotonic()


def _check_if_idle(conn: Connection) -> None:
    if time.monotonic() - _returned_at.get(conn, -math.inf) >= CHECK_AFTER_IDLE:
        ConnectionPool.check_connection(conn)


class Database:
    """A connection pool, or for tests a single connection already inside a transaction.

    Every write goes through :meth:`transaction`. Connections are in autocommit mode outside it,
    so a read never leaves a transaction open.
    """

    def __init__(
        self,
        pool: ConnectionPool[Connection] | None = None,
        *,
        connection: Connection | None = None,
        embedded: EmbeddedServer | None = None,
    ) -> None:
        if (pool is None) == (connection is None):
            raise ValueError("give a pool or a connection")
        self._pool = pool
        self._connection = connection
        self._embedded = embedded
        self._open_transactions: list[Transaction] = []

    @classmethod
    def from_url(
        cls, url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 30.0
    ) -> Database:
        """A pool on ``url``. Once open, taking a connection fails within ``timeout`` seconds
        (``PoolTimeout``, a ``psycopg.OperationalError``) while the server is unreachable."""
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
        if "connect_timeout" not in conninfo_to_dict(url):
            # libpq counts whole seconds, and at least 2.
            kwargs["connect_timeout"] = max(2, math.ceil(timeout))
        pool: ConnectionPool[Connection] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs=kwargs,
            timeout=timeout,
            # A connection broken by a server restart is replaced before it is handed out, not
            # discovered by the request that gets it.
            check=_check_if_idle,
            reset=_returned,
            open=False,
            name="hie",
        )
        # At start the server may still be coming up: keep trying for 30 s.
        pool.open(wait=True, timeout=30)
        # Afterwards a reconnection gives up quickly, and the next request that finds the pool
        # empty starts a new one: with the pool's default (retrying for 5 minutes with a doubling
        # delay) requests would go on failing, after the server is back, for up to as long again
        # as the outage lasted.
        pool.reconnect_timeout = timeout
        return cls(pool)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        if self._connection is not None:
            yield self._connection
            return
        with self._pool.connection() as conn:  # type: ignore[union-attr]
            yield conn

    @contextmanager
    def transaction(self, *, pipelined: bool = False) -> Iterator[Transaction]:
        """A unit of work. Callbacks registered on it run after the outermost one commits.

        ``pipelined``: in psycopg's pipeline mode, BEGIN, the statements whose results are not
        read, and the COMMIT go out without waiting for answers; reading a result
        (``fetchone``) waits for what was sent before it. A write of many statements then costs
        a few round trips, not one each (see :func:`_pipelined`)."""
        with self.connection() as conn:
            if pipelined and conn.autocommit and conn.info.transaction_status == IDLE:
                with _pipelined(conn) as tx:
                    yield tx
            else:
                with conn.transaction():
                    tx = Transaction(conn)
                    yield tx
        # Reached only when the block committed; an exception skips the callbacks.
        for callback in tx._after_commit:
            callback()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._embedded is not None:
            self._embedded.close()
            self._embedded = None


@contextmanager
def _pipelined(conn: Connection) -> Iterator[Transaction]:
    """A transaction in pipeline mode, begun and committed by hand: psycopg's own
    ``transaction()`` waits for the BEGIN's answer when entered in a pipeline, and a COMMIT
    outside the pipeline is one more round trip. An error of any statement (raised when its
    answer is read, at the latest when the pipeline ends) or of the caller rolls it all back."""
    try:
        with conn.pipeline() as pipeline:
            conn.execute("begin")
            # Until a sync point psycopg sees the connection idle: a savepoint taken with
            # ``conn.transaction()`` (a batch entry's) would then COMMIT this transaction.
            pipeline.sync()
            tx = Transaction(conn)
            yield tx
            conn.execute("commit")
    except BaseException:
        if conn.info.transaction_status != IDLE and not conn.closed:
            conn.execute("rollback")
        raise


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """Connect to the configured PostgreSQL, or start the embedded one, and bring the schema up.

    Migrations run under an advisory lock, so many processes may call this at the same moment.
    """
    from hie.storage.migrator import upgrade

    embedded: EmbeddedServer | None = None
    if settings.database_url is None:
        embedded = start_embedded(settings.embedded_pgdata)
        url = embedded.url
    else:
        url = settings.database_url.get_secret_value()
    try:
        database = Database.from_url(
            url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            timeout=settings.db_timeout,
        )
    except Exception:
        if embedded is not None:
            embedded.close()
        raise
    database._embedded = embedded
    if migrate:
        try:
            upgrade(database)
        except Exception:
            database.close()
            raise
    return database
