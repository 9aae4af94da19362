"""Server time of each dashboard page for 1,000 institutions (target: under 300 ms each).

The stored reports (12 months) and the aggregates behind the pages are generated directly. Each
page is requested in-process through the ASGI app (no network), signed in as a regulator, and the
median of the runs is printed. Run:

    .venv/bin/python -m benchmarks.dashboard_pages [--institutions 1000] [--repeat 15]

Its scratch database is made by benchmarks/scratch.py (HIE_TEST_POSTGRES_URL) and dropped.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from benchmarks.scratch import scratch_database, settings_for
from hie.app import create_app
from hie.metrics.timeliness import summarize
from hie.storage import Database, open_database
from hie.storage.partitions import PartitionMaker
from hie.storage.tokens import create_token

MONTH = date(2019, 7, 1)
ZONE = ZoneInfo("Asia/Shanghai")
HOSPITAL_TABLES = [f"C{n:04d}" for n in range(1, 54)]
DISTRICT_TABLES = [
    "HSDA00.01",
    *[f"HSDB0{g}.0{n}" for g in (1, 2, 3, 4) for n in (1, 2, 3, 4)],
    *[f"HSDC00.0{n}" for n in (1, 2, 3, 4, 5)],
]
RULES = ["cda.header.realm", "cda.header.custodian", "cda.schema", "cda.code.unknown"]


def _months() -> list[date]:
    months = [MONTH]
    while len(months) < 12:
        first = months[0]
        months.insert(0, date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1))
    return months


def _institutions(count: int) -> list[tuple[str, str, str]]:
    return [
        (f"I{n:05d}", f"机构{n}", "district" if n % 10 == 0 else "hospital") for n in range(count)
    ]


def _row(
    rng: random.Random, code: str, name: str, kind: str, declared: list[str] | None
) -> dict[str, Any]:
    tables = DISTRICT_TABLES if kind == "district" else HOSPITAL_TABLES
    uploaded = set(rng.sample(tables, rng.randint(10, len(tables) - 5)))
    records = rng.randint(0, 5_000_000)
    flags = []
    if rng.random() < 0.1:
        flags.append({"rule": "flag.few-upload-days", "message": "uploaded on 5 of 31 days"})
    return {
        "institution": code,
        "name": name,
        "kind": kind,
        "district": None,
        "required": len(tables),
        "declared": None if declared is None else len(declared),
        "uploaded_tables": len(uploaded),
        "undeclared_tables": [] if declared is None else sorted(uploaded - set(declared)),
        "missing_declared_tables": sorted(set(declared or ()) - uploaded),
        "records": records,
        "upload_days": rng.randint(0, 31),
        "outpatient_visits": rng.randint(0, 300_000) if kind == "hospital" else 0,
        "discharges": rng.randint(0, 10_000),
        "health_records": {
            "basic": rng.randint(0, 900_000) if kind == "district" else 0,
            "hypertension": rng.randint(0, 90_000) if kind == "district" else 0,
            "diabetes": rng.randint(0, 30_000) if kind == "district" else 0,
        },
        "rejected": rng.randint(0, 500),
        "persons_without_id": {"basic": 0, "hypertension": 0, "diabetes": 0},
        "timeliness": summarize({2: rng.randint(1, 9), 5: rng.randint(1, 9)}),
        "rejection_rate": 0.01,
        "top_rejection_reasons": [],
        "flags": flags,
    }


def fill(database: Database, count: int, seed: int = 7) -> dict[str, str]:
    """Institutions, declarations, 12 stored reports and the month's aggregates."""
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    institutions = _institutions(count)
    declared: dict[str, list[str] | None] = {}
    for code, _, kind in institutions:
        tables = DISTRICT_TABLES if kind == "district" else HOSPITAL_TABLES
        declared[code] = None if rng.random() < 0.1 else rng.sample(tables, len(tables) * 2 // 3)
    PartitionMaker(database, ZONE).ensure_month(MONTH)
    days = [MONTH + timedelta(days=d) for d in range(31)]
    with database.connection() as conn, conn.cursor() as cur:
        cur.execute("set synchronous_commit = off")
        with cur.copy("copy institution (code, name, kind) from stdin") as copy:
            for row in institutions:
                copy.write_row(row)
        with cur.copy(
            "copy declaration (institution_code, tables, declared_by) from stdin"
        ) as copy:
            for code, tables in declared.items():
                if tables is not None:
                    copy.write_row((code, tables, "bench"))
        for month in _months():
            rows = [_row(rng, c, n, k, declared[c]) for c, n, k in institutions]
            body = {
                "month": f"{month:%Y-%m}",
                "timezone": ZONE.key,
                "generated_at": datetime.now(UTC).isoformat(),
                "final": True,
                "cumulative_records": sum(r["records"] for r in rows),
                "rows": rows,
            }
            cur.execute(
                "insert into monthly_report (month, generated_at, final, body) "
                "values (%s, %s, %s, %s)",
                (month, datetime.now(UTC), True, Jsonb(body)),
            )
        with cur.copy(
            "copy monthly_table_count (institution_code, month, table_code, records) from stdin"
        ) as copy:
            for code, _, kind in institutions:
                for table in DISTRICT_TABLES if kind == "district" else HOSPITAL_TABLES[:40]:
                    for month in _months():
                        copy.write_row((code, month, table, rng.randint(1, 100_000)))
        with cur.copy(
            "copy daily_table_count (institution_code, day, table_code, records) from stdin"
        ) as copy:
            for code, _, kind in institutions:
                for table in DISTRICT_TABLES if kind == "district" else HOSPITAL_TABLES[:40]:
                    for day in days:
                        copy.write_row((code, day, table, rng.randint(1, 3000)))
        with cur.copy("copy daily_rejection (institution_code, day, rejected) from stdin") as copy:
            for code, _, _ in institutions:
                for day in days[::3]:
                    copy.write_row((code, day, rng.randint(1, 20)))
        with cur.copy(
            "copy daily_rejection_reason (institution_code, day, rule_id, occurrences) from stdin"
        ) as copy:
            for code, _, _ in institutions:
                for day in days[::3]:
                    for rule in RULES:
                        copy.write_row((code, day, rule, rng.randint(1, 20)))
        with cur.copy(
            "copy monthly_latency (institution_code, month, bucket, versions) from stdin"
        ) as copy:
            for code, _, _ in institutions:
                for bucket in range(13):
                    copy.write_row((code, MONTH, bucket, rng.randint(0, 1000)))
        with cur.copy(
            "copy upload (id, received_at, institution_code, channel, byte_size, outcome, "
            "rejected_count, receipt) from stdin"
        ) as copy:
            start = datetime(2019, 7, 1, tzinfo=ZONE)
            for code, _, _ in institutions:
                for n in range(40):
                    rule = RULES[n % len(RULES)]
                    receipt = {
                        "resourceType": "OperationOutcome",
                        "issue": [
                            {
                                "severity": "error",
                                "code": "value",
                                "diagnostics": f"{rule} failed in upload {n}",
                                "details": {"coding": [{"system": "urn:hie:rule", "code": rule}]},
                            }
                        ],
                    }
                    when = start + timedelta(hours=n * 17)
                    copy.write_row(
                        (uuid.uuid4(), when, code, "cda", 100, "rejected", 1, Jsonb(receipt))
                    )
        cur.execute("analyze")
        with database.transaction() as tx:
            _, token = create_token(
                tx.conn, role="regulator", institution_code=None, label="bench", actor="bench"
            )
    return {"token": token, "hospital": "I00001", "district": "I00010"}


def sign_in(client: TestClient, token: str) -> None:
    form = client.get("/dashboard/login").text
    found = re.search(r'name="csrf" value="([^"]+)"', form)
    if found is None:
        raise RuntimeError("no CSRF field on the sign-in form")
    answer = client.post(
        "/dashboard/login", data={"csrf": found.group(1), "token": token, "next": "/dashboard"}
    )
    if answer.status_code != 303:
        raise RuntimeError(f"sign-in failed: {answer.status_code}")


def measure(client: TestClient, path: str, repeat: int) -> list[float]:
    timings = []
    for n in range(repeat + 2):
        started = time.perf_counter()
        answer = client.get(path)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise RuntimeError(f"{path}: {answer.status_code}")
        if n >= 2:  # the first two warm the caches (templates, plans)
            timings.append(elapsed)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--institutions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with scratch_database() as url, tempfile.TemporaryDirectory() as data_dir:
        settings = settings_for(url, Path(data_dir))
        database = open_database(settings)
        try:
            started = time.perf_counter()
            fixture = fill(database, args.institutions)
            print(
                f"generated {args.institutions} institutions "
                f"in {time.perf_counter() - started:.1f} s"
            )
        finally:
            database.close()
        month = f"month={MONTH:%Y-%m}"
        hospital = f"/dashboard/institutions/{fixture['hospital']}?{month}"
        district = f"/dashboard/institutions/{fixture['district']}?{month}"
        pages = {
            "month overview": f"/dashboard?{month}",
            "month overview, sorted by records": f"/dashboard?{month}&sort=records&dir=desc",
            "month overview, English": f"/dashboard?{month}&lang=en",
            "overview CSV export": f"/dashboard?{month}&export=csv&table=all",
            "overview XLSX export": f"/dashboard?{month}&export=xlsx&table=all",
            "institution page (hospital)": hospital,
            "institution page (district)": district,
            "institution grid CSV export": f"{hospital}&export=csv&table=tables",
            "table page (C0002)": f"/dashboard/tables/C0002?{month}",
            "table page (HSDA00.01)": f"/dashboard/tables/HSDA00.01?{month}",
        }
        with TestClient(create_app(settings), follow_redirects=False) as client:
            sign_in(client, fixture["token"])
            print(f"{args.institutions} institutions, median of {args.repeat} requests:")
            for label, path in pages.items():
                timings = measure(client, path, args.repeat)
                median = statistics.median(timings) * 1000
                verdict = "ok" if median < 300 else "SLOW"
                print(
                    f"  {label:<36} {median:7.1f} ms  (min {min(timings) * 1000:.1f}, "
                    f"max {max(timings) * 1000:.1f})  {verdict}"
                )


if __name__ == "__main__":
    main()
