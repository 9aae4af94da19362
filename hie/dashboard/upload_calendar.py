"""A month laid out as weeks (Monday first), each day with its records and rejections."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

# Shading steps relative to the month's busiest day; a colour is never the only signal (each
# day also shows its count).
LEVELS = 4


@dataclass(frozen=True)
class Day:
    day: date
    records: int
    rejected: int
    level: int  # 0 (nothing written) .. LEVELS


def month_weeks(
    month: date, records: dict[date, int], rejected: dict[date, int]
) -> list[list[Day | None]]:
    """Rows of seven cells; None pads the days outside the month."""
    peak = max(records.values(), default=0)
    weeks: list[list[Day | None]] = []
    for week in calendar.Calendar(firstweekday=0).monthdatescalendar(month.year, month.month):
        cells: list[Day | None] = []
        for day in week:
            if day.month != month.month:
                cells.append(None)
                continue
            n = records.get(day, 0)
            level = 0 if n == 0 or peak == 0 else max(1, round(n / peak * LEVELS))
            cells.append(Day(day, n, rejected.get(day, 0), level))
        weeks.append(cells)
    return weeks
