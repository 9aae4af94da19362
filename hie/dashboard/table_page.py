"""The table page: who uploads one catalog table in a month, and who declared it but sent
nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hie.catalog import Table
from hie.dashboard.exports import Grid
from hie.dashboard.i18n import Translator
from hie.errors import NotFound
from hie.storage import Connection
from hie.storage.catalog import current_catalog
from hie.storage.dashboard import institution_names, table_uploaders
from hie.storage.declarations import declarations_at
from hie.storage.partitions import next_month


@dataclass
class TablePage:
    table: Table
    month: date
    uploaders: list[dict[str, Any]]
    silent: list[dict[str, Any]]
    grids: dict[str, Grid] = field(default_factory=dict)


def table_page(
    conn: Connection, code: str, month: date, zone: ZoneInfo, t: Translator
) -> TablePage:
    table = current_catalog(conn).get(code)
    if table is None:
        raise NotFound(f"no table {code!r} in the loaded catalog")
    end = next_month(month)
    declarations = declarations_at(conn, datetime(end.year, end.month, 1, tzinfo=zone))
    uploaders = [
        {**r, "declared": code in (declarations.get(r["institution_code"]) or ())}
        for r in table_uploaders(conn, code, month, end)
    ]
    sending = {r["institution_code"] for r in uploaders}
    names = institution_names(conn)
    silent = [
        names[inst]
        for inst, tables in sorted(declarations.items())
        if tables and code in tables and inst not in sending and inst in names
    ]
    yes, no = t("yes"), t("no")
    grids = {
        "uploaders": Grid(
            "uploaders",
            t("table.uploaders"),
            [
                t("col.institution"),
                t("col.name"),
                t("col.kind"),
                t("col.declared"),
                t("col.records"),
                t("col.days"),
            ],
            [
                [
                    r["institution_code"],
                    r["name"],
                    t(f"kind.{r['kind']}"),
                    yes if r["declared"] else no,
                    r["records"],
                    r["days"],
                ]
                for r in uploaders
            ],
        ),
        "silent": Grid(
            "silent",
            t("table.silent"),
            [t("col.institution"), t("col.name"), t("col.kind"), t("col.district")],
            [
                [r["code"], r["name"], t(f"kind.{r['kind']}"), r["district_code"] or ""]
                for r in silent
            ],
        ),
    }
    return TablePage(table, month, uploaders, silent, grids)
