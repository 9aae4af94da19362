"""The institution page: one institution's month, its tables, days, trends, rejections, delays."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from hie.dashboard.charts import histogram, line_chart
from hie.dashboard.exports import Grid
from hie.dashboard.i18n import Translator
from hie.dashboard.upload_calendar import Day, month_weeks
from hie.errors import NotFound
from hie.metrics.timeliness import LATENCY_BOUNDS_HOURS
from hie.metrics.trend import FIGURES
from hie.registry import Institution
from hie.storage import Connection
from hie.storage.catalog import current_catalog
from hie.storage.dashboard import (
    institution_rows,
    latency_histogram,
    records_by_day,
    rejection_reasons,
    rejections_by_day,
    table_records,
)
from hie.storage.declarations import declarations_at
from hie.storage.institutions import get_institution
from hie.storage.partitions import next_month, previous_month
from hie.validators.rules import explain

TREND_MONTHS = 12
RATES = ("rejection_rate", "timeliness.within_1_day")
PERSON_FIGURES = tuple(f for f in FIGURES if f.startswith("health_records."))
# Statuses that need the regulator's attention come first in the grid's legend.
STATUSES = ("missing", "undeclared", "not_declared", "ok", "uploaded", "not_uploaded")


@dataclass(frozen=True)
class Tile:
    code: str
    name: str
    required: bool
    declared: bool
    records: int
    status: str


@dataclass(frozen=True)
class Chart:
    figure: str
    label: str
    latest: str
    svg: Markup


@dataclass
class InstitutionPage:
    institution: Institution
    month: date
    row: dict[str, Any] | None
    declared: list[str] | None
    tiles: list[Tile]
    status_counts: dict[str, int]
    weeks: list[list[Day | None]]
    charts: list[Chart]
    reasons: list[dict[str, Any]]
    latency_chart: Markup
    grids: dict[str, Grid] = field(default_factory=dict)
    district_name: str | None = None  # the district's name, for its link


def _value(row: dict[str, Any] | None, figure: str) -> Any:
    value: Any = row
    for part in figure.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _months(last: date, count: int) -> list[date]:
    months = [last]
    while len(months) < count:
        months.insert(0, previous_month(months[0]))
    return months


def _status(required: bool, declared: bool, uploaded: bool, has_declaration: bool) -> str:
    if not has_declaration:
        return "uploaded" if uploaded else "not_uploaded"
    if declared:
        return "ok" if uploaded else "missing"
    if uploaded:
        return "undeclared"
    return "not_declared"


def _tiles(
    conn: Connection, kind: str, declared: list[str] | None, records: dict[str, int], lang: str
) -> list[Tile]:
    catalog = current_catalog(conn)
    chosen = set(declared or ()) | set(records)
    tiles = []
    for table in catalog:
        required = table.required_of(kind)
        if not (required or table.code in chosen):
            continue
        is_declared = declared is not None and table.code in declared
        n = records.get(table.code, 0)
        tiles.append(
            Tile(
                table.code,
                table.name_zh if lang == "zh" else table.name_en,
                required,
                is_declared,
                n,
                _status(required, is_declared, n > 0, declared is not None),
            )
        )
    # Tables no longer in the catalog still show what was uploaded or declared under them.
    for code in sorted(chosen - {t.code for t in catalog}):
        n = records.get(code, 0)
        is_declared = declared is not None and code in declared
        tiles.append(
            Tile(code, "?", False, is_declared, n, _status(False, is_declared, n > 0, True))
        )
    return tiles


def _format(figure: str, value: float) -> str:
    return f"{value:.1%}" if figure in RATES else f"{value:,.0f}"


def _charts(
    t: Translator, kind: str, months: list[date], rows: dict[date, dict[str, Any] | None]
) -> tuple[list[Chart], Grid]:
    labels = [f"{m:%Y-%m}" for m in months]
    figures = [f for f in FIGURES if kind == "district" or f not in PERSON_FIGURES]
    charts = []
    for figure in figures:
        values = [_value(rows.get(m), figure) for m in months]
        label = t(f"fig.{figure}")
        latest = values[-1]
        shown = t("chart.empty") if latest is None else _format(figure, latest)

        def fmt(v: float, figure: str = figure) -> str:
            return _format(figure, v)

        charts.append(
            Chart(
                figure,
                label,
                shown,
                line_chart(
                    f"{label}, {labels[0]} – {labels[-1]}; {t('chart.latest', value=shown)}",
                    labels,
                    values,
                    fmt=fmt,
                    empty=t("chart.empty"),
                ),
            )
        )
    grid = Grid(
        "trends",
        t("inst.trends"),
        [t("col.month"), *(t(f"fig.{f}") for f in figures)],
        [
            [label, *(_value(rows.get(m), f) for f in figures)]
            for m, label in zip(months, labels, strict=True)
        ],
    )
    return charts, grid


def _bucket_labels() -> list[str]:
    labels = [f"<{b}h" for b in LATENCY_BOUNDS_HOURS]
    return [*labels, f"≥{LATENCY_BOUNDS_HOURS[-1]}h"]


def _reasons(conn: Connection, code: str, month: date, zone: ZoneInfo) -> list[dict[str, Any]]:
    end = next_month(month)
    instants = (
        datetime(month.year, month.month, 1, tzinfo=zone),
        datetime(end.year, end.month, 1, tzinfo=zone),
    )
    reasons = []
    for r in rejection_reasons(conn, code, (month, end), instants):
        issue = r["issue"] or {}
        where = issue.get("location") or issue.get("expression") or []
        rule = explain(r["rule_id"])
        reasons.append(
            {
                "rule": r["rule_id"],
                "summary": rule.summary if rule else "",
                "occurrences": r["occurrences"],
                "sample": issue.get("diagnostics"),
                "where": ", ".join(where) if isinstance(where, list) else str(where),
                "received_at": r["received_at"].astimezone(zone) if r["received_at"] else None,
            }
        )
    return reasons


def institution_page(
    conn: Connection, code: str, month: date, zone: ZoneInfo, t: Translator
) -> InstitutionPage:
    institution = get_institution(conn, code)
    months = _months(month, TREND_MONTHS)
    rows = institution_rows(conn, code, months[0], month)
    row = rows.get(month)
    end = next_month(month)
    # The declaration the report judged the month by (the same rule, at the month's end).
    declared = declarations_at(conn, datetime(end.year, end.month, 1, tzinfo=zone)).get(code)
    records = table_records(conn, code, month)
    tiles = _tiles(conn, institution.kind, declared, records, t.lang)
    weeks = month_weeks(
        month, records_by_day(conn, code, month, end), rejections_by_day(conn, code, month, end)
    )
    charts, trend_grid = _charts(t, institution.kind, months, rows)
    reasons = _reasons(conn, code, month, zone)
    buckets = latency_histogram(conn, code, month)
    labels = _bucket_labels()
    counts = [buckets.get(i, 0) for i in range(len(labels))]

    yes, no = t("yes"), t("no")
    grids = {
        "tables": Grid(
            "tables",
            t("inst.tables"),
            [
                t("col.table"),
                t("col.table_name"),
                t("col.required"),
                t("col.declared"),
                t("col.month_records"),
                t("col.status"),
            ],
            [
                [
                    x.code,
                    x.name,
                    yes if x.required else no,
                    yes if x.declared else no,
                    x.records,
                    t(f"status.{x.status}"),
                ]
                for x in tiles
            ],
        ),
        "calendar": Grid(
            "calendar",
            t("inst.calendar"),
            [t("col.day"), t("col.records"), t("col.rejected_day")],
            [
                [d.day.isoformat(), d.records, d.rejected]
                for week in weeks
                for d in week
                if d is not None
            ],
        ),
        "trends": trend_grid,
        "rejections": Grid(
            "rejections",
            t("inst.rejections"),
            [t("col.rule"), t("col.occurrences"), t("col.sample")],
            [[r["rule"], r["occurrences"], r["sample"] or ""] for r in reasons],
        ),
        "timeliness": Grid(
            "timeliness",
            t("inst.timeliness"),
            [t("col.bucket"), t("col.versions")],
            [[label, n] for label, n in zip(labels, counts, strict=True)],
        ),
    }
    return InstitutionPage(
        institution=institution,
        month=month,
        row=row,
        declared=declared,
        tiles=tiles,
        status_counts={s: sum(1 for x in tiles if x.status == s) for s in STATUSES},
        weeks=weeks,
        charts=charts,
        reasons=reasons,
        latency_chart=histogram(t("inst.timeliness"), labels, counts),
        grids=grids,
        district_name=_district_name(conn, institution.district_code),
    )


def _district_name(conn: Connection, code: str | None) -> str | None:
    if code is None:
        return None
    try:
        return get_institution(conn, code).name
    except NotFound:
        return None
