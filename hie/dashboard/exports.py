"""CSV and XLSX downloads of the dashboard's tables.

The month overview's tables are the report itself and go through :mod:`hie.metrics.export`, byte
for byte what ``GET /api/reports/completeness?format=csv|xlsx`` serves. The other pages' tables
(grids, calendars, trends) are plain heading-and-rows tables written here the same way.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi.responses import Response

from hie.metrics.export import to_csv, to_xlsx

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = ("csv", "xlsx")


@dataclass
class Grid:
    """One exportable table of a page: its name in file names, headings and plain values."""

    name: str
    title: str
    headings: list[str]
    rows: list[list[Any]]


def _download(body: bytes, media_type: str, filename: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def report_download(
    body: dict[str, Any], kinds: Sequence[str], lang: str, month: date, fmt: str
) -> Response:
    """The report's tables exactly as the report API serves them (same bytes, same file name)."""
    if fmt == "xlsx":
        return _download(to_xlsx(body, kinds, lang), XLSX, f"completeness-{month:%Y-%m}.xlsx")
    return _download(
        to_csv(body, kinds, lang).encode("utf-8-sig"),
        "text/csv; charset=utf-8",
        f"completeness-{month:%Y-%m}.csv",
    )


def grid_download(grid: Grid, stem: str, fmt: str) -> Response:
    filename = f"{stem}-{grid.name}.{fmt}"
    if fmt == "xlsx":
        return _download(_grid_xlsx(grid), XLSX, filename)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(grid.headings)
    writer.writerows(grid.rows)
    # A BOM, as the report API does, so that Excel on Chinese Windows reads the file as UTF-8.
    return _download(out.getvalue().encode("utf-8-sig"), "text/csv; charset=utf-8", filename)


def _grid_xlsx(grid: Grid) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = grid.name[:31]
    sheet.append([grid.title])
    sheet.append(grid.headings)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in grid.rows:
        sheet.append(row)
    sheet.freeze_panes = "A3"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
