"""FHIR Subscriptions (``subscription``) and their deliveries (``subscription_delivery``).

The active subscriptions of a resource type, with their owner token's role and institution, are
what the deliverer matches an event against; a delivery row per (subscription, event) makes a
redelivered event harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from hie.storage.database import Connection


@dataclass(frozen=True)
class SubscriptionRow:
    """What the matcher and the sender need of one subscription."""

    id: str
    resource_type: str
    criteria: str
    endpoint: str
    payload: str | None
    headers: list[str]
    owner_role: str
    owner_institution: str | None


@dataclass(frozen=True)
class NewSubscription:
    id: str
    owner_token_id: int
    resource: dict[str, Any]
    status: str
    resource_type: str
    criteria: str
    endpoint: str
    payload: str | None
    headers: list[str]


def insert_subscription(conn: Connection, new: NewSubscription) -> dict[str, Any]:
    row = conn.execute(
        """
        insert into subscription (id, owner_token_id, resource, status, resource_type, criteria,
            endpoint, payload, headers)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s) returning *
        """,
        (
            new.id,
            new.owner_token_id,
            Jsonb(new.resource),
            new.status,
            new.resource_type,
            new.criteria,
            new.endpoint,
            new.payload,
            Jsonb(new.headers),
        ),
    ).fetchone()
    if row is None:
        raise RuntimeError("insert returned no row")
    return dict(row)


def replace_subscription(conn: Connection, new: NewSubscription) -> dict[str, Any] | None:
    """A new version of an existing subscription (its owner unchanged); the error is cleared."""
    row = conn.execute(
        """
        update subscription set version = version + 1, resource = %s, status = %s, error = null,
            resource_type = %s, criteria = %s, endpoint = %s, payload = %s, headers = %s,
            last_updated = now()
        where id = %s returning *
        """,
        (
            Jsonb(new.resource),
            new.status,
            new.resource_type,
            new.criteria,
            new.endpoint,
            new.payload,
            Jsonb(new.headers),
            new.id,
        ),
    ).fetchone()
    return None if row is None else dict(row)


_PLAIN = "select * from subscription where id = %s"
_LOCKED = _PLAIN + " for update"


def get_subscription(conn: Connection, subscription_id: str, *, lock: bool = False) -> Any:
    """The row of one subscription (a dict), or None; ``lock``: for update."""
    statement = _LOCKED if lock else _PLAIN
    return conn.execute(statement, (subscription_id,)).fetchone()


def delete_subscription(conn: Connection, subscription_id: str) -> bool:
    cursor = conn.execute("delete from subscription where id = %s", (subscription_id,))
    return cursor.rowcount > 0


def list_subscriptions(
    conn: Connection,
    *,
    owner_token_id: int | None,
    ids: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Subscriptions by id; only one owner's when ``owner_token_id`` is given."""
    return conn.execute(
        """
        select * from subscription
        where (%(owner)s::bigint is null or owner_token_id = %(owner)s)
          and (%(ids)s::text[] is null or id = any(%(ids)s))
          and (%(statuses)s::text[] is null or status = any(%(statuses)s))
        order by id limit %(limit)s offset %(offset)s
        """,
        {
            "owner": owner_token_id,
            "ids": None if ids is None else list(ids),
            "statuses": None if statuses is None else list(statuses),
            "limit": limit,
            "offset": offset,
        },
    ).fetchall()


def requested_subscriptions(conn: Connection) -> list[dict[str, Any]]:
    """Subscriptions waiting for a deliverer to take them, locked (others skip them)."""
    return conn.execute(
        "select * from subscription where status = 'requested' order by id for update skip locked"
    ).fetchall()


def set_status(
    conn: Connection, subscription_id: str, status: str, error: str | None = None
) -> None:
    """The server's change of status (a new version, as HAPI makes one)."""
    conn.execute(
        """
        update subscription set status = %s, error = %s, version = version + 1,
            last_updated = now()
        where id = %s
        """,
        (status, error, subscription_id),
    )


def active_subscriptions(conn: Connection, resource_type: str) -> list[SubscriptionRow]:
    """The active subscriptions on ``resource_type`` whose owner token is not revoked."""
    rows = conn.execute(
        """
        select s.id, s.resource_type, s.criteria, s.endpoint, s.payload, s.headers,
            t.role as owner_role, t.institution_code as owner_institution
        from subscription s join access_token t on t.id = s.owner_token_id
        where s.status = 'active' and s.resource_type = %s and t.revoked_at is null
        order by s.id
        """,
        (resource_type,),
    ).fetchall()
    return [SubscriptionRow(**row) for row in rows]


