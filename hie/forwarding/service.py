"""Forwarding's operations for entry points (CLI, API): a destination checked and stored, and
the status of every destination: what is pending, sent and failed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from hie.catalog import Catalog
from hie.errors import InvalidInput, Problem
from hie.events.model import message_of
from hie.forwarding import queues
from hie.storage import Connection, Database
from hie.storage.audit import record_event
from hie.storage.forwarding import (
    Destination,
    add_destination,
    delivery_counts,
    fail_again,
    failed_deliveries,
    get_destination,
    list_destinations,
    remove_destination,
    reopen_failed,
)

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
DOCUMENT_MODES = ("mhd", "inline")


def checked_destination(
    name: str,
    base_url: str,
    token_env: str,
    tables: Sequence[str] | None,
    documents: str,
    catalog: Catalog,
) -> Destination:
    """A destination from what the user typed; InvalidInput listing every problem."""
    problems: list[Problem] = []
    if not NAME.fullmatch(name):
        problems.append(
            Problem("lower case letters, digits, '-' and '_', at most 63", field="name")
        )
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(Problem("an absolute http(s) URL of a FHIR base", field="url"))
    elif parts.username or parts.password or parts.query or parts.fragment:
        # The URL is stored and shown: credentials go in the token's variable, not here.
        problems.append(Problem("no user, password, query or fragment", field="url"))
    if not ENV_NAME.fullmatch(token_env):
        problems.append(Problem("the name of an environment variable", field="token-env"))
    unknown = [t for t in tables or () if catalog.get(t) is None]
    if unknown:
        problems.append(Problem(f"not tables of the catalog: {', '.join(unknown)}", field="tables"))
    if documents not in DOCUMENT_MODES:
        problems.append(Problem(f"{' or '.join(DOCUMENT_MODES)}", field="documents"))
    if problems:
        raise InvalidInput("the destination", problems)
    return Destination(
        name,
        base_url.rstrip("/"),
        token_env,
        tuple(dict.fromkeys(tables)) if tables else None,
        documents,
    )


def add(conn: Connection, destination: Destination, *, actor: str) -> None:
    """Store the destination (Conflict when the name is taken), audited."""
    add_destination(conn, destination)
    record_event(
        conn,
        actor,
        "forward.add",
        destination.name,
        url=destination.base_url,
        token_env=destination.token_env,
        tables=list(destination.tables) if destination.tables else None,
        documents=destination.documents,
    )


def remove(conn: Connection, name: str, *, actor: str) -> None:
    """Remove the destination and its delivery state (NotFound), audited."""
    remove_destination(conn, name)
    record_event(conn, actor, "forward.remove", name)


def retry_failed(database: Database, broker_url: str, prefix: str, name: str) -> tuple[int, int]:
    """Send a destination's failed records again (after the upstream or its configuration was
    fixed): set pending, committed, then put back in its queue; a publish that fails sets them
    failed again. How many were sent again, and how many could not be (their event purged from
    the outbox)."""
    with database.transaction() as tx:
        get_destination(tx.conn, name)  # NotFound
        rows, left = reopen_failed(tx.conn, name)
    if rows:
        try:
            queues.republish(
                broker_url, queues.queue_of(prefix, name), [message_of(r) for r in rows]
            )
        except Exception:
            with database.transaction() as tx:
                for row in rows:
                    fail_again(tx.conn, name, row["event_id"])
            raise
    return len(rows), left


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def current_status(conn: Connection, broker_url: str | None, prefix: str) -> list[dict[str, Any]]:
    """:func:`status`, with what waits in each destination's queue when there is a broker."""
    depths: dict[str, int | None] = {}
    names = [d.name for d in list_destinations(conn)]
    if broker_url is not None and names:
        found = queues.waiting(broker_url, [queues.queue_of(prefix, n) for n in names])
        depths = {n: found.get(queues.queue_of(prefix, n)) for n in names}
    return status(conn, depths)


def status(conn: Connection, waiting: dict[str, int | None] | None = None) -> list[dict[str, Any]]:
    """Per destination: ``pending`` (received, not yet answered 2xx, retrying; plus the events
    still waiting in its queue when ``waiting`` gives them), ``sent``, ``failed``, ``queued``
    (None when the broker was not asked or did not answer), and the latest failures."""
    counts = delivery_counts(conn)
    out = []
    for destination in list_destinations(conn):
        row = counts.get(destination.name, {})
        queued = (waiting or {}).get(destination.name)
        out.append(
            {
                "name": destination.name,
                "url": destination.base_url,
                "tables": list(destination.tables) if destination.tables else None,
                "documents": destination.documents,
                "pending": row.get("pending", 0) + (queued or 0),
                "sent": row.get("sent", 0),
                "failed": row.get("failed", 0),
                "queued": queued,
                "last_activity": _iso(row.get("last_activity")),
                "recent_failures": [
                    {
                        "event_id": str(f["event_id"]),
                        "institution": f["institution_code"],
                        "table": f["table_code"],
                        "record": f["logical_id"],
                        "version": f["version"],
                        "status": f["upstream_status"],
                        "error": f["last_error"],
                        "at": _iso(f["updated_at"]),
                    }
                    for f in failed_deliveries(conn, destination.name, 5)
                ]
                if row.get("failed")
                else [],
            }
        )
    return out
