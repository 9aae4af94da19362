"""Every ingest and serving figure in one run, each against a floor measured in the same run.

    python -m benchmarks [--size tiny|default] [--json benchmark-results.json] [--only NAME...]

Prints a table (figure, value, floor, ratio) and writes the same as JSON. The default size is
bounded to about 10 minutes on 2 cores; ``--size tiny`` runs every figure in a minute or two
(what CI runs: it checks that the figures come out, never how fast). The floors:

- FHIR transaction ingest over HTTP (``hie serve``, one worker per core, 4 clients, Synthea
  transaction Bundles): hie's validation alone times the cores (the most the CPUs allow while
  every resource is validated), and PostgreSQL ``COPY`` of the same resources as jsonb;
- the conditional batch (``conditional_batch.py``'s 2,382 POSTs with ifNoneExist): the same
  entries as plain creates;
- a 10,000-entry batch: its time against validation alone of its entries, and the server's peak
  resident memory against the same process idle;
- bulk ``$import`` on the embedded default (``hie serve``, one process, its own job thread storing
  the lines): the same resources as synchronous batch Bundles of 1,000 entries to the same kind of
  server; and that process's peak resident memory during the import against it idle;
- CDA ingest over HTTP: lxml parse plus XSD validation of the same documents, per core, times
  the cores;
- ``hie validate``: a bare parse of the same files;
- the monthly figures at 1 million and 100 million records (aggregates generated directly):
  reading the month's aggregate rows alone;
- dashboard pages at 1,000 institutions (p50, p99): a trivial request through the same app;
- 50 concurrent clients (create, read, search a Patient): the same requests from one client.

Needs PostgreSQL at ``HIE_TEST_POSTGRES_URL`` (default: the local server); scratch databases
are made and dropped. Uses ../shared/data (Synthea, HL7 examples) when present, else the
project's own fixtures and generated resources.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.scratch import ROOT, SHARED, SYNTHEA, Served, Site, hospital_site, serve

CDA_INSTITUTION = "455755678"  # the custodian of the project's CDA fixtures
CDA_FIXTURES = ROOT / "tests" / "fixtures" / "cda"
FHIR_FIXTURES = ROOT / "tests" / "fixtures" / "fhir"

SIZES: dict[str, dict[str, int]] = {
    "tiny": {
        "bundles": 2,
        "conditional": 40,
        "big_batch": 300,
        "bulk": 400,
        "cda": 40,
        "validate_files": 6,
        "institutions": 20,
        "dashboard_repeat": 3,
        "clients": 50,
        "client_seconds": 5,
    },
    "default": {
        "bundles": 34,
        "conditional": 2382,
        "big_batch": 10_000,
        "bulk": 10_000,
        "cda": 1000,
        "validate_files": 150,
        "institutions": 1000,
        "dashboard_repeat": 10,
        "clients": 50,
        "client_seconds": 20,
    },
}


@dataclass
class Figure:
    """One measured figure, its floor and their ratio (value / floor)."""

    name: str
    value: float | None
    unit: str
    floor: float | None = None
    floor_label: str = ""
    ratio: float | None = None
    goal: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.value is not None and self.floor:
            self.ratio = self.value / self.floor


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# -- inputs -----------------------------------------------------------------------------------


def fhir_bundles(count: int) -> list[bytes]:
    """Transaction Bundles: Synthea's self-contained ones, else the project's fixture repeated."""
    found = [p.read_bytes() for p in sorted(SYNTHEA.glob("smart-*.json"))]
    if not found:
        found = [(FHIR_FIXTURES / "transaction.json").read_bytes()]
    return [found[n % len(found)] for n in range(count)]


def entry_resources(bundles: list[bytes]) -> list[dict[str, Any]]:
    return [e["resource"] for body in bundles for e in json.loads(body)["entry"]]


def organizations(size: int, conditional: bool) -> list[dict[str, Any]]:
    """POST entries of identified Organizations/Practitioners (conditional_batch.py's, from
    Synthea), or generated Organizations when Synthea's bundles are absent."""
    if SYNTHEA.is_dir():
        from benchmarks.conditional_batch import entries

        return entries(size, conditional)
    made = []
    for n in range(size):
        identifier = {"system": "urn:oid:2.16.156.10011.1.5", "value": f"ORG{n:07d}"}
        request: dict[str, str] = {"method": "POST", "url": "Organization"}
        if conditional:
            request["ifNoneExist"] = f"identifier={identifier['system']}|{identifier['value']}"
        resource = {"resourceType": "Organization", "identifier": [identifier], "name": f"机构{n}"}
        made.append(
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource, "request": request}
        )
    return made


