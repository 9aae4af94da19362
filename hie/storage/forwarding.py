"""Forwarding to upstream FHIR servers (``forward_destination``, ``forward_delivery``): the
destinations, each event's delivery state per destination, and the stored version an event names
(read here, not over HTTP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from hie.errors import Conflict, NotFound
from hie.storage.database import Connection

State = Literal["pending", "sent", "failed"]
STATES: tuple[State, ...] = ("pending", "sent", "failed")


@dataclass(frozen=True)
class Destination:
    name: str
    base_url: str
    token_env: str
    tables: tuple[str, ...] | None  # None: every table
    documents: str = "mhd"


def _destination(row: dict[str, Any]) -> Destination:
    tables = row["tables"]
    return Destination(
        row["name"],
        row["base_url"],
        row["token_env"],
        None if tables is None else tuple(tables),
        row["documents"],
    )


def add_destination(conn: Connection, destination: Destination) -> None:
    """Raises Conflict when the name is taken."""
    row = conn.execute(
        """
        insert into forward_destination (name, base_url, token_env, tables, documents)
        values (%s, %s, %s, %s, %s) on conflict (name) do nothing returning name
        """,
        (
            destination.name,
            destination.base_url,
            destination.token_env,
            None if destination.tables is None else list(destination.tables),
            destination.documents,
        ),
    ).fetchone()
    if row is None:
        raise Conflict(f"a destination named {destination.name!r} exists already")


def list_destinations(conn: Connection) -> list[Destination]:
    rows = conn.execute("select * from forward_destination order by name").fetchall()
    return [_destination(row) for row in rows]


def get_destination(conn: Connection, name: str) -> Destination:
    row = conn.execute("select * from forward_destination where name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no destination named {name!r}")
    return _destination(row)


def destination_exists(conn: Connection, name: str) -> bool:
    row = conn.execute("select 1 from forward_destination where name = %s", (name,)).fetchone()
    return row is not None


def remove_destination(conn: Connection, name: str) -> None:
    """The destination and its delivery rows; raises NotFound."""
    cursor = conn.execute("delete from forward_destination where name = %s", (name,))
    if cursor.rowcount == 0:
        raise NotFound(f"no destination named {name!r}")


@dataclass(frozen=True)
class Delivery:
    """What an event is about, as its delivery row records it."""

    event_id: UUID
    institution_code: str
    table_code: str | None
    logical_id: str
    version: int | None


def delivery_state(conn: Connection, destination: str, event_id: UUID) -> State | None:
    row = conn.execute(
        "select state from forward_delivery where destination = %s and event_id = %s",
        (destination, event_id),
    ).fetchone()
    return None if row is None else row["state"]


def record_attempt(
    conn: Connection,
    destination: str,
    delivery: Delivery,
    state: State,
    *,
    error: str | None = None,
    status: int | None = None,
    location: str | None = None,
) -> None:
    """One attempt at sending an event (made the first time): its outcome, counted.

    Its commit does not wait for the disk (asynchronous commit, for this transaction only): an
    attempt lost in a crash of PostgreSQL only means the event is sent again, which upstream
    requests are built to make harmless, and waiting would cost more than the send itself."""
    conn.execute("select set_config('synchronous_commit', 'off', true)")
    conn.execute(
        """
        insert into forward_delivery (destination, event_id, institution_code, table_code,
            logical_id, version, state, attempts, last_error, upstream_status, upstream_location)
        values (%s, %s, %s, %s, %s, %s, %s, 1, %s, %s, %s)
        on conflict (destination, event_id) do update set
            state = excluded.state,
            attempts = forward_delivery.attempts + 1,
            last_error = excluded.last_error,
            upstream_status = excluded.upstream_status,
            upstream_location = coalesce(excluded.upstream_location,
                                         forward_delivery.upstream_location),
            updated_at = now()
        """,
        (
            destination,
            delivery.event_id,
            delivery.institution_code,
            delivery.table_code,
            delivery.logical_id,
            delivery.version,
            state,
            error,
            status,
            location,
        ),
    )


def delivery_counts(conn: Connection) -> dict[str, dict[str, Any]]:
    """Per destination: how many events are pending, sent and failed, and the last failure."""
    rows = conn.execute(
        """
        select d.name, f.state, count(f.event_id) as n, max(f.updated_at) as latest
        from forward_destination d left join forward_delivery f on f.destination = d.name
        group by d.name, f.state order by d.name
        """
    ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        counts = out.setdefault(row["name"], dict.fromkeys(STATES, 0) | {"last_activity": None})
        if row["state"] is not None:
            counts[row["state"]] = row["n"]
            latest = counts["last_activity"]
            if latest is None or row["latest"] > latest:
                counts["last_activity"] = row["latest"]
    return out


def failed_deliveries(conn: Connection, destination: str, limit: int = 20) -> list[dict[str, Any]]:
    """The latest failures of a destination (ids, status and error; never content)."""
    return conn.execute(
        """
        select event_id, institution_code, table_code, logical_id, version, attempts,
            upstream_status, last_error, updated_at
        from forward_delivery where destination = %s and state = 'failed'
        order by updated_at desc limit %s
        """,
        (destination, limit),
    ).fetchall()


def reopen_failed(conn: Connection, destination: str) -> tuple[list[dict[str, Any]], int]:
    """Set the destination's failed deliveries pending again, for those whose event is still in
    the outbox: their outbox rows (to publish again), and how many failed ones are left (their
    event purged)."""
    rows = conn.execute(
        """
        update forward_delivery f
        set state = 'pending', last_error = 'sent again by hand', updated_at = now()
        from event_outbox e
        where f.destination = %s and f.state = 'failed' and e.event_id = f.event_id
        returning e.*
        """,
        (destination,),
    ).fetchall()
    left = conn.execute(
        "select count(*) as n from forward_delivery where destination = %s and state = 'failed'",
        (destination,),
    ).fetchone()
    return sorted(rows, key=lambda r: r["seq"]), int(left["n"] if left else 0)


def fail_again(conn: Connection, destination: str, event_id: UUID) -> None:
    """Undo :func:`reopen_failed` for one event whose message could not be published."""
    conn.execute(
        """
        update forward_delivery set state = 'failed', last_error = 'not sent again: '
            || 'RabbitMQ did not take it', updated_at = now()
        where destination = %s and event_id = %s and state = 'pending'
        """,
        (destination, event_id),
    )


def stored_version(
    conn: Connection, institution_code: str, logical_id: str, version: int
) -> dict[str, Any] | None:
    """The stored version an event names: ``resource`` (FHIR), ``raw_xml`` (CDA, byte-exact),
    ``deleted``, ``received_at``."""
    row: dict[str, Any] | None = conn.execute(
        """
        select resource, raw_xml, deleted, received_at from record_version
        where institution_code = %s and logical_id = %s and version = %s
        """,
        (institution_code, logical_id, version),
    ).fetchone()
    return row
