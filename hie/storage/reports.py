"""Computed monthly reports, each replaced as a whole by the next computation of its month."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from psycopg.types.json import Jsonb

from hie.storage.database import Connection


def lock_month(conn: Connection, month: date) -> None:
    """Serialise computations of one month: an overlapping run waits, then recomputes."""
    conn.execute(
        "select pg_advisory_xact_lock(hashtext('hie.report.' || %s))", (month.isoformat(),)
    )


def save_report(
    conn: Connection, month: date, generated_at: datetime, final: bool, body: dict[str, Any]
) -> None:
    conn.execute(
        """
        insert into monthly_report (month, generated_at, final, body) values (%s, %s, %s, %s)
        on conflict (month) do update
            set generated_at = excluded.generated_at, final = excluded.final, body = excluded.body
        """,
        (month, generated_at, final, Jsonb(body)),
    )


def load_report(conn: Connection, month: date) -> dict[str, Any] | None:
    row = conn.execute("select body from monthly_report where month = %s", (month,)).fetchone()
    return None if row is None else row["body"]


def load_reports(conn: Connection, first: date, last: date) -> list[dict[str, Any]]:
    """The stored reports from ``first`` to ``last`` (months), oldest first."""
    return [
        r["body"]
        for r in conn.execute(
            "select body from monthly_report where month between %s and %s order by month",
            (first, last),
        ).fetchall()
    ]


def months_with_records(conn: Connection) -> list[date]:
    """The months in which any record was written, oldest first (computed or not)."""
    rows = conn.execute(
        "select distinct month from monthly_table_count where records > 0 order by month"
    ).fetchall()
    return [r["month"] for r in rows]
