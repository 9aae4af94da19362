"""The monthly report task: compute a month from the aggregates and replace its stored report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import shared_task

from hie.metrics.report import compute_month, parse_month
from hie.storage.partitions import month_of, previous_month
from hie.storage.reports import lock_month, save_report
from hie.workers.runtime import TRANSIENT, task_database, task_settings


@shared_task(
    name="hie.workers.reports.compute_month_report",
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
)
def compute_month_report(month: str | None = None) -> dict[str, Any]:
    """Compute ``month`` (YYYY-MM; "current" or None for this month, "previous" for the last one).

    Idempotent: a rerun replaces the stored report in one transaction; an overlapping run of the
    same month waits for the first and then recomputes. Returns a short summary.
    """
    settings = task_settings()
    today = month_of(datetime.now(UTC), settings.zone)
    if month in (None, "current"):
        first = today
    elif month == "previous":
        first = previous_month(today)
    else:
        first = parse_month(month)
    with task_database().transaction() as tx:
        lock_month(tx.conn, first)
        report = compute_month(tx.conn, first, settings.zone)
        save_report(tx.conn, first, report.generated_at, report.final, report.to_json())
    return {
        "month": f"{first:%Y-%m}",
        "institutions": len(report.rows),
        "cumulative_records": report.cumulative_records,
        "final": report.final,
        "generated_at": report.generated_at.isoformat(),
    }
