"""The audit log: who changed the registry, declarations, tokens or catalog, and when."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from hie.storage.database import Connection


def record_event(
    conn: Connection, actor: str, action: str, target: str | None, **detail: Any
) -> None:
    """Append one event. Callers pass codes and ids only, never tokens or resident ID numbers."""
    conn.execute(
        "insert into audit_event (actor, action, target, detail) values (%s, %s, %s, %s)",
        (actor, action, target, Jsonb(detail)),
    )
