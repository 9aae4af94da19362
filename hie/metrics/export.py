"""The report in the bulletin's layout: column headings, rows, totals; as CSV, XLSX or a terminal
table. Chinese headings by default, English on request."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("district", "hospital")

TITLES = {
    "zh": {
        "district": "{month}卫生信息平台数据采集情况（区）",
        "hospital": "{month}卫生信息平台数据采集情况（医院）",
    },
    "en": {
        "district": "Data collection, {month} (districts)",
        "hospital": "Data collection, {month} (hospitals)",
    },
}


@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    en: str
    kinds: tuple[str, ...] = KINDS
    total: bool = True  # summed in the totals row


COLUMNS = (
    Column("name", "接入单位", "Institution", total=False),
    Column("institution", "机构代码", "Code", total=False),
    Column("declared_required", "声明上传表/规定上传表", "Declared/required tables", total=False),
    Column("uploaded_tables", "已上传表（CDA文档）", "Uploaded tables", total=False),
    Column("records", "数据入库量", "Records stored"),
    Column("upload_days", "数据上传天数", "Upload days", total=False),
    Column("outpatient_visits", "门急诊信息上传人次", "Outpatient and emergency visits"),
    Column("discharges", "出院信息上传人次", "Discharges"),
    Column(
        "basic",
        "健康档案累计上传总量·基本信息",
        "Health records (cumulative): basic",
        ("district",),
    ),
    Column(
        "hypertension", "健康档案累计上传总量·高血压", "Health records: hypertension", ("district",)
    ),
    Column("diabetes", "健康档案累计上传总量·糖尿病", "Health records: diabetes", ("district",)),
    Column("rejected", "拒收数", "Rejected"),
    Column("flags", "质量提示", "Data-quality flags", total=False),
)


def columns_for(kind: str) -> list[Column]:
    return [c for c in COLUMNS if kind in c.kinds]


def headings(kind: str, lang: str = "zh") -> list[str]:
    return [getattr(c, lang) for c in columns_for(kind)]


def _cell(row: dict[str, Any], key: str, lang: str) -> Any:
    if key == "declared_required":
        declared = "未反馈" if lang == "zh" else "no reply"
        return f"{row['declared'] if row['declared'] is not None else declared}/{row['required']}"
    if key in ("basic", "hypertension", "diabetes"):
        return row["health_records"][key]
    if key == "flags":
        return "; ".join(f"{f['rule']}: {f['message']}" for f in row["flags"])
    return row[key]


def table_rows(report: dict[str, Any], kind: str, lang: str = "zh") -> list[list[Any]]:
    """The rows of one bulletin table, then a totals row (合计)."""
    columns = columns_for(kind)
    rows = [[_cell(r, c.key, lang) for c in columns] for r in report["rows"] if r["kind"] == kind]
    totals: list[Any] = []
    for index, column in enumerate(columns):
        if index == 0:
            totals.append("合计" if lang == "zh" else "Total")
        elif column.total:
            totals.append(sum(row[index] for row in rows))
        else:
            totals.append("")
    return [*rows, totals]


def to_csv(report: dict[str, Any], kinds: Sequence[str], lang: str = "zh") -> str:
    """One CSV; with both kinds, each table under its own title line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for kind in kinds:
        if len(kinds) > 1:
            writer.writerow([TITLES[lang][kind].format(month=report["month"])])
        writer.writerow(headings(kind, lang))
        writer.writerows(table_rows(report, kind, lang))
    return out.getvalue()


def to_xlsx(report: dict[str, Any], kinds: Sequence[str], lang: str = "zh") -> bytes:
    """A workbook with one sheet per kind: bulletin headings, rows, totals row."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    workbook.remove(workbook.active)
    for kind in kinds:
        sheet = workbook.create_sheet(
            ("区" if kind == "district" else "医院") if lang == "zh" else kind
        )
        sheet.append([TITLES[lang][kind].format(month=report["month"])])
        sheet.append(headings(kind, lang))
        for cell in sheet[2]:
            cell.font = Font(bold=True)
        rows = table_rows(report, kind, lang)
        for row in rows:
            sheet.append(row)
        for cell in sheet[sheet.max_row]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "B3"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