def cda_documents(count: int) -> list[bytes]:
    from benchmarks.cda_ingest import documents

    return documents(count)


# -- floors -----------------------------------------------------------------------------------


def validation_rate(resources: list[dict[str, Any]]) -> float:
    """Resources per second through hie's validation alone, in this one process (warm)."""
    from hie.catalog import default_catalog_path, read_catalog
    from hie.validators.fhir import validate_resource

    catalog = read_catalog(default_catalog_path())
    for resource in resources[:50]:  # warm: models built, value sets loaded
        validate_resource({**resource, "id": "warm"}, catalog=catalog)
    started = time.perf_counter()
    for n, resource in enumerate(resources):
        validate_resource({**resource, "id": f"r{n}"}, catalog=catalog)
    return len(resources) / (time.perf_counter() - started)


def copy_rate(url: str, resources: list[dict[str, Any]]) -> float:
    """Rows per second of PostgreSQL COPY of the resources as jsonb (one unlogged table)."""
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table bench_copy (id bigint, resource jsonb)")
        started = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy("copy bench_copy (id, resource) from stdin") as copy_in,
        ):
            for n, resource in enumerate(resources):
                copy_in.write_row((n, Jsonb(resource)))
        elapsed = time.perf_counter() - started
        conn.execute("drop table bench_copy")
    return len(resources) / elapsed


def cda_floor_rate(documents: list[bytes]) -> float:
    """Documents per second through lxml parse + the XSD, in this one process."""
    from lxml import etree  # type: ignore[import-untyped]

    from hie.validators.cda import CdaSchema
    from hie.validators.xml import hardened_parser

    schema = etree.XMLSchema(etree.parse(str(CdaSchema().path)))
    parser = hardened_parser()
    started = time.perf_counter()
    for document in documents:
        schema.validate(etree.fromstring(document, parser).getroottree())
    return len(documents) / (time.perf_counter() - started)


# -- measurements -----------------------------------------------------------------------------


def post_all(
    base: str, headers: dict[str, str], bodies: list[bytes], path: str, clients: int
) -> tuple[float, list[str]]:
    """Post every body from ``clients`` threads; (seconds, failures)."""
    work = list(bodies)
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        with httpx.Client(timeout=600) as http:
            while True:
                with lock:
                    if not work:
                        return
                    body = work.pop()
                answer = http.post(f"{base}{path}", content=body, headers=headers)
                if answer.status_code not in (200, 201):
                    failures.append(f"{answer.status_code} {answer.text[:200]}")

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, failures


def fhir_ingest(site: Site, served: Served, size: dict[str, int]) -> list[Figure]:
    bundles = fhir_bundles(size["bundles"])
    resources = entry_resources(bundles)
    with httpx.Client(timeout=600) as http:  # warm-up: partitions, caches, pool connections
        for body in bundles[:2]:
            http.post(f"{served.base}/fhir", content=body, headers=site.headers)
    web_before, db_before = served.cpu_seconds(site.url)
    seconds, failures = post_all(served.base, site.headers, bundles, "/fhir", clients=4)
    web_after, db_after = served.cpu_seconds(site.url)
    cpu = {
        "web_cpu_ms_per_resource": (web_after - web_before) * 1000 / len(resources),
        "database_cpu_ms_per_resource": (db_after - db_before) * 1000 / len(resources),
    }
    ingest = len(resources) / seconds
    validation = validation_rate(resources)
    copying = copy_rate(site.url, resources)
    n = cores()
    detail = {
        "resources": len(resources),
        "bundles": len(bundles),
        "failures": len(failures),
        **cpu,
    }
    return [
        Figure(
            "FHIR transaction ingest over HTTP",
            ingest,
            "resources/s",
            validation * n,
            f"hie validation alone x {n} cores",
            goal="> 3,000 resources/s on 2 cores; ratio >= 0.75",
            detail=detail | {"validation_one_core": validation},
        ),
        Figure(
            "FHIR ingest against COPY",
            ingest,
            "resources/s",
            copying,
            "PostgreSQL COPY of the resources as jsonb",
            detail=detail,
        ),
    ]


