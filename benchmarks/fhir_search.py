"""FHIR search over a million Observations: p50/p95 of the searches an integration engineer runs
most, against a plain read measured in the same run (goal of the search issue: < 100 ms p50).

Loading does not go through HTTP: Patients and Observations are made in Python, turned into the
rows the storage layer writes (``hie.fhir.session.prepare``: stored form, content hash,
normalized record, search-index values) and copied straight into ``record_version``,
``record_head``, ``fhir_resource`` and ``fhir_search_index`` with COPY. Then the app answers
in-process (TestClient, no network; audit entries written as in production):

- baseline: ``GET Observation/<id>`` (a read) and ``Observation?_id=<id>``;
- ``Observation?patient=Patient/<id>`` (about size/patients matches), its second page through the
  ``next`` link (a keyset cursor), and the same sorted by ``-date``;
- ``Observation?code=<code>`` (a fifth of all) first page and ``next`` pages deep into it;
- ``Patient?_revinclude=Observation:patient&_count=10`` first page and ``next`` pages;
- ``Observation?subject.name=<name>`` (chained) when the server answers it without a warning,
  else it is reported as not measured (the hook: :data:`CHAINED`).

The issue's goal is measured with ``--size 1000000 --patients 10000`` (about ten minutes of
loading on two cores; ``--keep`` keeps the loaded database, ``--reuse NAME`` measures it again,
given the same ``--size`` and ``--patients``). With ``--explain FILE`` the plans
(``EXPLAIN (ANALYZE, BUFFERS)``) of every statement of one search of each kind are written to
FILE as Markdown (the source of docs/performance.md). Run:

    .venv/bin/python benchmarks/fhir_search.py [--size 200000] [--patients 2000]
        [--requests 200] [--explain plans.md]

It makes a scratch database on HIE_TEST_POSTGRES_URL (default: the local server) and drops it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg.rows import dict_row

from hie.app import create_app
from hie.catalog import default_catalog_path, read_catalog
from hie.config import Settings
from hie.fhir import reads
from hie.fhir.access import Scope
from hie.fhir.calls import Call
from hie.fhir.paging import Cursors
from hie.fhir.responses import Preferences
from hie.fhir.session import prepare
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.fhir import IndexValue
from hie.storage.institutions import add_institution
from hie.storage.partitions import PartitionMaker
from hie.storage.tokens import create_token

ADMIN_URL = os.environ.get("HIE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
FAMILIES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"]
CODES = ["8867-4", "8310-5", "9279-1", "8480-6", "29463-7"]
START = datetime(2026, 11, 1, tzinfo=UTC)
CHUNK = 50_000  # resources per COPY
# fhir_search_index's columns in IndexValue's order (its group is the column grp).
INDEX_COLUMNS = ["grp" if f == "group" else f for f in IndexValue._fields]
# The chained search (hie/fhir/search.py once chains are supported): one patient by a given name.
CHAINED = "/fhir/Observation?subject.name={name}"


def _patient(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.2", "value": f"MRN{n:07d}"}],
        "name": [{"family": FAMILIES[n % len(FAMILIES)], "given": [f"P{n:06d}x"]}],
        "gender": "female" if n % 2 else "male",
        "birthDate": f"{1940 + n % 80}-0{1 + n % 9}-1{n % 10}",
    }


def _observation(n: int, patients: int) -> dict[str, Any]:
    moment = START + timedelta(minutes=n)
    return {
        "resourceType": "Observation",
        "id": f"o{n}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": CODES[n % len(CODES)]}]},
        "subject": {"reference": f"Patient/p{n % patients}"},
        "effectiveDateTime": moment.isoformat().replace("+00:00", "Z"),
        "valueQuantity": {
            "value": 60 + n % 50,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def _load(url: str, settings: Settings, size: int, patients: int) -> None:
    """Patients, then Observations, copied into the tables the FHIR server writes."""
    catalog = read_catalog(default_catalog_path())
    tables = {t.fhir_resource_type: t for t in catalog if t.fhir_resource_type}
    zone = settings.zone
    database = open_database(settings)
    maker = PartitionMaker(database, zone)
    last = START + timedelta(seconds=patients + size)
    moment = START
    while moment <= last:
        maker.ensure_for(moment)
        moment += timedelta(days=27)
    maker.ensure_for(last)
    database.close()
    upload = uuid.uuid4()
    began = time.perf_counter()
    # One connection per table, so the four COPYs run side by side (one connection can hold
    # only one COPY), in chunks (a COPY is a statement: others' DDL waits for it to end).
    conns = [psycopg.connect(url) for _ in range(4)]
    try:
        for conn in conns:
            conn.execute("set synchronous_commit = off")
        seq = conns[0].execute("select nextval('record_version_id_seq')").fetchone()
        first_id = int(seq[0]) if seq else 1
        total = patients + size
        for start in range(0, total, CHUNK):
            with (
                conns[0]
                .cursor()
                .copy(
                    "copy record_version (id, received_at, institution_code, table_code,"
                    " logical_id, version, upload_id, content_sha256, resource, normalized)"
                    " from stdin"
                ) as versions,
                conns[1]
                .cursor()
                .copy(
                    "copy fhir_search_index (institution_code, resource_type, resource_id,"
                    f" {', '.join(INDEX_COLUMNS)}) from stdin"
                ) as index,
                conns[2]
                .cursor()
                .copy(
                    "copy record_head (institution_code, logical_id, table_code, version,"
                    " content_sha256, received_at, record_id) from stdin"
                ) as heads,
                conns[3]
                .cursor()
                .copy(
                    "copy fhir_resource (institution_code, resource_type, resource_id, version,"
                    " last_updated, record_id) from stdin"
                ) as live,
            ):
                for n in range(start, min(start + CHUNK, total)):
                    resource = _patient(n) if n < patients else _observation(n - patients, patients)
                    kind = resource["resourceType"]
                    table = tables[kind]
                    ready = prepare(resource, table, zone)
                    received = START + timedelta(seconds=n)
                    record_id = first_id + n
                    logical = f"{kind}/{resource['id']}"
                    versions.write_row(
                        (
                            record_id,
                            received,
                            "H1",
                            table.code,
                            logical,
                            1,
                            upload,
                            ready.sha256,
                            json.dumps(ready.resource, ensure_ascii=False),
                            json.dumps(ready.record.to_json(), ensure_ascii=False),
                        )
                    )
                    for v in ready.index:
                        index.write_row(("H1", kind, resource["id"], *v))
                    heads.write_row(
                        ("H1", logical, table.code, 1, ready.sha256, received, record_id)
                    )
                    live.write_row(("H1", kind, resource["id"], 1, received, record_id))
            for conn in conns:
                conn.commit()
            done = min(start + CHUNK, total)
            print(f"  {done} resources copied ({time.perf_counter() - began:.0f} s)")
        conns[0].execute("select setval('record_version_id_seq', %s)", (first_id + total,))
        conns[0].commit()
    finally:
        for conn in conns:
            conn.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze")
    print(
        f"{patients} Patients and {size} Observations copied and analysed in "
        f"{time.perf_counter() - began:.0f} s"
    )


def _timed(client: TestClient, headers: dict[str, str], urls: list[str]) -> list[float]:
    times = []
    for url in urls:
        began = time.perf_counter()
        answer = client.get(url, headers=headers)
        times.append(time.perf_counter() - began)
        if answer.status_code != 200:
            raise SystemExit(f"{url}: {answer.status_code} {answer.text[:500]}")
    return times


def _next_links(client: TestClient, headers: dict[str, str], url: str, pages: int) -> list[str]:
    """The ``next`` links of the first ``pages`` pages of ``url`` (relative to the server)."""
    found = []
    for _ in range(pages):
        bundle = client.get(url, headers=headers).json()
        following = {link["relation"]: link["url"] for link in bundle.get("link", [])}.get("next")
        if following is None:
            break
        parts = urlsplit(following)
        url = f"{parts.path}?{parts.query}"
        found.append(url)
    return found


def _answers_chained(client: TestClient, headers: dict[str, str]) -> bool:
    answer = client.get(CHAINED.format(name="P000001x"), headers=headers)
    if answer.status_code != 200:
        return False
    modes = [e["search"]["mode"] for e in answer.json().get("entry", [])]
    return "outcome" not in modes and "match" in modes


def _shortened(line: str) -> str:
    """A plan line with long array constants cut to their first elements (1,000 timestamps of
    a page's resources say nothing more than three)."""
    return re.sub(
        r"'\{([^}]{120,})\}'",
        lambda m: "'{" + ",".join(m[1].split(",")[:3]) + ",…}'",
        line,
    )


class _Explaining:
    """A connection that runs ``EXPLAIN (ANALYZE, BUFFERS)`` of each statement before it."""

    def __init__(self, conn: psycopg.Connection[Any], plans: list[tuple[str, str]]) -> None:
        self._conn = conn
        self._plans = plans

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        statement = query if isinstance(query, sql.Composable) else sql.SQL(query)
        text = statement.as_string(self._conn)
        rows = self._conn.execute(sql.SQL("explain (analyze, buffers) ") + statement, params)
        plan = "\n".join(_shortened(str(next(iter(r.values())))) for r in rows.fetchall())
        self._plans.append((" ".join(text.split()), plan))
        return self._conn.execute(query, params, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _ExplainingDatabase:
    def __init__(self, url: str, plans: list[tuple[str, str]]) -> None:
        self._url = url
        self._plans = plans

    @contextmanager
    def connection(self) -> Iterator[_Explaining]:
        with psycopg.connect(self._url, autocommit=True, row_factory=dict_row) as conn:
            yield _Explaining(conn, self._plans)


def _explain(
    url: str, settings: Settings, token_id: int, searches: dict[str, str], out: Path
) -> None:
    """The plans of one search of each kind, run through the server's own read path."""
    lines = ["<!-- written by benchmarks/fhir_search.py --explain -->", ""]
    cursors = Cursors(settings.session_secret())
    call = Call(Scope("H1", token_id), Preferences(), "http://localhost/fhir")
    for title, relative in searches.items():
        plans: list[tuple[str, str]] = []
        path, _, query = relative.partition("?")
        resource_type = path.rsplit("/", 1)[-1]
        pairs = parse_qsl(query, keep_blank_values=True)
        database: Any = _ExplainingDatabase(url, plans)
        answer = reads.search_type(
            database, settings.zone, cursors, call, resource_type, pairs, relative
        )
        lines += [f"### {title}", "", f"`GET {_short(relative)}` → {answer.status}", ""]
        for text, plan in plans:
            lines += ["```sql", text, "```", "", "```", plan, "```", ""]
    out.write_text("\n".join(lines), "utf-8")
    print(f"plans written to {out}")


def _short(url: str) -> str:
    return url if "_cursor=" not in url else url.split("_cursor=")[0] + "_cursor=…"


def _stats(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=200_000, help="Observations")
    parser.add_argument("--patients", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=200, help="requests per kind")
    parser.add_argument("--explain", type=Path, help="write the plans (Markdown) here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch database (its name is printed)"
    )
    parser.add_argument(
        "--reuse", metavar="NAME", help="measure a database kept by --keep, without loading"
    )
    args = parser.parse_args()

    name = args.reuse or f"hie_bench_search_{uuid.uuid4().hex[:8]}"
    if not args.reuse:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(ADMIN_URL, dbname=name)
    rng = random.Random(11)  # noqa: S311 (test data, not secrets)
    results: dict[str, tuple[float, float, int]] = {}
    try:
        with tempfile.TemporaryDirectory() as data:
            settings = Settings(
                database_url=url, data_dir=Path(data), secret_key=secrets.token_urlsafe(48)
            )
            database = open_database(settings)
            with database.transaction() as tx:
                if not args.reuse:
                    add_institution(tx.conn, Institution("H1", "医院", "hospital"), actor="bench")
                token_id, token = create_token(
                    tx.conn, role="submitter", institution_code="H1", label="", actor="bench"
                )
            database.close()
            if not args.reuse:
                _load(url, settings, args.size, args.patients)
            headers = {"Authorization": f"Bearer {token}"}
            n = args.requests

            def patient() -> int:
                return rng.randrange(args.patients)

            with TestClient(create_app(settings)) as client:
                kinds: dict[str, Callable[[], list[str]]] = {
                    "read Observation/<id> (baseline)": lambda: [
                        f"/fhir/Observation/o{rng.randrange(args.size)}" for _ in range(n)
                    ],
                    "Observation?_id=<id>": lambda: [
                        f"/fhir/Observation?_id=o{rng.randrange(args.size)}" for _ in range(n)
                    ],
                    "Observation?patient=Patient/<id>": lambda: [
                        f"/fhir/Observation?patient=Patient/p{patient()}" for _ in range(n)
                    ],
                    "  ... its next page (cursor)": lambda: [
                        _next_links(
                            client, headers, f"/fhir/Observation?patient=Patient/p{patient()}", 1
                        )[0]
                        for _ in range(n)
                    ],
                    "Observation?patient=...&_sort=-date": lambda: [
                        f"/fhir/Observation?patient=Patient/p{patient()}&_sort=-date"
                        for _ in range(n)
                    ],
                    "Observation?code=<code> (1/5 of all)": lambda: [
                        f"/fhir/Observation?code=http://loinc.org|{rng.choice(CODES)}"
                        for _ in range(n)
                    ],
                    "  ... next pages 1-50 (cursor)": lambda: _next_links(
                        client, headers, f"/fhir/Observation?code=http://loinc.org|{CODES[0]}", n
                    )[:50],
                    "Patient?_revinclude=Observation:patient&_count=10": lambda: [
                        "/fhir/Patient?_revinclude=Observation:patient&_count=10"
                        for _ in range(min(n, 50))
                    ],
                    "  ... next pages (cursor)": lambda: _next_links(
                        client,
                        headers,
                        "/fhir/Patient?_revinclude=Observation:patient&_count=10",
                        min(n, 50),
                    ),
                }
                if _answers_chained(client, headers):
                    kinds["Observation?subject.name=<given> (chained)"] = lambda: [
                        CHAINED.format(name=f"P{patient():06d}x") for _ in range(n)
                    ]
                else:
                    print("chained search (subject.name=) not answered here: not measured")
                _timed(client, headers, kinds["Observation?patient=Patient/<id>"]()[:20])  # warm
                for title, make in kinds.items():
                    urls = make()
                    p50, p95 = _stats(_timed(client, headers, urls))
                    results[title] = (p50, p95, len(urls))
                    print(f"{title:55} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  ({len(urls)})")
                if args.explain:
                    deep = _next_links(
                        client, headers, f"/fhir/Observation?code=http://loinc.org|{CODES[0]}", 30
                    )[-1]
                    searches = {
                        "Observation?patient=": "/fhir/Observation?patient=Patient/p1234",
                        "Observation?code=, page 31 by cursor": deep,
                        "Patient?_revinclude=Observation:patient": (
                            "/fhir/Patient?_revinclude=Observation:patient&_count=10"
                        ),
                    }
                    if "Observation?subject.name=<given> (chained)" in results:
                        searches["Observation?subject.name= (chained)"] = CHAINED.format(
                            name="P001234x"
                        )
                    _explain(url, settings, token_id, searches, args.explain)
    finally:
        if args.keep or args.reuse:
            print(f"database kept: {name} (drop it when done)")
        else:
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
                )
    base = results["read Observation/<id> (baseline)"][0]
    print(f"\nratio of each p50 to the read's ({base:.1f} ms):")
    for title, (p50, _, _) in results.items():
        print(f"{title:55} x{p50 / base:5.2f}  {'ok' if p50 < 100 else 'over 100 ms'}")


if __name__ == "__main__":
    main()
