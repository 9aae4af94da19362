"""Housekeeping tasks: partitions ahead of the calendar, published events purged."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from celery import shared_task

from hie.storage.outbox import purge_published
from hie.storage.partitions import PartitionMaker, month_of, next_month
from hie.workers.runtime import TRANSIENT, task_database, task_settings


@shared_task(
    name="hie.workers.maintenance.create_partitions",
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
)
def create_partitions(month: str | None = None, months_ahead: int = 2) -> list[str]:
    """Create the monthly partitions of ``month`` (YYYY-MM), or of this month and the next ones.

    Ingest creates a missing partition itself; doing it ahead keeps that DDL off the upload path.
    """
    settings = task_settings()
    maker = PartitionMaker(task_database(), settings.zone)
    if month is not None:
        year, number = (int(part) for part in month.split("-"))
        return maker.ensure_month(date(year, number, 1))
    created: list[str] = []
    current = month_of(datetime.now(UTC), settings.zone)
    for _ in range(months_ahead + 1):
        created += maker.ensure_month(current)
        current = next_month(current)
    return created


@shared_task(
    name="hie.workers.maintenance.purge_events",
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
)
def purge_events(days: int = 7) -> int:
    """Delete events the relay published more than ``days`` ago (the outbox would otherwise
    grow with every record), in batches of their own transaction; how many."""
    before = datetime.now(UTC) - timedelta(days=days)
    database = task_database()
    total = 0
    while True:
        with database.transaction() as tx:
            deleted = purge_published(tx.conn, before)
        total += deleted
        if deleted == 0:
            return total