def conditional_batch(size: dict[str, int]) -> list[Figure]:
    from benchmarks.conditional_batch import post, warm_up

    entries = size["conditional"]
    plain, conditional = organizations(entries, False), organizations(entries, True)
    with hospital_site() as site, serve(site.url, 1) as served:
        warm_up(f"{served.base}/fhir", site.headers)
        plain_s, _ = post(f"{served.base}/fhir", site.headers, plain)
    with hospital_site() as site, serve(site.url, 1) as served:
        warm_up(f"{served.base}/fhir", site.headers)
        first_s, statuses = post(f"{served.base}/fhir", site.headers, conditional)
        again_s, again = post(f"{served.base}/fhir", site.headers, conditional)
    return [
        Figure(
            f"conditional batch ({entries} POST ifNoneExist), all new",
            first_s,
            "s",
            plain_s,
            "the same entries as plain creates",
            goal="ratio <= 2",
            detail={"statuses": dict(statuses)},
        ),
        Figure(
            f"conditional batch ({entries}) again, all matching",
            again_s,
            "s",
            plain_s,
            "the same entries as plain creates",
            detail={"statuses": dict(again)},
        ),
    ]


def big_batch(size: dict[str, int]) -> list[Figure]:
    from benchmarks.conditional_batch import post, warm_up

    count = size["big_batch"]
    batch = organizations(count, False)
    validation = validation_rate([copy.deepcopy(e["resource"]) for e in batch])
    with hospital_site() as site, serve(site.url, 1) as served:
        warm_up(f"{served.base}/fhir", site.headers)
        idle = served.peak_rss_mib()
        seconds, statuses = post(f"{served.base}/fhir", site.headers, batch)
        peak = served.peak_rss_mib()
    return [
        Figure(
            f"{count:,}-entry batch Bundle",
            seconds,
            "s",
            count / validation,
            "validation alone of its entries (one core)",
            goal="< 10 s",
            detail={"statuses": dict(statuses)},
        ),
        Figure(
            f"{count:,}-entry batch: server peak RSS",
            peak,
            "MiB",
            idle,
            "the same process before the request",
            goal="< 200 MiB",
        ),
    ]


def bulk_import(size: dict[str, int]) -> list[Figure]:
    """``$import`` worked by the server's own job thread, against batch Bundles of the same
    resources (Patients with ids, Encounters without), each on a fresh database and server."""
    from benchmarks.bulk_import import resources

    count = size["bulk"]
    lines = list(resources(count))
    ndjson = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in lines)
    warm = {"resourceType": "Organization", "name": "warm-up"}

    def warm_up(base: str, headers: dict[str, str]) -> None:
        """Models, catalog and pool made before the clock starts, on either path."""
        entry = {"resource": warm, "request": {"method": "POST", "url": "Organization"}}
        body = {"resourceType": "Bundle", "type": "batch", "entry": [entry]}
        httpx.post(f"{base}/fhir", json=body, headers=headers, timeout=120).raise_for_status()

    with hospital_site() as site, serve(site.url, 1) as served:
        warm_up(served.base, site.headers)
        started = time.perf_counter()
        with httpx.Client(timeout=600) as http:
            for first in range(0, count, 1000):
                entries = [
                    {
                        "resource": r,
                        "request": (
                            {"method": "PUT", "url": f"Patient/{r['id']}"}
                            if "id" in r
                            else {"method": "POST", "url": r["resourceType"]}
                        ),
                    }
                    for r in lines[first : first + 1000]
                ]
                body = {"resourceType": "Bundle", "type": "batch", "entry": entries}
                answer = http.post(f"{served.base}/fhir", json=body, headers=site.headers)
                answer.raise_for_status()
                statuses = [e["response"]["status"] for e in answer.json()["entry"]]
                if any(not status.startswith("2") for status in statuses):
                    raise RuntimeError(f"batch entries refused: {statuses[:3]}")
        synchronous = count / (time.perf_counter() - started)
    with hospital_site() as site, serve(site.url, 1) as served:
        warm_up(served.base, site.headers)
        idle = served.peak_rss_mib()
        headers = {**site.headers, "Content-Type": "application/fhir+ndjson"}
        started = time.perf_counter()
        with httpx.Client(timeout=600) as http:
            answer = http.post(f"{served.base}/fhir/$import", content=ndjson, headers=headers)
            answer.raise_for_status()
            job = answer.headers["Content-Location"]
            while (status := http.get(job, headers=site.headers)).status_code == 202:
                time.sleep(0.2)
        seconds = time.perf_counter() - started
        summary = status.json()
        peak = served.peak_rss_mib()
    return [
        Figure(
            "bulk $import, server's job thread",
            count / seconds,
            "resources/s",
            synchronous,
            "synchronous batch Bundles of the same resources",
            detail={k: summary.get(k) for k in ("accepted", "rejected", "failed")},
        ),
        Figure(
            "bulk $import: server peak RSS",
            peak,
            "MiB",
            idle,
            "the same process before the upload",
        ),
    ]


