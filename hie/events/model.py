"""The event message: what a row of the outbox becomes on the ``hie.events`` exchange.

The body names a record and says where to fetch it; it never carries clinical content. The
schema is documented in docs/events.md; a change to it is a new ``SCHEMA`` version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

SCHEMA = "hie.event/1"


def routing_segment(value: str) -> str:
    """A value as one word of a topic routing key: dots (as in table code ``HSDA00.01``) would
    split it, so they become underscores."""
    return value.replace(".", "_")


def routing_key(outcome: str, institution_kind: str, table_code: str | None) -> str:
    """``record.<outcome>.<institution-kind>.<table>``; ``unknown`` for a rejection whose table
    could not be told."""
    table = routing_segment(table_code) if table_code else "unknown"
    return f"record.{outcome}.{routing_segment(institution_kind)}.{table}"


def link_of(row: dict[str, Any]) -> str | None:
    """Where a consumer fetches the content, relative to the platform's base URL (with its own
    token, so access rules apply): the FHIR version, or the CDA document's upload receipt."""
    if row["outcome"] != "accepted":
        return None
    if row["record_kind"] == "fhir":
        return f"fhir/{row['logical_id']}/_history/{row['version']}"
    if row["upload_id"] is not None:
        return f"cda/{row['upload_id']}"
    return None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def message_of(row: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of an outbox row (an ``event_outbox`` row as a dict)."""
    record: dict[str, Any] | None = None
    if row["outcome"] == "accepted":
        record = {"kind": row["record_kind"], "version": row["version"]}
        if row["record_kind"] == "fhir":
            resource_type, _, resource_id = str(row["logical_id"]).partition("/")
            record |= {"resource_type": resource_type, "id": resource_id}
            record["deleted"] = row["deleted"]
        else:
            record["document_id"] = row["logical_id"]
            record["replaces"] = row["replaces"]
    body: dict[str, Any] = {
        "schema": SCHEMA,
        "event_id": str(row["event_id"]),
        "type": f"record.{row['outcome']}",
        "institution": {"code": row["institution_code"], "kind": row["institution_kind"]},
        "table": row["table_code"],
        "record": record,
        "received_at": _iso(row["received_at"]),
        "upload_id": None if row["upload_id"] is None else str(row["upload_id"]),
        "link": link_of(row),
    }
    if row["outcome"] == "rejected":
        body["rules"] = list(row["rules"] or [])
    return body
