"""Monthly partitions of the receipt-time partitioned tables, made on demand and ahead of time."""

from __future__ import annotations

import logging
from datetime import date, datetime
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from hie.storage.database import Database

log = logging.getLogger(__name__)

PARTITIONED_TABLES = ("upload", "record_version")
# A month's partition goes from empty to busy within days: autoanalyse it after 2 % of change
# (the default 10 % lets the planner run for long on the counts of a far smaller table).
PARTITION_SETTINGS = sql.SQL(
    "autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 1000,"
    " autovacuum_vacuum_scale_factor = 0.05"
)

# The receipt months the platform keeps: a receipt time (a backfill's) or a report month outside
# them is a typing error, and at the edges of the calendar month arithmetic would overflow.
FIRST_YEAR, LAST_YEAR = 1900, 2999


def receipt_time_problem(moment: datetime) -> str | None:
    """Why ``moment`` cannot be a receipt time, or None."""
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        return f"must fall in the years {FIRST_YEAR} to {LAST_YEAR}"
    return None


def month_of(moment: datetime, zone: ZoneInfo) -> date:
    """The first day of the month ``moment`` falls in, in the platform's time zone."""
    local = moment.astimezone(zone)
    return date(local.year, local.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def previous_month(month: date) -> date:
    return date(month.year - 1, 12, 1) if month.month == 1 else date(month.year, month.month - 1, 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_y{month.year:04d}m{month.month:02d}"


class PartitionMaker:
    """Creates missing monthly partitions, remembering the ones it has seen in this process."""

    def __init__(self, database: Database, zone: ZoneInfo) -> None:
        self._database = database
        self._zone = zone
        self._known: set[date] = set()

    def ensure_for(self, moment: datetime) -> None:
        """Make sure every partitioned table has the partition that ``moment`` belongs to.

        Runs on its own connection and in its own short transaction, so that the DDL's lock on the
        parent table is not held for the length of the caller's ingest transaction.
        """
        month = month_of(moment, self._zone)
        if month in self._known:
            return
        self.ensure_month(month)

    def ensure_month(self, month: date) -> list[str]:
        created = []
        start = datetime(month.year, month.month, 1, tzinfo=self._zone)
        end_month = next_month(month)
        end = datetime(end_month.year, end_month.month, 1, tzinfo=self._zone)
        with self._database.connection() as conn:
            for table in PARTITIONED_TABLES:
                name = partition_name(table, month)
                with conn.transaction():
                    # Serialise makers of the same partition across processes.
                    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (name,))
                    if conn.execute("select to_regclass(%s) as r", (name,)).fetchone()["r"]:  # type: ignore[index]
                        continue
                    try:
                        conn.execute(
                            sql.SQL(
                                "create table {} partition of {} for values from ({}) to ({})"
                                " with ({})"
                            ).format(
                                sql.Identifier(name),
                                sql.Identifier(table),
                                sql.Literal(start),
                                sql.Literal(end),
                                PARTITION_SETTINGS,
                            )
                        )
                    except psycopg.errors.InvalidObjectDefinition as exc:
                        # An existing partition overlaps: the time zone setting was changed after
                        # data was stored. The existing partition keeps receiving those rows.
                        log.warning("partition %s not created: %s", name, exc)
                        continue
                    # Analysed at once (empty, so instantly): the planner then knows the new
                    # partition from the statistics, not as "never analysed".
                    conn.execute(sql.SQL("analyze {}").format(sql.Identifier(name)))
                    created.append(name)
                    log.info("created partition %s", name)
        self._known.add(month)
        return created
