"""FHIR date, dateTime and instant values as the half-open time ranges they stand for.

A FHIR date is imprecise on purpose: ``2019-07`` is the whole of July. Searching compares ranges
(http://hl7.org/fhir/R4/search.html#date), so both stored values and search values become
``[low, high)``. Values without a time zone are read in the platform's zone.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_DATE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)

Range = tuple[datetime, datetime]

MIN = datetime.min.replace(tzinfo=ZoneInfo("UTC")) + timedelta(days=1)
MAX = datetime.max.replace(tzinfo=ZoneInfo("UTC")) - timedelta(days=1)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    return moment.replace(year=moment.year + index // 12, month=index % 12 + 1)


def date_range(text: str, zone: ZoneInfo) -> Range | None:
    """The range ``text`` stands for, or None when it is not a FHIR date/dateTime/instant or
    falls outside ``[MIN, MAX]`` (years 1 and 9999 at their very edges)."""
    match = _DATE.fullmatch(text.strip())
    if match is None:
        return None
    parts = match.groupdict()
    tz = zone
    if parts["tz"]:
        tz = (
            ZoneInfo("UTC")
            if parts["tz"] == "Z"
            else datetime.strptime(parts["tz"].replace(":", ""), "%z").tzinfo  # type: ignore[assignment]
        )
    try:
        low = datetime(
            int(parts["y"]),
            int(parts["m"] or 1),
            int(parts["d"] or 1),
            int(parts["H"] or 0),
            int(parts["M"] or 0),
            int(parts["S"] or 0),
            int((parts["f"] or "0")[:6].ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:
        return None
    try:
        found = _widen(low, parts)
    except (OverflowError, ValueError):  # 9999-12-31 ends after the last datetime
        return None
    # MIN and MAX stand for open ends: a value reaching them is out of range, not open.
    if found[0] < MIN or found[1] > MAX:
        return None
    return found


def _widen(low: datetime, parts: dict[str, str | None]) -> Range:
    """``[low, high)``: ``low`` to the end of the precision written."""
    if parts["f"]:
        precision = timedelta(microseconds=10 ** max(0, 6 - len(parts["f"])))
        return low, low + precision
    if parts["S"]:
        return low, low + timedelta(seconds=1)
    if parts["M"]:
        return low, low + timedelta(minutes=1)
    if parts["d"]:
        return low, low + timedelta(days=1)
    if parts["m"]:
        return low, _add_months(low, 1)
    return low, low.replace(year=low.year + 1)


def period_range(period: dict[str, object], zone: ZoneInfo) -> Range | None:
    """A Period's range: from the start of ``start`` to the end of ``end``; open ends are open."""
    start, end = period.get("start"), period.get("end")
    low = date_range(start, zone) if isinstance(start, str) else None
    high = date_range(end, zone) if isinstance(end, str) else None
    if low is None and high is None:
        return None
    return (low[0] if low else MIN), (high[1] if high else MAX)
