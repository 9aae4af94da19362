"""The month overview: the bulletin's district and hospital tables, sortable on the server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from hie.dashboard.charts import bar
from hie.dashboard.i18n import Translator
from hie.metrics.export import KINDS, TITLES, Column, columns_for, table_rows
from hie.metrics.report import parse_month

Row = dict[str, Any]

# How each bulletin column sorts. Text sorts ascending first, figures descending (the largest and
# the smallest are what a regulator looks for); a missing declaration (未反馈) always sorts last.
SORT_KEYS: dict[str, Callable[[Row], Any]] = {
    "name": lambda r: r["name"],
    "institution": lambda r: r["institution"],
    "declared_required": lambda r: r["declared"],
    "uploaded_tables": lambda r: r["uploaded_tables"],
    "records": lambda r: r["records"],
    "upload_days": lambda r: r["upload_days"],
    "outpatient_visits": lambda r: r["outpatient_visits"],
    "discharges": lambda r: r["discharges"],
    "basic": lambda r: r["health_records"]["basic"],
    "hypertension": lambda r: r["health_records"]["hypertension"],
    "diabetes": lambda r: r["health_records"]["diabetes"],
    "rejected": lambda r: r["rejected"],
    "flags": lambda r: len(r["flags"]),
}
TEXT_KEYS = ("name", "institution")
# The order overview.html writes a row's cells in; it must be the bulletin's (export) order.
_DISTRICT_ROW = [
    "name",
    "institution",
    "declared_required",
    "uploaded_tables",
    "records",
    "upload_days",
    "outpatient_visits",
    "discharges",
    "basic",
    "hypertension",
    "diabetes",
    "rejected",
    "flags",
]
# Hospitals report no public-health figures (basic, hypertension, diabetes): the same order
# without them.
_PUBLIC_HEALTH = ("basic", "hypertension", "diabetes")
ROW_ORDER = {
    "district": _DISTRICT_ROW,
    "hospital": [key for key in _DISTRICT_ROW if key not in _PUBLIC_HEALTH],
}


def declared_share(row: Row) -> float | None:
    """The share of its declared tables an institution uploaded in the month."""
    declared: int | None = row["declared"]
    if not declared:
        return None
    return (declared - len(row["missing_declared_tables"])) / declared


def sort_rows(rows: list[Row], key: str | None, direction: str) -> list[Row]:
    getter = SORT_KEYS.get(key or "")
    if getter is None:
        return rows
    known = [r for r in rows if getter(r) is not None]
    unknown = [r for r in rows if getter(r) is None]
    return sorted(known, key=getter, reverse=direction == "desc") + unknown


def default_direction(key: str) -> str:
    return "asc" if key in TEXT_KEYS else "desc"


@dataclass
class Header:
    column: Column
    label: str
    href: str
    sort: str | None  # "ascending", "descending" or None: the th's aria-sort


@dataclass
class BulletinTable:
    kind: str
    title: str
    headers: list[Header]
    rows: list[Row]
    totals: list[Any]
    bars: dict[str, Markup] = field(default_factory=dict)
    flagged: int = 0


def bulletin_table(
    report: dict[str, Any],
    kind: str,
    t: Translator,
    *,
    sort: str | None,
    direction: str,
    link: Callable[..., str],
) -> BulletinTable:
    rows = sort_rows([r for r in report["rows"] if r["kind"] == kind], sort, direction)
    headers = []
    for column in columns_for(kind):
        active = column.key == sort
        if active:
            next_direction = "asc" if direction == "desc" else "desc"
        else:
            next_direction = default_direction(column.key)
        headers.append(
            Header(
                column,
                t(f"col.{column.key}"),
                link(sort=column.key, dir=next_direction) + f"#{kind}",
                ("ascending" if direction == "asc" else "descending") if active else None,
            )
        )
    bars = {}
    for row in rows:
        share = declared_share(row)
        if share is not None:
            bars[row["institution"]] = bar(share, t("overview.bar", pct=f"{share:.0%}"))
    return BulletinTable(
        kind=kind,
        title=TITLES[t.lang][kind].format(month=t.month(parse_month(report["month"]))),
        headers=headers,
        rows=rows,
        # The totals are the export's own, so that the page and the CSV cannot disagree.
        totals=table_rows(report, kind, t.lang)[-1],
        bars=bars,
        flagged=sum(1 for r in rows if r["flags"]),
    )


def bulletin_tables(
    report: dict[str, Any],
    t: Translator,
    *,
    sort: str | None,
    direction: str,
    link: Callable[..., str],
) -> list[BulletinTable]:
    if sort not in SORT_KEYS:
        sort = None
    if direction not in ("asc", "desc"):
        direction = default_direction(sort or "")
    return [
        bulletin_table(report, kind, t, sort=sort, direction=direction, link=link) for kind in KINDS
    ]
