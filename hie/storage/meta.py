"""Changing the current version of a record in place: FHIR's ``$meta-add`` and
``$meta-delete`` change tags, security labels and profiles without making a new version (as
HAPI FHIR does), so the version row and the head's content hash are updated together."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from hie.storage.database import Connection
from hie.storage.records import Head


def replace_current(conn: Connection, head: Head, resource: dict[str, Any], sha256: bytes) -> None:
    """Store ``resource`` as the content of the current version ``head`` (locked by the caller)."""
    conn.execute(
        """
        update record_version set resource = %s, content_sha256 = %s
        where received_at = %s and id = %s
        """,
        (Jsonb(resource), sha256, head.received_at, head.record_id),
    )
    conn.execute(
        """
        update record_head set content_sha256 = %s
        where institution_code = %s and logical_id = %s
        """,
        (sha256, head.institution_code, head.logical_id),
    )
