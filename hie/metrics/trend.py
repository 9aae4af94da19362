"""Twelve-month trends of every figure of one institution, read from the stored reports."""

from __future__ import annotations

from datetime import date
from typing import Any

from hie.storage import Connection
from hie.storage.partitions import previous_month
from hie.storage.reports import load_reports

FIGURES = (
    "declared",
    "uploaded_tables",
    "records",
    "upload_days",
    "outpatient_visits",
    "discharges",
    "health_records.basic",
    "health_records.hypertension",
    "health_records.diabetes",
    "rejected",
    "rejection_rate",
    "timeliness.within_1_day",
)


def _value(row: dict[str, Any], figure: str) -> Any:
    value: Any = row
    for part in figure.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def trend(conn: Connection, institution: str, last: date, months: int = 12) -> dict[str, Any]:
    """Each figure month by month, oldest first; None where a month was not computed or the
    institution had no row then."""
    wanted = [last]
    while len(wanted) < months:
        wanted.insert(0, previous_month(wanted[0]))
    by_month = {r["month"]: r for r in load_reports(conn, wanted[0], last)}
    labels = [f"{m:%Y-%m}" for m in wanted]
    rows = []
    for label in labels:
        report = by_month.get(label)
        found = [r for r in report["rows"] if r["institution"] == institution] if report else []
        rows.append(found[0] if found else None)
    return {
        "institution": institution,
        "months": labels,
        "series": {f: [None if r is None else _value(r, f) for r in rows] for f in FIGURES},
    }