def cda_ingest(site: Site, served: Served, size: dict[str, int]) -> list[Figure]:
    documents = cda_documents(size["cda"])
    headers = {"Authorization": f"Bearer {site.token}", "Content-Type": "application/hl7-cda+xml"}
    warm = [d.replace(b'extension="b', b'extension="w', 1) for d in documents[:4]]
    post_all(served.base, headers, warm, "/cda", clients=2)
    web_before, db_before = served.cpu_seconds(site.url)
    seconds, failures = post_all(served.base, headers, documents, "/cda", clients=4)
    web_after, db_after = served.cpu_seconds(site.url)
    rate = len(documents) / seconds
    floor = cda_floor_rate(documents)
    n = cores()
    return [
        Figure(
            "CDA ingest over HTTP",
            rate,
            "documents/s",
            floor * n,
            f"lxml parse + XSD x {n} cores",
            goal="ratio >= 0.5",
            detail={
                "documents": len(documents),
                "failures": len(failures),
                "web_cpu_ms_per_document": (web_after - web_before) * 1000 / len(documents),
                "database_cpu_ms_per_document": (db_after - db_before) * 1000 / len(documents),
            },
        )
    ]


def validate_files(size: dict[str, int]) -> list[Figure]:
    from benchmarks.validate_files import bare, validated

    per_set = size["validate_files"]
    paths = sorted((SHARED / "ccda-examples").glob("*.xml"))[:per_set]
    paths += sorted((SHARED / "fhir-r4-examples").glob("*.json"))[: per_set * 2]
    if not paths:
        paths = sorted(CDA_FIXTURES.glob("*.xml")) + sorted(FHIR_FIXTURES.glob("*.json"))
    baseline = len(paths) / bare(paths)
    validated(paths, 1)  # the first pass loads the validators' data
    one = len(paths) / validated(paths, 1)
    many = len(paths) / validated(paths, cores())
    return [
        Figure(
            "hie validate, one process",
            one,
            "files/s",
            baseline,
            "bare parse (lxml / json) of the same files",
            detail={"files": len(paths)},
        ),
        Figure(
            f"hie validate --jobs {cores()}",
            many,
            "files/s",
            baseline,
            "bare parse (lxml / json) of the same files",
            detail={"files": len(paths)},
        ),
    ]


def monthly_figures(size: dict[str, int]) -> list[Figure]:
    from benchmarks.report_month import MONTH, fill, measure
    from benchmarks.scratch import scratch_database, settings_for
    from hie.storage import open_database

    figures = []
    institutions = size["institutions"]
    for total, label in ((1_000_000, "1 M"), (100_000_000, "100 M")):
        with scratch_database() as url:
            database = open_database(settings_for(url))
            try:
                fill(database, institutions, total)
                timings = measure(database, 3)
                started = time.perf_counter()
                for _ in range(3):
                    with database.connection() as conn:
                        conn.execute(
                            "select * from monthly_table_count where month = %s", (MONTH,)
                        ).fetchall()
                        conn.execute(
                            "select * from monthly_unit_count where month = %s", (MONTH,)
                        ).fetchall()
                read = (time.perf_counter() - started) / 3
            finally:
                database.close()
        figures.append(
            Figure(
                f"monthly figures, {institutions} institutions, {label} records",
                statistics.median(timings),
                "s",
                read,
                "reading the month's aggregate rows alone",
                detail={"records_behind_aggregates": total, "runs": timings},
            )
        )
    return figures


