"""Stored records: every version in ``record_version``, the current one in ``record_head``, and
the aggregates the monthly figures are computed from, all written in the caller's transaction."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from psycopg.types.json import Jsonb

from hie.storage.database import Connection, decimal_cursor

WriteStatus = Literal["created", "updated", "unchanged", "conflict", "precondition-failed"]


@dataclass(frozen=True)
class Unit:
    """One counting unit a record qualifies: a visit, a discharge, a person in a category."""

    figure: str  # outpatient_visits, discharges, health_records.basic, ...
    key: str  # chain key for visits and discharges, person key for persons


@dataclass
class NewVersion:
    institution_code: str
    table_code: str
    logical_id: str
    content_sha256: bytes
    received_at: datetime
    day: date  # the receipt day in the platform's time zone
    upload_id: UUID
    raw_xml: bytes | None = None
    resource: dict[str, Any] | None = None
    normalized: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False
    chain_key: str | None = None
    person_key: str | None = None
    units: list[Unit] = field(default_factory=list)
    # Persons that could not be counted for want of a usable ID (figure names).
    unkeyed: list[str] = field(default_factory=list)
    # The timeliness histogram bucket of this version (receipt minus clinical time), if known.
    latency_bucket: int | None = None


@dataclass(frozen=True)
class Head:
    institution_code: str
    logical_id: str
    table_code: str
    version: int
    content_sha256: bytes
    received_at: datetime
    record_id: int
    deleted: bool
    chain_key: str | None
    person_key: str | None


@dataclass(frozen=True)
class WriteResult:
    status: WriteStatus
    head: Head | None  # the current version after the write (or the one that blocked it)

    @property
    def written(self) -> bool:
        return self.status in ("created", "updated")


def get_head(
    conn: Connection, institution_code: str, logical_id: str, *, lock: bool = False
) -> Head | None:
    query = "select * from record_head where institution_code = %s and logical_id = %s"
    if lock:
        query += " for update"
    row = conn.execute(query, (institution_code, logical_id)).fetchone()
    return None if row is None else Head(**row)


def get_heads(conn: Connection, institution_code: str, logical_ids: list[str]) -> dict[str, Head]:
    """The heads of ``logical_ids`` that exist, by logical id (one statement)."""
    if not logical_ids:
        return {}
    rows = conn.execute(
        "select * from record_head where institution_code = %s and logical_id = any(%s)",
        (institution_code, logical_ids),
    ).fetchall()
    return {row["logical_id"]: Head(**row) for row in rows}


def write_version(
    conn: Connection, new: NewVersion, *, immutable: bool, if_match: int | None = None
) -> WriteResult:
    """Store ``new`` as the next version of its logical record, unless nothing changed.

    - identical content to the current version: ``unchanged``, nothing written;
    - ``immutable`` records (CDA documents) with other content: ``conflict``, nothing written;
    - ``if_match`` not the current version: ``precondition-failed``, nothing written.

    Concurrent writers of one logical id are serialised on its ``record_head`` row: the first
    creates it, the others wait for it and then compare with what it stored.
    """
    if if_match is None:
        created = conn.execute(
            """
            insert into record_head (institution_code, logical_id, table_code, version,
                content_sha256, received_at, record_id, deleted, chain_key, person_key)
            values (%s, %s, %s, 1, %s, %s, nextval('record_version_id_seq'), %s, %s, %s)
            on conflict (institution_code, logical_id) do nothing
            returning *
            """,
            (
                new.institution_code,
                new.logical_id,
                new.table_code,
                new.content_sha256,
                new.received_at,
                new.deleted,
                new.chain_key,
                new.person_key,
            ),
        ).fetchone()
        if created is not None:
            head = Head(**created)
            _insert_version(conn, new, head.version, head.record_id)
            return WriteResult("created", head)

    current = get_head(conn, new.institution_code, new.logical_id, lock=True)
    if current is None:
        # If-Match on a record that does not exist.
        return WriteResult("precondition-failed", None)
    if if_match is not None and if_match != current.version:
        return WriteResult("precondition-failed", current)
    if current.content_sha256 == new.content_sha256 and current.deleted == new.deleted:
        return WriteResult("unchanged", current)
    if immutable:
        return WriteResult("conflict", current)
    row = conn.execute(
        """
        update record_head set version = version + 1, table_code = %s, content_sha256 = %s,
            received_at = %s, record_id = nextval('record_version_id_seq'), deleted = %s,
            chain_key = coalesce(%s, chain_key), person_key = %s
        where institution_code = %s and logical_id = %s
        returning *
        """,
        (
            new.table_code,
            new.content_sha256,
            new.received_at,
            new.deleted,
            new.chain_key,
            new.person_key,
            new.institution_code,
            new.logical_id,
        ),
    ).fetchone()
    assert row is not None  # noqa: S101 (the row is locked above)
    head = Head(**row)
    _insert_version(conn, new, head.version, head.record_id)
    return WriteResult("updated", head)


def write_versions(
    conn: Connection, news: list[NewVersion], *, immutable: bool
) -> list[WriteResult]:
    """:func:`write_version` of many records in one go (a Bundle's entries, in order).

    New logical ids are created by one statement; the version rows and the aggregates of every
    written record are then written by one statement each, whatever the count. Records whose
    head exists already (or a logical id met twice) take :func:`write_version`'s path one by
    one, after the creations, so the result is what writing them in order would give.
    """
    if not news:
        return []
    created: dict[tuple[str, str], Head] = {}
    rows = conn.execute(
        """
        insert into record_head (institution_code, logical_id, table_code, version,
            content_sha256, received_at, record_id, deleted, chain_key, person_key)
        select n.institution_code, n.logical_id, n.table_code, 1, n.content_sha256,
            n.received_at, nextval('record_version_id_seq'), n.deleted, n.chain_key, n.person_key
        from unnest(%s::text[], %s::text[], %s::text[], %s::bytea[], %s::timestamptz[],
            %s::bool[], %s::text[], %s::text[]) with ordinality
            as n(institution_code, logical_id, table_code, content_sha256, received_at, deleted,
                chain_key, person_key, position)
        order by n.position
        on conflict (institution_code, logical_id) do nothing
        returning *
        """,
        (
            [n.institution_code for n in news],
            [n.logical_id for n in news],
            [n.table_code for n in news],
            [n.content_sha256 for n in news],
            [n.received_at for n in news],
            [n.deleted for n in news],
            [n.chain_key for n in news],
            [n.person_key for n in news],
        ),
    ).fetchall()
    for row in rows:
        created[(row["institution_code"], row["logical_id"])] = Head(**row)
    results: list[WriteResult] = []
    written: list[tuple[NewVersion, Head]] = []
    pending: list[int] = []
    for position, new in enumerate(news):
        # Popped: a second record of the same id is an update of the first.
        found = created.pop((new.institution_code, new.logical_id), None)
        if found is None:
            pending.append(position)
            results.append(WriteResult("unchanged", None))  # replaced below
            continue
        results.append(WriteResult("created", found))
        written.append((new, found))
    _insert_versions(conn, written)
    for position in pending:
        results[position] = write_version(conn, news[position], immutable=immutable)
    return results


def _insert_version(conn: Connection, new: NewVersion, version: int, record_id: int) -> None:
    _insert_versions(
        conn,
        [
            (
                new,
                Head(
                    new.institution_code,
                    new.logical_id,
                    new.table_code,
                    version,
                    new.content_sha256,
                    new.received_at,
                    record_id,
                    new.deleted,
                    new.chain_key,
                    new.person_key,
                ),
            )
        ],
    )


def _insert_versions(conn: Connection, written: list[tuple[NewVersion, Head]]) -> None:
    """The version rows of written records, then their aggregates: one statement each."""
    if not written:
        return
    conn.execute(
        """
        insert into record_version (id, received_at, institution_code, table_code, logical_id,
            version, upload_id, content_sha256, raw_xml, resource, normalized, deleted)
        select * from unnest(%s::bigint[], %s::timestamptz[], %s::text[], %s::text[], %s::text[],
            %s::int[], %s::uuid[], %s::bytea[], %s::bytea[], %s::jsonb[], %s::jsonb[], %s::bool[])
        """,
        (
            [h.record_id for _, h in written],
            [n.received_at for n, _ in written],
            [n.institution_code for n, _ in written],
            [n.table_code for n, _ in written],
            [n.logical_id for n, _ in written],
            [h.version for _, h in written],
            [n.upload_id for n, _ in written],
            [n.content_sha256 for n, _ in written],
            [n.raw_xml for n, _ in written],
            [Jsonb(n.resource) if n.resource is not None else None for n, _ in written],
            [Jsonb(n.normalized) for n, _ in written],
            [n.deleted for n, _ in written],
        ),
    )
    _count(conn, [n for n, _ in written])


def _count(conn: Connection, news: list[NewVersion]) -> None:
    """The aggregates of written versions, in at most two statements whatever their number (each
    round trip saved counts at ingest volumes): table counts and timeliness, then first-seen
    units. Counts are summed here first, so a shard row takes one increment per statement."""
    days: Counter[tuple[str, date, str]] = Counter()
    months: Counter[tuple[str, date, str]] = Counter()
    latency: Counter[tuple[str, date, int]] = Counter()
    for new in news:
        month = new.day.replace(day=1)
        days[(new.institution_code, new.day, new.table_code)] += 1
        months[(new.institution_code, month, new.table_code)] += 1
        if new.latency_bucket is not None:
            latency[(new.institution_code, month, new.latency_bucket)] += 1
    conn.execute(
        """
        with day_count as (
            insert into daily_table_count (institution_code, day, table_code, shard, records)
            select i, d, t, pg_backend_pid() %% 8, n
            from unnest(%(d_inst)s::text[], %(d_day)s::date[], %(d_table)s::text[],
                %(d_n)s::bigint[]) as u(i, d, t, n)
            on conflict (institution_code, day, table_code, shard)
            do update set records = daily_table_count.records + excluded.records
            returning 1
        ), latency as (
            insert into monthly_latency (institution_code, month, bucket, shard, versions)
            select i, m, b, pg_backend_pid() %% 8, n
            from unnest(%(l_inst)s::text[], %(l_month)s::date[], %(l_bucket)s::smallint[],
                %(l_n)s::bigint[]) as u(i, m, b, n)
            on conflict (institution_code, month, bucket, shard)
            do update set versions = monthly_latency.versions + excluded.versions
            returning 1
        )
        insert into monthly_table_count (institution_code, month, table_code, shard, records)
        select i, m, t, pg_backend_pid() %% 8, n
        from unnest(%(m_inst)s::text[], %(m_month)s::date[], %(m_table)s::text[],
            %(m_n)s::bigint[]) as u(i, m, t, n)
        on conflict (institution_code, month, table_code, shard)
        do update set records = monthly_table_count.records + excluded.records
        """,
        {
            "d_inst": [k[0] for k in days],
            "d_day": [k[1] for k in days],
            "d_table": [k[2] for k in days],
            "d_n": list(days.values()),
            "l_inst": [k[0] for k in latency],
            "l_month": [k[1] for k in latency],
            "l_bucket": [k[2] for k in latency],
            "l_n": list(latency.values()),
            "m_inst": [k[0] for k in months],
            "m_month": [k[1] for k in months],
            "m_table": [k[2] for k in months],
            "m_n": list(months.values()),
        },
    )
    counted = [n for n in news if n.units or n.unkeyed]
    if not counted:
        return
    # A unit counts in the month it is first seen: only the rows metric_unit takes are counted
    # (a unit met twice in one statement is taken once).
    conn.execute(
        """
        with first_seen as (
            insert into metric_unit (institution_code, figure, unit_key, first_month,
                first_received_at)
            select u.institution_code, u.figure, u.unit_key, u.month, u.received_at
            from unnest(%(institutions)s::text[], %(figures)s::text[], %(keys)s::text[],
                %(months)s::date[], %(received)s::timestamptz[])
                as u(institution_code, figure, unit_key, month, received_at)
            on conflict do nothing
            returning institution_code, figure, first_month
        ), counted as (
            select institution_code, figure, first_month from first_seen
            union all
            select * from unnest(%(u_inst)s::text[], %(unkeyed)s::text[], %(u_months)s::date[])
        )
        insert into monthly_unit_count (institution_code, figure, month, shard, units)
        select institution_code, figure, first_month, pg_backend_pid() %% 8, count(*)
        from counted group by institution_code, figure, first_month
        on conflict (institution_code, figure, month, shard)
        do update set units = monthly_unit_count.units + excluded.units
        """,
        {
            "institutions": [n.institution_code for n in counted for _ in n.units],
            "figures": [u.figure for n in counted for u in n.units],
            "keys": [u.key for n in counted for u in n.units],
            "months": [n.day.replace(day=1) for n in counted for _ in n.units],
            "received": [n.received_at for n in counted for _ in n.units],
            "u_inst": [n.institution_code for n in counted for _ in n.unkeyed],
            "unkeyed": [f"unkeyed:{f}" for n in counted for f in n.unkeyed],
            "u_months": [n.day.replace(day=1) for n in counted for _ in n.unkeyed],
        },
    )


def read_version(conn: Connection, head: Head) -> dict[str, Any] | None:
    """The stored row of the current version (partition found through its receipt time)."""
    cursor = decimal_cursor(conn)
    row: dict[str, Any] | None = cursor.execute(
        "select * from record_version where received_at = %s and id = %s",
        (head.received_at, head.record_id),
    ).fetchone()
    return row
