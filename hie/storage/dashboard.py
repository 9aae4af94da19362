"""Read-only queries behind the dashboard pages: small slices of the stored reports and aggregates.

Each query is bounded by one institution or one table and one month, so a page costs the same
whatever the number of stored records.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from hie.storage.database import Connection

# A sample error is looked for among this many of the month's latest rejected uploads: enough to
# find one for every frequent rule, and a bound on the work when an institution rejects millions.
SAMPLE_SCAN = 500


def report_months(conn: Connection) -> list[date]:
    """The months that have a stored report, newest first."""
    return [
        r["month"] for r in conn.execute("select month from monthly_report order by month desc")
    ]


def institution_rows(
    conn: Connection, code: str, first: date, last: date
) -> dict[date, dict[str, Any] | None]:
    """One institution's row of each stored report from ``first`` to ``last``.

    The row is picked out inside PostgreSQL so that a page never parses a whole month's report
    (1,000 institutions × 12 months) to read one institution.
    """
    rows = conn.execute(
        """
        select month, jsonb_path_query_first(
            body, '$.rows[*] ? (@.institution == $code)', jsonb_build_object('code', %s::text)
        ) as row
        from monthly_report where month between %s and %s order by month
        """,
        (code, first, last),
    ).fetchall()
    return {r["month"]: r["row"] for r in rows}


def table_records(conn: Connection, code: str, month: date) -> dict[str, int]:
    """Records written per table by one institution in a month."""
    return {
        r["table_code"]: r["records"]
        for r in conn.execute(
            """
            select table_code, sum(records)::bigint as records from monthly_table_count
            where institution_code = %s and month = %s group by 1 having sum(records) > 0
            """,
            (code, month),
        )
    }


def records_by_day(conn: Connection, code: str, start: date, end: date) -> dict[date, int]:
    """Records written per day by one institution, ``start`` included, ``end`` excluded."""
    return {
        r["day"]: r["records"]
        for r in conn.execute(
            """
            select day, sum(records)::bigint as records from daily_table_count
            where institution_code = %s and day >= %s and day < %s group by 1
            """,
            (code, start, end),
        )
    }


def rejections_by_day(conn: Connection, code: str, start: date, end: date) -> dict[date, int]:
    return {
        r["day"]: r["rejected"]
        for r in conn.execute(
            """
            select day, sum(rejected)::bigint as rejected from daily_rejection
            where institution_code = %s and day >= %s and day < %s group by 1
            """,
            (code, start, end),
        )
    }


def rejection_reasons(
    conn: Connection, code: str, days: tuple[date, date], instants: tuple[datetime, datetime]
) -> list[dict[str, Any]]:
    """Each rule that rejected uploads of the month, its count, and the issue it raised in the
    latest rejected upload that carries it (None when none of the scanned receipts has it)."""
    return conn.execute(
        """
        with reasons as (
            select rule_id, sum(occurrences)::bigint as occurrences from daily_rejection_reason
            where institution_code = %(code)s and day >= %(first_day)s and day < %(end_day)s
            group by 1
        ), recent as (
            select received_at, receipt from upload
            where institution_code = %(code)s and received_at >= %(start)s
              and received_at < %(end)s and outcome in ('rejected', 'partial')
            order by received_at desc limit %(scan)s
        )
        select r.rule_id, r.occurrences, s.received_at, s.issue
        from reasons r
        left join lateral (
            select u.received_at, jsonb_path_query_first(u.receipt, p.path, p.vars) as issue
            from recent u,
                lateral (select '$.**.issue ? (@.details.coding.code == $rule)'::jsonpath as path,
                                jsonb_build_object('rule', r.rule_id) as vars) p
            where jsonb_path_exists(u.receipt, p.path, p.vars)
            order by u.received_at desc limit 1
        ) s on true
        order by r.occurrences desc, r.rule_id
        """,
        {
            "code": code,
            "first_day": days[0],
            "end_day": days[1],
            "start": instants[0],
            "end": instants[1],
            "scan": SAMPLE_SCAN,
        },
    ).fetchall()


def latency_histogram(conn: Connection, code: str, month: date) -> dict[int, int]:
    return {
        r["bucket"]: r["versions"]
        for r in conn.execute(
            """
            select bucket, sum(versions)::bigint as versions from monthly_latency
            where institution_code = %s and month = %s group by 1
            """,
            (code, month),
        )
    }


def table_uploaders(
    conn: Connection, table_code: str, month: date, end: date
) -> list[dict[str, Any]]:
    """Institutions that wrote records of one table in a month: records and upload days."""
    return conn.execute(
        """
        select m.institution_code, i.name, i.kind, m.records, coalesce(d.days, 0) as days
        from (
            select institution_code, sum(records)::bigint as records from monthly_table_count
            where table_code = %(table)s and month = %(month)s group by 1 having sum(records) > 0
        ) m
        join institution i on i.code = m.institution_code
        left join (
            -- A daily counter row exists only once a record was written (counters start at 1
            -- and only grow), so no test of ``records``: an index on (table_code, day,
            -- institution_code) answers this alone.
            select institution_code, count(distinct day) as days from daily_table_count
            where table_code = %(table)s and day >= %(month)s and day < %(end)s
            group by 1
        ) d on d.institution_code = m.institution_code
        order by m.records desc, m.institution_code
        """,
        {"table": table_code, "month": month, "end": end},
    ).fetchall()


def institution_names(conn: Connection) -> dict[str, dict[str, Any]]:
    return {
        r["code"]: r
        for r in conn.execute(
            "select code, name, kind, district_code from institution order by code"
        )
    }
