"""The monthly upload-completeness report (report-spec.md), computed from the aggregates only.

Every query reads per-day, per-month or per-unit counters kept at ingest; none reads stored records,
so the time to compute a month depends on the number of institutions and tables, not of records.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hie.metrics.flags import Flag, flag_rows
from hie.metrics.timeliness import summarize
from hie.storage import Connection
from hie.storage.catalog import current_catalog
from hie.storage.declarations import declarations_at
from hie.storage.partitions import FIRST_YEAR, LAST_YEAR, next_month, previous_month

PERSON_CATEGORIES = ("basic", "hypertension", "diabetes")
TOP_REASONS = 5


def _rate(rejected: int, written: int) -> float | None:
    attempts = rejected + written
    return None if attempts == 0 else round(rejected / attempts, 4)


@dataclass
class Row:
    institution: str
    name: str
    kind: str
    district: str | None
    required: int
    declared: int | None
    uploaded_tables: int
    undeclared_tables: list[str]
    missing_declared_tables: list[str]
    records: int
    upload_days: int
    outpatient_visits: int
    discharges: int
    health_records: dict[str, int]
    rejected: int
    # Records that would have counted a person but carried no usable ID number (per category).
    persons_without_id: dict[str, int] = field(default_factory=dict)
    timeliness: dict[str, Any] = field(default_factory=dict)
    rejection_rate: float | None = None  # rejected / (rejected + records written)
    top_rejection_reasons: list[dict[str, Any]] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    previous_records: int = 0
    flags: list[Flag] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("uploaded")
        data.pop("previous_records")
        data["flags"] = [f.to_json() for f in self.flags]
        return data


@dataclass
class MonthReport:
    month: date
    timezone: str
    generated_at: datetime
    final: bool
    cumulative_records: int
    rows: list[Row]

    def to_json(self, kind: str | None = None) -> dict[str, Any]:
        return {
            "month": f"{self.month:%Y-%m}",
            "timezone": self.timezone,
            "generated_at": self.generated_at.isoformat(),
            "final": self.final,
            "cumulative_records": self.cumulative_records,
            "rows": [r.to_json() for r in self.rows if kind is None or r.kind == kind],
        }


def parse_month(text: str) -> date:
    """``2019-07`` → 2019-07-01; anything else is a ValueError with a readable message."""
    try:
        parsed = datetime.strptime(text, "%Y-%m")  # noqa: DTZ007 (a calendar month, no time)
    except ValueError:
        raise ValueError(f"{text!r} is not a month; write it as YYYY-MM, e.g. 2019-07") from None
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise ValueError(f"{text!r} is not a month from {FIRST_YEAR}-01 to {LAST_YEAR}-12")
    return parsed.date()


def compute_month(conn: Connection, month: date, zone: ZoneInfo) -> MonthReport:
    """Compute every institution's row of ``month`` (the first day of a month) in ``zone``."""
    end = next_month(month)
    end_instant = datetime(end.year, end.month, 1, tzinfo=zone)
    catalog = current_catalog(conn)
    required = {
        kind: [t.code for t in catalog.required_for(kind)] for kind in ("hospital", "district")
    }
    declarations = declarations_at(conn, end_instant)

    uploaded: dict[str, set[str]] = defaultdict(set)
    records: dict[str, int] = defaultdict(int)
    for r in conn.execute(
        """
        select institution_code, table_code, sum(records)::bigint as records
        from monthly_table_count where month = %s group by 1, 2
        """,
        (month,),
    ).fetchall():
        if r["records"] > 0:
            uploaded[r["institution_code"]].add(r["table_code"])
            records[r["institution_code"]] += r["records"]
    days = {
        r["institution_code"]: r["days"]
        for r in conn.execute(
            """
            select institution_code, count(distinct day) as days from daily_table_count
            where day >= %s and day < %s and records > 0 group by 1
            """,
            (month, end),
        ).fetchall()
    }
    previous = {
        r["institution_code"]: r["records"]
        for r in conn.execute(
            """
            select institution_code, sum(records)::bigint as records from monthly_table_count
            where month = %s group by 1
            """,
            (previous_month(month),),
        ).fetchall()
    }
    units: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in conn.execute(
        """
        select institution_code, figure,
            coalesce(sum(units) filter (where month = %(month)s), 0)::bigint as in_month,
            sum(units)::bigint as cumulative
        from monthly_unit_count where month <= %(month)s group by 1, 2
        """,
        {"month": month},
    ).fetchall():
        figure = r["figure"]
        # Visits and discharges count in their month; persons cumulatively up to its end.
        cumulative = figure.startswith(("health_records.", "unkeyed:health_records."))
        units[r["institution_code"]][figure] = r["cumulative"] if cumulative else r["in_month"]
    rejected = {
        r["institution_code"]: r["rejected"]
        for r in conn.execute(
            """
            select institution_code, sum(rejected)::bigint as rejected from daily_rejection
            where day >= %s and day < %s group by 1
            """,
            (month, end),
        ).fetchall()
    }
    latency: dict[str, dict[int, int]] = defaultdict(dict)
    for r in conn.execute(
        """
        select institution_code, bucket, sum(versions)::bigint as versions from monthly_latency
        where month = %s group by 1, 2
        """,
        (month,),
    ).fetchall():
        latency[r["institution_code"]][r["bucket"]] = r["versions"]
    reasons: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in conn.execute(
        """
        select institution_code, rule_id, sum(occurrences)::bigint as occurrences
        from daily_rejection_reason where day >= %s and day < %s
        group by 1, 2 order by 1, 3 desc, 2
        """,
        (month, end),
    ).fetchall():
        if len(reasons[r["institution_code"]]) < TOP_REASONS:
            reasons[r["institution_code"]].append(
                {"rule": r["rule_id"], "occurrences": r["occurrences"]}
            )
    total = conn.execute(
        "select coalesce(sum(records), 0)::bigint as n from monthly_table_count where month <= %s",
        (month,),
    ).fetchone()

    rows = []
    for inst in conn.execute(
        "select code, name, kind, district_code from institution order by kind desc, code"
    ).fetchall():
        code = inst["code"]
        declared = declarations.get(code)
        tables = uploaded.get(code, set())
        counted = units.get(code, {})
        rows.append(
            Row(
                institution=code,
                name=inst["name"],
                kind=inst["kind"],
                district=inst["district_code"],
                required=len(required[inst["kind"]]),
                declared=None if declared is None else len(declared),
                uploaded_tables=len(tables),
                undeclared_tables=[] if declared is None else sorted(tables - set(declared)),
                missing_declared_tables=sorted(set(declared or ()) - tables),
                records=records.get(code, 0),
                upload_days=days.get(code, 0),
                outpatient_visits=counted.get("outpatient_visits", 0),
                discharges=counted.get("discharges", 0),
                health_records={
                    c: counted.get(f"health_records.{c}", 0) for c in PERSON_CATEGORIES
                },
                persons_without_id={
                    c: counted.get(f"unkeyed:health_records.{c}", 0) for c in PERSON_CATEGORIES
                },
                rejected=rejected.get(code, 0),
                timeliness=summarize(latency.get(code, {})),
                rejection_rate=_rate(rejected.get(code, 0), records.get(code, 0)),
                top_rejection_reasons=reasons.get(code, []),
                uploaded=sorted(tables),
                previous_records=previous.get(code, 0),
            )
        )
    now = datetime.now(UTC)
    report = MonthReport(
        month=month,
        timezone=zone.key,
        generated_at=now.astimezone(zone),
        final=now >= end_instant,
        cumulative_records=total["n"] if total else 0,
        rows=rows,
    )
    flag_rows(report.rows, month=month, final=report.final, today=now.astimezone(zone).date())
    return report
