"""FHIR history at the three levels (instance, type, system), one institution at a time:
versions newest first, filtered by ``_since`` (changed at or after) and ``_at`` (current at some
moment of a period), paged by count and offset."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hie.storage.database import Connection, decimal_cursor

# A version is current from its receipt until the next version's; "_at" keeps those whose
# lifetime overlaps [at_low, at_high). The next version is found through
# record_version_logical_idx (institution, logical id, version).
_AT = """
  and (%(at_high)s::timestamptz is null or (
    v.received_at < %(at_high)s and not exists (
      select 1 from record_version n
      where n.institution_code = v.institution_code and n.logical_id = v.logical_id
        and n.version = v.version + 1 and n.received_at <= %(at_low)s)))
"""


def history(
    conn: Connection,
    institution_code: str,
    *,
    resource_type: str | None = None,
    logical_id: str | None = None,
    since: datetime | None = None,
    at: tuple[datetime, datetime] | None = None,
    count: int,
    offset: int,
) -> list[dict[str, Any]]:
    """Versions of one resource (``logical_id``), of a type, or of every FHIR resource of the
    institution, newest first."""
    params: dict[str, Any] = {
        "inst": institution_code,
        "type": resource_type,
        "logical_id": logical_id,
        "since": since,
        "at_low": at[0] if at else None,
        "at_high": at[1] if at else None,
        "count": count,
        "offset": offset,
    }
    if logical_id is not None:
        scope, order = "v.logical_id = %(logical_id)s", "v.version desc"
    elif resource_type is not None:
        # record_version_fhir_type_idx (0003)
        scope = "split_part(v.logical_id, '/', 1) = %(type)s and v.raw_xml is null"
        order = "v.received_at desc, v.id desc"
    else:
        scope, order = "v.raw_xml is null", "v.received_at desc, v.id desc"  # 0011's index
    cursor = decimal_cursor(conn)
    rows: list[dict[str, Any]] = cursor.execute(
        f"""
        select v.logical_id, v.version, v.received_at, v.resource, v.deleted
        from record_version v
        where v.institution_code = %(inst)s and {scope}
          and (%(since)s::timestamptz is null or v.received_at >= %(since)s)
          {_AT}
        order by {order} limit %(count)s offset %(offset)s
        """,  # noqa: S608 (scope and order are fixed strings above)
        params,
    ).fetchall()
    return rows
