"""How long computing one month's report takes for 1,000 institutions, with 1 million and with
100 million records behind the aggregates (the aggregates are generated directly).

The report reads only the aggregates, so both runs should take the same time. Run:

    .venv/bin/python -m benchmarks.report_month [--institutions 1000] [--repeat 5]

Its scratch databases are made by benchmarks/scratch.py (HIE_TEST_POSTGRES_URL) and dropped.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from benchmarks.scratch import scratch_database, settings_for
from hie.metrics.report import compute_month
from hie.storage import Database, open_database

MONTH = date(2019, 7, 1)
ZONE = ZoneInfo("Asia/Shanghai")


def fill(database: Database, institutions: int, total_records: int, seed: int = 7) -> None:
    """Aggregates of a year up to MONTH: ~30 tables a day per institution, counts scaled so that
    they add up to about ``total_records``."""
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    months = [
        date(2018 + (m + 7) // 12, (m + 7) % 12 + 1, 1) for m in range(12)
    ]  # 2018-08..2019-07
    days = [MONTH + timedelta(days=d) for d in range(31)]
    tables_h = [f"C{n:04d}" for n in range(1, 31)]
    tables_d = ["HSDA00.01", "HSDB04.01", "HSDB04.02", *[f"HSDB0{n}.01" for n in (1, 2, 3)]]
    series = sum(len(tables_d) if n % 10 == 0 else len(tables_h) for n in range(institutions))
    per_month = total_records / (series * len(months))
    with database.connection() as conn, conn.cursor() as cur:
        cur.execute("set synchronous_commit = off")
        codes = [f"I{n:05d}" for n in range(institutions)]
        with cur.copy("copy institution (code, name, kind) from stdin") as copy:
            for n, code in enumerate(codes):
                copy.write_row((code, f"机构{n}", "district" if n % 10 == 0 else "hospital"))
        with cur.copy(
            "copy daily_table_count (institution_code, day, table_code, records) from stdin"
        ) as copy:
            for n, code in enumerate(codes):
                for table in tables_d if n % 10 == 0 else tables_h:
                    for day in days:
                        copy.write_row((code, day, table, max(1, round(per_month / 31))))
        with cur.copy(
            "copy monthly_table_count (institution_code, month, table_code, records) from stdin"
        ) as copy:
            for n, code in enumerate(codes):
                for table in tables_d if n % 10 == 0 else tables_h:
                    for month in months:
                        copy.write_row(
                            (code, month, table, round(per_month * rng.uniform(0.5, 1.5)))
                        )
        with cur.copy(
            "copy monthly_unit_count (institution_code, figure, month, units) from stdin"
        ) as copy:
            for n, code in enumerate(codes):
                figures = (
                    [
                        "health_records.basic",
                        "health_records.hypertension",
                        "health_records.diabetes",
                    ]
                    if n % 10 == 0
                    else ["outpatient_visits", "discharges"]
                )
                for figure in figures:
                    for month in months:
                        copy.write_row((code, figure, month, max(1, round(per_month / 20))))
        cur.execute("analyze")


def measure(database: Database, repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        with database.connection() as conn:
            report = compute_month(conn, MONTH, ZONE)
        timings.append(time.perf_counter() - started)
    if not report.rows:
        raise RuntimeError("the report has no rows")
    return timings


def run(institutions: int, total_records: int, repeat: int) -> tuple[list[float], int]:
    with scratch_database() as url:
        database = open_database(settings_for(url))
        try:
            fill(database, institutions, total_records)
            with database.connection() as conn:
                row = conn.execute(
                    "select sum(records)::bigint as n from monthly_table_count"
                ).fetchone()
            return measure(database, repeat), int(row["n"]) if row else 0
        finally:
            database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--institutions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for total in (1_000_000, 100_000_000):
        timings, records = run(args.institutions, total, args.repeat)
        results[total] = statistics.median(timings)
        print(
            f"{args.institutions} institutions, {records:>13,} records behind the aggregates: "
            f"median {results[total]:.3f} s (min {min(timings):.3f}, max {max(timings):.3f}) "
            f"over {args.repeat} runs"
        )
    ratio = results[100_000_000] / results[1_000_000]
    print(f"ratio 100M / 1M records: {ratio:.2f} (1.00 = independent of the number of records)")


if __name__ == "__main__":
    main()
