"""Data-quality flags on report rows: what the bulletin's numbers hide, each with the rule that
fired (report-spec.md, "Beyond the bulletin"). Rules register with :func:`flag_rule`."""

from __future__ import annotations

import calendar
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hie.metrics.report import Row

# Robust z-score: 0.6745 makes the MAD comparable to a standard deviation; 3.5 is the usual cut-off
# (Iglewicz and Hoaglin) for "far outside the peer group".
MAD_SCALE = 0.6745
OUTLIER_Z = 3.5
MIN_PEERS = 5
# In Chinese population surveys hypertensive persons outnumber diabetic ones by about 2 to 4;
# well outside that band a health-record programme is more likely mis-coding than seeing it.
MAX_DIABETES_PER_HYPERTENSION = 2.0
MAX_HYPERTENSION_PER_DIABETES = 20.0
MIN_CHRONIC_PERSONS = 100
DROP_SHARE = 0.5
MIN_UPLOAD_DAY_SHARE = 0.5


@dataclass(frozen=True)
class Flag:
    rule: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


@dataclass(frozen=True)
class Period:
    month: date
    final: bool
    days: int  # days of the month the figures cover: all of them once it is over
    peers: dict[str, tuple[float, float]]  # kind -> (median, MAD) of log10 records per unit


Check = Callable[["Row", Period], str | None]


@dataclass(frozen=True)
class FlagRule:
    id: str
    summary: str
    check: Check


FLAG_RULES: dict[str, FlagRule] = {}


def flag_rule(rule_id: str, summary: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        FLAG_RULES[rule_id] = FlagRule(rule_id, summary, check)
        return check

    return register


def _units(row: Row) -> int:
    return row.outpatient_visits + row.discharges


def _log_records_per_unit(row: Row) -> float | None:
    units = _units(row)
    if units == 0 or row.records == 0:
        return None
    return math.log10(row.records / units)


@flag_rule("flag.declared-silent", "Declared tables, but no record written in the month.")
def _declared_silent(row: Row, period: Period) -> str | None:
    if row.declared and row.records == 0:
        return f"declared {row.declared} tables but wrote no record this month"
    return None


@flag_rule("flag.undeclared-tables", "Uploaded tables the institution has not declared.")
def _undeclared(row: Row, period: Period) -> str | None:
    if row.undeclared_tables:
        shown = ", ".join(row.undeclared_tables[:10])
        more = (
            f" and {len(row.undeclared_tables) - 10} more"
            if len(row.undeclared_tables) > 10
            else ""
        )
        return f"uploaded {len(row.undeclared_tables)} undeclared table(s): {shown}{more}"
    return None


@flag_rule(
    "flag.records-per-visit",
    "Records per visit or discharge far outside the peer group (robust z-score on median and MAD).",
)
def _records_per_visit(row: Row, period: Period) -> str | None:
    value = _log_records_per_unit(row)
    peer = period.peers.get(row.kind)
    if value is None or peer is None:
        return None
    median, mad = peer
    if mad == 0:
        return None
    z = MAD_SCALE * (value - median) / mad
    if abs(z) <= OUTLIER_Z:
        return None
    return (
        f"{row.records / _units(row):,.1f} records per visit or discharge; peers' median is "
        f"{10**median:,.1f} (robust z = {z:+.1f})"
    )


@flag_rule("flag.chronic-ratio", "Hypertension and diabetes person counts in an implausible ratio.")
def _chronic_ratio(row: Row, period: Period) -> str | None:
    hypertension = row.health_records.get("hypertension", 0)
    diabetes = row.health_records.get("diabetes", 0)
    if hypertension + diabetes < MIN_CHRONIC_PERSONS:
        return None
    if diabetes > MAX_DIABETES_PER_HYPERTENSION * hypertension or (
        hypertension > MAX_HYPERTENSION_PER_DIABETES * diabetes
    ):
        return (
            f"{hypertension:,} hypertension vs {diabetes:,} diabetes persons: expected roughly "
            "2 to 4 hypertensive persons per diabetic one"
        )
    return None


@flag_rule("flag.month-drop", "Records fell by more than half from the previous month.")
def _month_drop(row: Row, period: Period) -> str | None:
    if not period.final or row.previous_records == 0:
        return None
    if row.records < DROP_SHARE * row.previous_records:
        fall = 1 - row.records / row.previous_records
        return f"records fell {fall:.0%} from {row.previous_records:,} the month before"
    return None


@flag_rule("flag.few-upload-days", "Upload days far below the days of the month.")
def _few_days(row: Row, period: Period) -> str | None:
    if row.records == 0 or row.upload_days >= MIN_UPLOAD_DAY_SHARE * period.days:
        return None
    return f"uploaded on {row.upload_days} of {period.days} days"


def _peer_statistics(rows: list[Row]) -> dict[str, tuple[float, float]]:
    peers: dict[str, tuple[float, float]] = {}
    for kind in {r.kind for r in rows}:
        values = [v for r in rows if r.kind == kind if (v := _log_records_per_unit(r)) is not None]
        if len(values) < MIN_PEERS:
            continue
        median = statistics.median(values)
        peers[kind] = (median, statistics.median(abs(v - median) for v in values))
    return peers


def flag_rows(rows: list[Row], *, month: date, final: bool, today: date) -> None:
    """Attach the flags of every rule that fires to each row."""
    month_days = calendar.monthrange(month.year, month.month)[1]
    days = month_days if final else max(1, min(month_days, (today - month).days + 1))
    period = Period(month, final, days, _peer_statistics(rows))
    for row in rows:
        for rule in FLAG_RULES.values():
            message = rule.check(row, period)
            if message is not None:
                row.flags.append(Flag(rule.id, message))


def describe_flags() -> list[dict[str, Any]]:
    return [{"rule": r.id, "summary": r.summary} for r in FLAG_RULES.values()]