def dashboard(size: dict[str, int]) -> list[Figure]:
    import tempfile

    from fastapi.testclient import TestClient

    from benchmarks.dashboard_pages import MONTH, fill, sign_in
    from benchmarks.scratch import scratch_database, settings_for
    from hie.app import create_app
    from hie.storage import open_database

    institutions, repeat = size["institutions"], size["dashboard_repeat"]
    with scratch_database() as url, tempfile.TemporaryDirectory() as data_dir:
        settings = settings_for(url, Path(data_dir))
        database = open_database(settings)
        try:
            fixture = fill(database, institutions)
        finally:
            database.close()
        month = f"month={MONTH:%Y-%m}"
        pages = [
            f"/dashboard?{month}",
            f"/dashboard?{month}&sort=records&dir=desc",
            f"/dashboard/institutions/{fixture['hospital']}?{month}",
            f"/dashboard/institutions/{fixture['district']}?{month}",
            f"/dashboard/tables/C0002?{month}",
        ]
        timings: list[float] = []
        trivial: list[float] = []
        with TestClient(create_app(settings), follow_redirects=False) as client:
            sign_in(client, fixture["token"])
            for path in pages:
                for n in range(repeat + 2):
                    started = time.perf_counter()
                    answer = client.get(path)
                    elapsed = time.perf_counter() - started
                    if answer.status_code != 200:
                        raise RuntimeError(f"{path}: {answer.status_code}")
                    if n >= 2:  # the first two warm templates and plans
                        timings.append(elapsed * 1000)
            for _ in range(repeat * 3):
                started = time.perf_counter()
                client.get("/healthz")
                trivial.append((time.perf_counter() - started) * 1000)
    floor = statistics.median(trivial)
    return [
        Figure(
            f"dashboard p50, {institutions} institutions",
            statistics.median(timings),
            "ms",
            floor,
            "a trivial request (/healthz) through the same app",
        ),
        Figure(
            f"dashboard p99, {institutions} institutions",
            _percentile(timings, 99),
            "ms",
            floor,
            "a trivial request (/healthz) through the same app",
            goal="< 300 ms",
        ),
    ]


def _percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(percent / 100 * (len(ordered) - 1)))]


def concurrent_clients(site: Site, served: Served, size: dict[str, int]) -> list[Figure]:
    """Each client creates a Patient, reads it back and searches it by identifier, again and
    again for a fixed time; one client alone first, then ``clients`` together."""

    def run(clients: int, seconds: float) -> tuple[int, list[float], int]:
        latencies: list[float] = []
        errors = 0
        lock = threading.Lock()
        stop = time.monotonic() + seconds

        def client(number: int) -> None:
            nonlocal errors
            mine: list[float] = []
            failed = 0
            with httpx.Client(base_url=served.base, headers=site.headers, timeout=60) as http:
                n = 0
                while n == 0 or time.monotonic() < stop:  # at least once, however slow
                    n += 1
                    value = f"c{number}-{n}-{uuid.uuid4().hex[:6]}"
                    patient = {
                        "resourceType": "Patient",
                        "identifier": [{"system": "urn:bench:mrn", "value": value}],
                        "name": [{"family": "王", "given": ["伟"]}],
                        "gender": "male",
                        "birthDate": "1980-01-01",
                    }
                    try:
                        started = time.perf_counter()
                        created = http.post("/fhir/Patient", json=patient)
                        mine.append(time.perf_counter() - started)
                        location = created.headers.get("location", "")
                        pid = location.split("/Patient/")[-1].split("/")[0]
                        started = time.perf_counter()
                        read = http.get(f"/fhir/Patient/{pid}")
                        mine.append(time.perf_counter() - started)
                        started = time.perf_counter()
                        found = http.get(
                            "/fhir/Patient", params={"identifier": f"urn:bench:mrn|{value}"}
                        )
                        mine.append(time.perf_counter() - started)
                        failed += sum(a.status_code >= 400 for a in (created, read, found)) + (
                            created.status_code != 201
                        )
                    except httpx.HTTPError:
                        failed += 1
            with lock:
                latencies.extend(mine)
                errors += failed

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        return len(latencies), latencies, errors

    seconds = size["client_seconds"]
    alone_n, alone, _ = run(1, seconds)
    together_n, together, errors = run(size["clients"], seconds)
    if not alone or not together:
        raise RuntimeError(f"no request answered ({errors} errors)")
    floor = alone_n / seconds
    return [
        Figure(
            f"{size['clients']} concurrent clients: throughput",
            together_n / seconds,
            "requests/s",
            floor,
            "the same requests from one client",
            detail={"errors": errors, "requests": together_n},
        ),
        Figure(
            f"{size['clients']} concurrent clients: p99 latency",
            _percentile(together, 99) * 1000,
            "ms",
            _percentile(alone, 99) * 1000,
            "p99 of one client alone",
            detail={"p50_ms": statistics.median(together) * 1000 if together else None},
        ),
        Figure(
            f"{size['clients']} concurrent clients: errors",
            float(errors),
            "requests",
            detail={"requests": together_n},
        ),
    ]


