"""Stored records: every version in ``record_version``, the current one in ``record_head``, and
the aggregates the monthly figures are computed from, all written in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from psycopg.types.json import Jsonb

from hie.storage.database import Connection

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


def _insert_version(conn: Connection, new: NewVersion, version: int, record_id: int) -> None:
    conn.execute(
        """
        insert into record_version (id, received_at, institution_code, table_code, logical_id,
            version, upload_id, content_sha256, raw_xml, resource, normalized, deleted)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            record_id,
            new.received_at,
            new.institution_code,
            new.table_code,
            new.logical_id,
            version,
            new.upload_id,
            new.content_sha256,
            new.raw_xml,
            Jsonb(new.resource) if new.resource is not None else None,
            Jsonb(new.normalized),
            new.deleted,
        ),
    )
    _count(conn, new)


def _count(conn: Connection, new: NewVersion) -> None:
    """The aggregates of one written version, in two statements (each a round trip saved per
    record counts at ingest volumes): table counts and timeliness, then first-seen units."""
    month = new.day.replace(day=1)
    conn.execute(
        """
        with day_count as (
            insert into daily_table_count (institution_code, day, table_code, shard, records)
            values (%(institution)s, %(day)s, %(table)s, pg_backend_pid() %% 8, 1)
            on conflict (institution_code, day, table_code, shard)
            do update set records = daily_table_count.records + 1
            returning 1
        ), latency as (
            insert into monthly_latency (institution_code, month, bucket, shard, versions)
            select %(institution)s, %(month)s, %(bucket)s, pg_backend_pid() %% 8, 1
            where %(bucket)s::smallint is not null
            on conflict (institution_code, month, bucket, shard)
            do update set versions = monthly_latency.versions + 1
            returning 1
        )
        insert into monthly_table_count (institution_code, month, table_code, shard, records)
        values (%(institution)s, %(month)s, %(table)s, pg_backend_pid() %% 8, 1)
        on conflict (institution_code, month, table_code, shard)
        do update set records = monthly_table_count.records + 1
        """,
        {
            "institution": new.institution_code,
            "day": new.day,
            "month": month,
            "table": new.table_code,
            "bucket": new.latency_bucket,
        },
    )
    if not (new.units or new.unkeyed):
        return
    # A unit counts in the month it is first seen: only the rows metric_unit takes are counted.
    conn.execute(
        """
        with first_seen as (
            insert into metric_unit (institution_code, figure, unit_key, first_month,
                first_received_at)
            select %(institution)s, u.figure, u.unit_key, %(month)s, %(received_at)s
            from unnest(%(figures)s::text[], %(keys)s::text[]) as u(figure, unit_key)
            on conflict do nothing
            returning figure
        ), counted as (
            select figure from first_seen
            union all
            select unnest(%(unkeyed)s::text[])
        )
        insert into monthly_unit_count (institution_code, figure, month, shard, units)
        select %(institution)s, figure, %(month)s, pg_backend_pid() %% 8, count(*)
        from counted group by figure
        on conflict (institution_code, figure, month, shard)
        do update set units = monthly_unit_count.units + excluded.units
        """,
        {
            "institution": new.institution_code,
            "month": month,
            "received_at": new.received_at,
            "figures": [u.figure for u in new.units],
            "keys": [u.key for u in new.units],
            "unkeyed": [f"unkeyed:{figure}" for figure in new.unkeyed],
        },
    )


def read_version(conn: Connection, head: Head) -> dict[str, Any] | None:
    """The stored row of the current version (partition found through its receipt time)."""
    row: dict[str, Any] | None = conn.execute(
        "select * from record_version where received_at = %s and id = %s",
        (head.received_at, head.record_id),
    ).fetchone()
    return row
