"""FHIR resources beside the record store: which are live, their search index, their history.

``record_head``/``record_version`` (hie/storage/records.py) hold every version; the tables of
migration 0003 are kept in step with them in the same transaction by :class:`IndexWriter`, which
gathers a whole request's changes and writes each table with one statement (a 10,000-entry
transaction costs a few round trips here, not tens of thousands).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from hie.storage.database import Connection, decimal_cursor
from hie.storage.search import LiveRow


class IndexValue(NamedTuple):
    """One row of fhir_search_index (migrations 0003 and 0009): token, reference and uri values
    in system/value, dates as [low, high), numbers and quantities in number (a quantity's code
    in value, its unit in text), strings as written in value and normalized in text, a token's
    display text in text; composite parameters' component rows share a group number. A named
    tuple: a resource makes dozens, and a tuple is made several times faster than a frozen
    dataclass."""

    param: str
    system: str | None = None
    value: str | None = None
    low: datetime | None = None
    high: datetime | None = None
    number: Decimal | None = None
    text: str | None = None
    group: int | None = None


@dataclass
class IndexWriter:
    """The live-resource and search-index changes of one transaction, written by :meth:`flush`."""

    institution_code: str
    _live: dict[tuple[str, str], LiveRow | None] = field(default_factory=dict)
    _values: dict[tuple[str, str], Sequence[IndexValue]] = field(default_factory=dict)

    def put(self, row: LiveRow, values: Sequence[IndexValue]) -> None:
        key = (row.resource_type, row.resource_id)
        self._live[key] = row
        self._values[key] = values

    def remove(self, resource_type: str, resource_id: str) -> None:
        key = (resource_type, resource_id)
        self._live[key] = None
        self._values[key] = []

    def flush(self, conn: Connection) -> None:
        if not self._live:
            return
        inst = self.institution_code
        keys = list(self._live)
        types, ids = [k[0] for k in keys], [k[1] for k in keys]
        conn.execute(
            """
            delete from fhir_search_index i using unnest(%s::text[], %s::text[]) as k(t, id)
            where i.institution_code = %s and i.resource_type = k.t and i.resource_id = k.id
            """,
            (types, ids, inst),
        )
        gone = [k for k, row in self._live.items() if row is None]
        if gone:
            conn.execute(
                """
                delete from fhir_resource r using unnest(%s::text[], %s::text[]) as k(t, id)
                where r.institution_code = %s and r.resource_type = k.t and r.resource_id = k.id
                """,
                ([k[0] for k in gone], [k[1] for k in gone], inst),
            )
        live = [row for row in self._live.values() if row is not None]
        if live:
            conn.execute(
                """
                insert into fhir_resource (institution_code, resource_type, resource_id, version,
                    last_updated, record_id)
                select %s, * from unnest(%s::text[], %s::text[], %s::int[], %s::timestamptz[],
                    %s::bigint[])
                on conflict (institution_code, resource_type, resource_id) do update
                set version = excluded.version, last_updated = excluded.last_updated,
                    record_id = excluded.record_id
                """,
                (
                    inst,
                    [r.resource_type for r in live],
                    [r.resource_id for r in live],
                    [r.version for r in live],
                    [r.last_updated for r in live],
                    [r.record_id for r in live],
                ),
            )
        columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [], [], [])
        for (resource_type, resource_id), values in self._values.items():
            for v in values:
                for column, item in zip(
                    columns,
                    (
                        resource_type,
                        resource_id,
                        v.param,
                        v.system,
                        v.value,
                        v.low,
                        v.high,
                        v.number,
                        v.text,
                        v.group,
                    ),
                    strict=True,
                ):
                    column.append(item)
        if columns[0]:
            conn.execute(
                """
                insert into fhir_search_index (institution_code, resource_type, resource_id,
                    param, system, value, low, high, number, text, grp)
                select %s, * from unnest(%s::text[], %s::text[], %s::text[], %s::text[],
                    %s::text[], %s::timestamptz[], %s::timestamptz[], %s::numeric[],
                    %s::text[], %s::int[])
                """,
                (inst, *columns),
            )
        self._live.clear()
        self._values.clear()


def condition_lock_key(institution_code: str, condition: str) -> int:
    """A 64-bit hash of (institution, condition): the advisory lock of one condition."""
    digest = hashlib.sha256(f"fhir-condition\x00{institution_code}\x00{condition}".encode())
    return int.from_bytes(digest.digest()[:8], "big", signed=True)


def lock_conditions(conn: Connection, institution_code: str, conditions: list[str]) -> None:
    """Serialise the requests that carry the same condition (a conditional create or update):
    the second waits until the first commits, then its search sees what the first stored.

    Transaction-scoped advisory locks on a 64-bit hash of (institution, condition), released at
    commit or rollback, all taken by one statement in ascending key order, so two requests
    locking overlapping sets cannot deadlock. Distinct conditions collide only with negligible
    probability, and a collision only makes two requests wait for each other.
    """
    keys = sorted({condition_lock_key(institution_code, c) for c in conditions})
    if keys:
        conn.execute(
            "select count(pg_advisory_xact_lock(k)) from unnest(%s::bigint[]) as k", (keys,)
        )


def live_rows(
    conn: Connection, institution_code: str, keys: list[tuple[str, str]]
) -> list[LiveRow]:
    """The live resources among ``keys`` ((type, id) pairs)."""
    if not keys:
        return []
    rows = conn.execute(
        """
        select r.resource_type, r.resource_id, r.version, r.last_updated, r.record_id
        from fhir_resource r join unnest(%s::text[], %s::text[]) as k(t, id)
          on r.resource_type = k.t and r.resource_id = k.id
        where r.institution_code = %s
        """,
        ([k[0] for k in keys], [k[1] for k in keys], institution_code),
    ).fetchall()
    return [LiveRow(**row) for row in rows]


def load_resources(conn: Connection, rows: list[LiveRow]) -> dict[int, dict[str, Any]]:
    """The stored resource of each live row, by record id (partitions pruned by receipt time)."""
    if not rows:
        return {}
    cursor = decimal_cursor(conn)
    found = cursor.execute(
        """
        select id, resource from record_version
        where received_at = any(%b) and id = any(%b) and resource is not null
        """,
        ([r.last_updated for r in rows], [r.record_id for r in rows]),
    ).fetchall()
    return {int(row["id"]): row["resource"] for row in found}


def load_served_texts(conn: Connection, rows: list[LiveRow]) -> dict[int, str]:
    """The stored resource of each live row, by record id, as the JSON text a search serves:
    ``hie.fhir.content.served_form`` made by PostgreSQL (``resourceType``, ``id``, then ``meta``
    with the version's ``versionId`` and ``lastUpdated`` in UTC with milliseconds, then the
    rest as stored), so a page of a thousand resources is neither parsed nor encoded in Python.
    jsonb's output keeps a decimal's digits as stored.

    A join to the (receipt time, id) pairs: one primary-key look-up each, in the partition of
    its month, and no planning over two arrays of a thousand constants (= any() of both cost
    3 ms of planning and 12 ms in all for a page of 1,020 resources, the join 10 ms). The arrays
    go in binary: psycopg quotes each element of a text array with a regular expression (12 ms
    for 1,020 receipt times and ids, 1.6 ms in binary)."""
    if not rows:
        return {}
    found = conn.execute(
        """
        select v.id, '{"resourceType":' || (v.resource -> 'resourceType')::text
          || ',"id":' || coalesce(v.resource -> 'id', '""')::text
          || ',"meta":' || (coalesce(v.resource -> 'meta', '{}') || jsonb_build_object(
               'versionId', v.version::text,
               'lastUpdated', to_char(v.received_at at time zone 'UTC',
                                      'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))::text
          -- the other elements: their object's text without its opening brace, written once
          -- (an expression named in a subquery would be computed again at each use)
          || coalesce(
               ',' || nullif(substr((v.resource - 'resourceType' - 'id' - 'meta')::text, 2), '}'),
               '}') as served
        from unnest(%b::timestamptz[], %b::bigint[]) as k(received_at, id)
        join record_version v on v.received_at = k.received_at and v.id = k.id
        where v.resource is not null
        """,
        ([r.last_updated for r in rows], [r.record_id for r in rows]),
    ).fetchall()
    return {int(row["id"]): row["served"] for row in found}


def read_version_of(
    conn: Connection, institution_code: str, logical_id: str, version: int
) -> dict[str, Any] | None:
    cursor = decimal_cursor(conn)
    row: dict[str, Any] | None = cursor.execute(
        """
        select version, received_at, resource, deleted from record_version
        where institution_code = %s and logical_id = %s and version = %s
        """,
        (institution_code, logical_id, version),
    ).fetchone()
    return row