# -- the run ----------------------------------------------------------------------------------


@contextmanager
def http_site() -> Iterator[tuple[Site, Served]]:
    """A hospital (the CDA fixtures' custodian) served by one worker per core."""
    with (
        hospital_site(CDA_INSTITUTION, "南京鼓楼医院") as site,
        serve(site.url, cores()) as served,
    ):
        yield site, served


GROUPS: dict[str, Callable[[dict[str, int]], list[Figure]]] = {
    "conditional": conditional_batch,
    "big_batch": big_batch,
    "bulk": bulk_import,
    "validate": validate_files,
    "monthly": monthly_figures,
    "dashboard": dashboard,
}
SERVED_GROUPS: dict[str, Callable[[Site, Served, dict[str, int]], list[Figure]]] = {
    "fhir": fhir_ingest,
    "cda": cda_ingest,
    "clients": concurrent_clients,
}


def _shown(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--json", type=Path, default=Path("benchmark-results.json"))
    parser.add_argument(
        "--only", nargs="*", choices=[*SERVED_GROUPS, *GROUPS], help="run only these groups"
    )
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    wanted = set(args.only or [*SERVED_GROUPS, *GROUPS])
    figures: list[Figure] = []
    failures: dict[str, str] = {}
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def measured(name: str, run: Callable[[], list[Figure]]) -> None:
        began = time.perf_counter()
        try:
            figures.extend(run())
        except Exception as exc:  # one figure failing must not lose the others
            failures[name] = f"{type(exc).__name__}: {exc}"
        timings[name] = time.perf_counter() - began
        print(f"  {name}: {timings[name]:.1f} s", file=sys.stderr)

    served_wanted = [g for g in SERVED_GROUPS if g in wanted]
    if served_wanted:
        with http_site() as (site, served):
            for name in served_wanted:
                measured(name, lambda g=SERVED_GROUPS[name]: g(site, served, size))  # type: ignore[misc]
    for name, group in GROUPS.items():
        if name in wanted:
            measured(name, lambda g=group: g(size))  # type: ignore[misc]

    print(
        f"\nhie benchmarks, size {args.size}, {cores()} cores, "
        f"{time.perf_counter() - started:.0f} s"
    )
    header = f"{'figure':<52} {'value':>18} {'floor':>18} {'ratio':>7}  floor is"
    print(header)
    print("-" * len(header))
    for f in figures:
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "-"
        print(
            f"{f.name:<52} {_shown(f.value, f.unit):>18} {_shown(f.floor, f.unit):>18} "
            f"{ratio:>7}  {f.floor_label}"
        )
    for name, why in failures.items():
        print(f"FAILED {name}: {why}")
    result = {
        "size": args.size,
        "cores": cores(),
        "python": platform.python_version(),
        "seconds": time.perf_counter() - started,
        "group_seconds": timings,
        "figures": [asdict(f) for f in figures],
        "failures": failures,
    }
    args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    print(f"written to {args.json}")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
