"""What the audit trail costs a FHIR read: searches and reads with and without their audit entry,
in the same run, on the same data (target: at most 10 % slower).

Patients are stored through the FHIR API (transaction Bundles), then rounds of searches
(``Patient?family=...``, ``Patient?gender=...&_count=20``, ``Patient?identifier=...``) and reads
go through the app in-process (no network). Rounds alternate between the server as shipped (each
read queues its entry for the background writer, which writes it while the next requests run)
and the same server with the read's audit call replaced by a no-op, so drift hits both alike; the
medians and their ratio are printed, and every entry is in the table at the end. Writes are not
compared: their entry is part of their transaction.
Run:

    .venv/bin/python -m benchmarks.audit_overhead [--patients 2000] [--rounds 6] [--requests 300]

It makes a scratch database on HIE_TEST_POSTGRES_URL (default: the local server) and drops it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

import hie.fhir.routes as fhir_routes
from benchmarks.scratch import enrol, scratch_database, settings_for
from hie.app import create_app
from hie.registry import Institution

FAMILIES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"]


def _patient(n: int, rng: random.Random) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.2", "value": f"MRN{n:07d}"}],
        "name": [{"family": rng.choice(FAMILIES), "given": [f"某{n}"]}],
        "gender": rng.choice(["male", "female"]),
        "birthDate": f"{rng.randint(1940, 2020)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
    }


def _load(client: TestClient, headers: dict[str, str], patients: int) -> None:
    rng = random.Random(7)  # noqa: S311 (test data, not secrets)
    for start in range(0, patients, 200):
        entries = [
            {
                "resource": _patient(n, rng),
                "request": {"method": "PUT", "url": f"Patient/p{n}"},
            }
            for n in range(start, min(start + 200, patients))
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        answer = client.post("/fhir", json=bundle, headers=headers)
        if answer.status_code != 200:
            raise SystemExit(f"loading failed: {answer.status_code} {answer.text[:500]}")


def _requests(patients: int, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    made = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            made.append(f"/fhir/Patient?family={rng.choice(FAMILIES)}&_count=20")
        elif kind == 1:
            made.append(f"/fhir/Patient?gender={rng.choice(['male', 'female'])}&_count=20")
        elif kind == 2:
            value = f"MRN{rng.randrange(patients):07d}"
            made.append(f"/fhir/Patient?identifier=urn:oid:2.16.156.10011.1.2|{value}")
        else:
            made.append(f"/fhir/Patient/p{rng.randrange(patients)}")
    return made


def _round(client: TestClient, headers: dict[str, str], urls: list[str]) -> list[float]:
    times = []
    for url in urls:
        began = time.perf_counter()
        answer = client.get(url, headers=headers)
        times.append(time.perf_counter() - began)
        if answer.status_code != 200:
            raise SystemExit(f"{url}: {answer.status_code} {answer.text[:500]}")
    return times


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of each kind, alternated")
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    args = parser.parse_args()

    with scratch_database("hie_bench_audit") as url, tempfile.TemporaryDirectory() as data:
        settings = settings_for(url, Path(data))
        tokens = enrol(
            settings,
            [Institution("H1", "医院", "hospital")],
            {"submitter": ("submitter", "H1")},
        )
        headers = {"Authorization": f"Bearer {tokens['submitter']}"}
        with TestClient(create_app(settings)) as client:
            began = time.perf_counter()
            _load(client, headers, args.patients)
            print(f"{args.patients} patients stored in {time.perf_counter() - began:.1f} s")
            # As autovacuum would soon: without statistics the planner scans the index.
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("analyze")
            audited_call: Callable[..., None] = fhir_routes.record_read

            def skipped(*_args: object, **_kwargs: object) -> None:
                return None

            _round(client, headers, _requests(args.patients, 50, 0))  # warm-up
            timings: dict[str, list[float]] = {"audited": [], "unaudited": []}
            for r in range(args.rounds * 2):
                audited = r % 2 == 0
                fhir_routes.record_read = audited_call if audited else skipped  # type: ignore[assignment]
                urls = _requests(args.patients, args.requests, r // 2 + 1)
                key = "audited" if audited else "unaudited"
                timings[key] += _round(client, headers, urls)
            fhir_routes.record_read = audited_call  # type: ignore[assignment]
        with psycopg.connect(url) as conn:
            row = conn.execute("select count(*) from audit_event").fetchone()
            entries = row[0] if row else 0

    base = statistics.median(timings["unaudited"]) * 1000
    with_audit = statistics.median(timings["audited"]) * 1000
    base_mean = statistics.fmean(timings["unaudited"]) * 1000
    audit_mean = statistics.fmean(timings["audited"]) * 1000
    print(f"{len(timings['audited'])} audited requests ({entries} audit entries in the table)")
    print(f"without audit: median {base:.2f} ms, mean {base_mean:.2f} ms  (baseline)")
    print(f"with audit:    median {with_audit:.2f} ms, mean {audit_mean:.2f} ms")
    print(
        f"overhead: median x{with_audit / base:.3f} ({(with_audit / base - 1) * 100:+.1f} %), "
        f"mean x{audit_mean / base_mean:.3f} ({(audit_mean / base_mean - 1) * 100:+.1f} %); "
        "target at most +10 %"
    )


if __name__ == "__main__":
    main()