@dataclass(frozen=True)
class NewDelivery:
    subscription_id: str
    event_id: UUID
    institution_code: str
    logical_id: str
    version: int


def add_deliveries(conn: Connection, deliveries: Sequence[NewDelivery]) -> int:
    """Pending deliveries; one already there (the event seen before) is left as it is. How many
    are new."""
    if not deliveries:
        return 0
    cursor = conn.execute(
        """
        insert into subscription_delivery (subscription_id, event_id, institution_code,
            logical_id, version)
        select * from unnest(%s::text[], %s::uuid[], %s::text[], %s::text[], %s::integer[])
        on conflict (subscription_id, event_id) do nothing
        """,
        (
            [d.subscription_id for d in deliveries],
            [d.event_id for d in deliveries],
            [d.institution_code for d in deliveries],
            [d.logical_id for d in deliveries],
            [d.version for d in deliveries],
        ),
    )
    return cursor.rowcount


@dataclass(frozen=True)
class Due:
    """A delivery claimed for sending, with what sending needs."""

    subscription_id: str
    event_id: UUID
    institution_code: str
    logical_id: str
    version: int
    attempts: int
    owner_token_id: int
    endpoint: str
    payload: str | None
    headers: list[str]


def claim_due(conn: Connection, limit: int, lease: timedelta) -> list[Due]:
    """Pending deliveries of active subscriptions that are due, oldest first (each
    subscription's in the order its events were matched); each is leased (``next_attempt_at``
    moved ``lease`` ahead) so no other deliverer sends it meanwhile, and a deliverer that dies
    with it in hand leaves it to be sent again when the lease ends. ``attempts``: the tries
    before this one."""
    rows = conn.execute(
        """
        with due as (
            select d.subscription_id, d.event_id from subscription_delivery d
            join subscription s on s.id = d.subscription_id and s.status = 'active'
            where d.state = 'pending' and d.next_attempt_at <= now()
            order by d.next_attempt_at, d.created_at limit %s
            for update of d skip locked
        )
        update subscription_delivery d set next_attempt_at = now() + %s
        from due, subscription s
        where d.subscription_id = due.subscription_id and d.event_id = due.event_id
          and s.id = d.subscription_id
        returning d.subscription_id, d.event_id, d.institution_code, d.logical_id, d.version,
            d.attempts, d.created_at, s.owner_token_id, s.endpoint, s.payload, s.headers
        """,
        (limit, lease),
    ).fetchall()
    # UPDATE ... RETURNING keeps no order: the order the events were matched in.
    rows.sort(key=lambda row: row["created_at"])
    return [Due(**{k: v for k, v in row.items() if k != "created_at"}) for row in rows]


def mark_sent(conn: Connection, subscription_id: str, event_id: UUID) -> None:
    conn.execute(
        """
        update subscription_delivery set state = 'sent', sent_at = now(), last_error = null,
            attempts = attempts + 1
        where subscription_id = %s and event_id = %s
        """,
        (subscription_id, event_id),
    )


def retry_later(
    conn: Connection, subscription_id: str, event_id: UUID, at: datetime, why: str
) -> None:
    conn.execute(
        """
        update subscription_delivery set next_attempt_at = %s, last_error = %s,
            attempts = attempts + 1
        where subscription_id = %s and event_id = %s
        """,
        (at, why, subscription_id, event_id),
    )


def hold_back(
    conn: Connection, subscription_id: str, event_ids: Sequence[UUID], at: datetime
) -> None:
    """Claimed deliveries left unsent because their subscriber just failed: due again at
    ``at``, no try counted."""
    conn.execute(
        """
        update subscription_delivery set next_attempt_at = %s
        where subscription_id = %s and event_id = any(%s) and state = 'pending'
        """,
        (at, subscription_id, list(event_ids)),
    )


def mark_failed(conn: Connection, subscription_id: str, event_id: UUID, why: str) -> None:
    conn.execute(
        """
        update subscription_delivery set state = 'failed', last_error = %s,
            attempts = attempts + 1
        where subscription_id = %s and event_id = %s
        """,
        (why, subscription_id, event_id),
    )


def delivery_counts(conn: Connection, subscription_id: str) -> dict[str, int]:
    """Deliveries of one subscription by state."""
    rows = conn.execute(
        """
        select state, count(*) as n from subscription_delivery
        where subscription_id = %s group by state
        """,
        (subscription_id,),
    ).fetchall()
    return {row["state"]: int(row["n"]) for row in rows}
