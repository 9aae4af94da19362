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

from benchmarks.scratch import scratch_database
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

FAMILIES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"]
CODES = ["8867-4", "8310-5", "9279-1", "8480-6", "29463-7"]
START = datetime(2026, 11, 1, tzinfo=UTC)
CHUNK = 100_000  # Observations per statement
# fhir_search_index's columns in IndexValue's order (its group is the column grp).
INDEX_COLUMNS = ["grp" if f == "group" else f for f in IndexValue._fields]
CHAINED = "/fhir/Observation?subject.name={name}"
REVINCLUDE = "/fhir/Patient?_revinclude=Observation:subject"  # the default page of 20
BASELINE = "Observation?subject=Patient/<id> (baseline)"


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


# Observation n, as _observation makes it, in SQL: its canonical JSON (the text content_hash
# hashes: sorted keys, no spaces), its normalized record and its search-index rows. The loader
# checks a sample of what these statements write against the server's own preparation.
_OBSERVATIONS = sql.SQL("""
    with c as (
      select n, %(first)s + n as record_id,
        %(start)s + make_interval(secs => n::double precision) as received,
        'o' || o as id, 'Patient/p' || (o %% %(patients)s) as subject,
        (%(codes)s::text[])[o %% 5 + 1] as code, 60 + o %% 50 as value,
        %(start)s + make_interval(mins => o::int) as moment
      from generate_series(%(low)s::bigint, %(high)s::bigint - 1) n,
        lateral (select n - %(patients)s as o) s
    ), t as (
      select *, '{"code":{"coding":[{"code":"' || code || '","system":"http://loinc.org"}]},'
        || '"effectiveDateTime":"'
        || to_char(moment at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        || '","id":"' || id || '","resourceType":"Observation","status":"final",'
        || '"subject":{"reference":"' || subject || '"},"valueQuantity":{"code":"/min",'
        || '"system":"http://unitsofmeasure.org","unit":"/min","value":' || value || '}}'
        as canon
      from c
    )
""")
_LOAD_OBSERVATIONS = [
    sql.SQL(s).format(source=_OBSERVATIONS)
    for s in (
        """{source}
        insert into record_version (id, received_at, institution_code, table_code, logical_id,
          version, upload_id, content_sha256, resource, normalized)
        select record_id, received, 'H1', 'FHIR.Observation', 'Observation/' || id, 1,
          %(upload)s, sha256(convert_to(canon, 'UTF8')), canon::jsonb,
          jsonb_build_object('kind', 'fhir', 'table_code', 'FHIR.Observation',
            'logical_id', 'Observation/' || id,
            'effective_time',
            to_char(moment at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
            'subject_reference', subject)
        from t
        """,
        """{source}
        insert into record_head (institution_code, logical_id, table_code, version,
          content_sha256, received_at, record_id)
        select 'H1', 'Observation/' || id, 'FHIR.Observation', 1,
          sha256(convert_to(canon, 'UTF8')), received, record_id
        from t
        """,
        """{source}
        insert into fhir_resource (institution_code, resource_type, resource_id, version,
          last_updated, record_id)
        select 'H1', 'Observation', id, 1, received, record_id from c
        """,
        """{source}
        insert into fhir_search_index (institution_code, resource_type, resource_id, param,
          system, value, low, high, number, text, grp)
        select 'H1', 'Observation', id, v.* from c, lateral (values
          ('code', 'http://loinc.org', code, null::timestamptz, null::timestamptz,
            null::numeric, null, null::int),
          ('combo-code', 'http://loinc.org', code, null, null, null, null, null),
          ('combo-value-quantity', 'http://unitsofmeasure.org', '/min', null, null, value,
            '/min', null),
          ('date', null, null, moment, moment + interval '1 second', null, null, null),
          ('patient', null, subject, null, null, null, null, null),
          ('status', null, 'final', null, null, null, null, null),
          ('subject', null, subject, null, null, null, null, null),
          ('value-quantity', 'http://unitsofmeasure.org', '/min', null, null, value, '/min',
            null),
          ('combo-code-value-quantity$0', 'http://loinc.org', code, null, null, null, null, 1),
          ('combo-code-value-quantity$1', 'http://unitsofmeasure.org', '/min', null, null,
            value, '/min', 1)
        ) v
        """,
    )
]
# The secondary indexes of the loaded tables: dropped for the load and built again after it
# (one sort per index instead of millions of insertions; the same definitions).
_LOADED_TABLES = ("record_version", "record_head", "fhir_resource", "fhir_search_index")


def _drop_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        """
        select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        from pg_index i join pg_class t on t.oid = i.indrelid
        where t.relname = any(%s) and not i.indisprimary
        """,
        (list(_LOADED_TABLES),),
    ).fetchall()
    for name, _ in rows:
        conn.execute(sql.SQL("drop index {}").format(sql.Identifier(name)))
    return [definition for _, definition in rows]


def _load(url: str, settings: Settings, size: int, patients: int) -> None:
    """Patients through the server's write preparation, Observations by set-based SQL, into the
    tables the FHIR server writes; a sample then checked against the server's preparation."""
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
    with psycopg.connect(url) as conn:
        conn.execute("set synchronous_commit = off")
        conn.execute("set maintenance_work_mem = '256MB'")
        indexes = _drop_indexes(conn)
        seq = conn.execute("select nextval('record_version_id_seq')").fetchone()
        first_id = int(seq[0]) if seq else 1
        conn.commit()
        with (
            conn.cursor().copy(
                "copy record_version (id, received_at, institution_code, table_code,"
                " logical_id, version, upload_id, content_sha256, resource, normalized)"
                " from stdin"
            ) as versions,
        ):
            for n in range(patients):
                ready = prepare(_patient(n), tables["Patient"], zone)
                versions.write_row(
                    (
                        first_id + n,
                        START + timedelta(seconds=n),
                        "H1",
                        tables["Patient"].code,
                        f"Patient/p{n}",
                        1,
                        upload,
                        ready.sha256,
                        json.dumps(ready.resource, ensure_ascii=False),
                        json.dumps(ready.record.to_json(), ensure_ascii=False),
                    )
                )
        with conn.cursor().copy(
            "copy fhir_search_index (institution_code, resource_type, resource_id,"
            f" {', '.join(INDEX_COLUMNS)}) from stdin"
        ) as index:
            for n in range(patients):
                for v in prepare(_patient(n), tables["Patient"], zone).index:
                    index.write_row(("H1", "Patient", f"p{n}", *v))
        conn.execute(
            """
            insert into record_head (institution_code, logical_id, table_code, version,
              content_sha256, received_at, record_id)
            select institution_code, logical_id, table_code, 1, content_sha256, received_at, id
            from record_version where upload_id = %s
            """,
            (upload,),
        )
        conn.execute(
            """
            insert into fhir_resource (institution_code, resource_type, resource_id, version,
              last_updated, record_id)
            select institution_code, 'Patient', split_part(logical_id, '/', 2), 1, received_at, id
            from record_version where upload_id = %s
            """,
            (upload,),
        )
        conn.commit()
        print(f"  {patients} Patients copied ({time.perf_counter() - began:.0f} s)")
        total = patients + size
        for low in range(patients, total, CHUNK):
            values = {
                "first": first_id,
                "start": START,
                "patients": patients,
                "codes": CODES,
                "low": low,
                "high": min(low + CHUNK, total),
                "upload": upload,
            }
            for statement in _LOAD_OBSERVATIONS:
                conn.execute(statement, values)
            conn.commit()
            print(f"  {values['high']} resources in ({time.perf_counter() - began:.0f} s)")
        conn.execute("select setval('record_version_id_seq', %s)", (first_id + total,))
        for definition in indexes:
            conn.execute(definition)
        conn.commit()
        print(f"  indexes built ({time.perf_counter() - began:.0f} s)")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze")
    print(
        f"{patients} Patients and {size} Observations loaded and analysed in "
        f"{time.perf_counter() - began:.0f} s"
    )
    _check_sample(url, tables["Observation"], zone, size, patients)


def _comparable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.astimezone(UTC) if isinstance(v, datetime) else v for v in row)


def _check_sample(url: str, table: Any, zone: Any, size: int, patients: int) -> None:
    """The rows the SQL wrote for a sample of Observations equal what the server's own write
    preparation (``hie.fhir.session.prepare``) makes of the same resources."""
    sample = sorted({0, size - 1, *random.Random(5).sample(range(size), min(size, 200))})  # noqa: S311
    with psycopg.connect(url, row_factory=dict_row) as conn:
        for o in sample:
            ready = prepare(_observation(o, patients), table, zone)
            row = conn.execute(
                "select resource, normalized, content_sha256 from record_version"
                " where institution_code = 'H1' and logical_id = %s",
                (f"Observation/o{o}",),
            ).fetchone()
            index = conn.execute(
                sql.SQL(
                    "select {} from fhir_search_index where institution_code = 'H1'"
                    " and resource_type = 'Observation' and resource_id = %s"
                ).format(sql.SQL(", ").join(map(sql.Identifier, INDEX_COLUMNS))),
                (f"o{o}",),
            ).fetchall()
            written = sorted((_comparable(tuple(r.values())) for r in index), key=repr)
            expected = sorted((_comparable(tuple(v)) for v in ready.index), key=repr)
            if (
                row is None
                or row["resource"] != ready.resource
                or row["normalized"] != ready.record.to_json()
                or bytes(row["content_sha256"]) != ready.sha256
                or written != expected
            ):
                raise SystemExit(f"Observation/o{o}: the SQL load differs from the write path")
    print(f"{len(sample)} sampled Observations equal the write path's rows")


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

    rng = random.Random(11)  # noqa: S311 (test data, not secrets)
    results: dict[str, tuple[float, float, int]] = {}
    with (
        scratch_database("hie_bench_search", keep=args.keep, reuse=args.reuse) as url,
        tempfile.TemporaryDirectory() as data,
    ):
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
                "read Observation/<id>": lambda: [
                    f"/fhir/Observation/o{rng.randrange(args.size)}" for _ in range(n)
                ],
                "Observation?_id=<id>": lambda: [
                    f"/fhir/Observation?_id=o{rng.randrange(args.size)}" for _ in range(n)
                ],
                BASELINE: lambda: [
                    f"/fhir/Observation?subject=Patient/p{patient()}" for _ in range(n)
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
                    f"/fhir/Observation?patient=Patient/p{patient()}&_sort=-date" for _ in range(n)
                ],
                "Observation?code=<code> (1/5 of all)": lambda: [
                    f"/fhir/Observation?code=http://loinc.org|{rng.choice(CODES)}" for _ in range(n)
                ],
                "  ... next pages 1-50 (cursor)": lambda: _next_links(
                    client, headers, f"/fhir/Observation?code=http://loinc.org|{CODES[0]}", n
                )[:50],
                "Observation?subject.name=<given> (chained, 1 patient)": lambda: [
                    CHAINED.format(name=f"P{patient():06d}x") for _ in range(n)
                ],
                "Observation?subject.name=<family> (chained, 1/10)": lambda: [
                    CHAINED.format(name=rng.choice(FAMILIES)) for _ in range(n)
                ],
                "Patient?_revinclude=Observation:subject (20 + 1,000)": lambda: [
                    REVINCLUDE for _ in range(min(n, 50))
                ],
                "  ... next pages (cursor)": lambda: _next_links(
                    client, headers, REVINCLUDE, min(n, 50)
                ),
                "Patient?_revinclude=Observation:patient&_count=10": lambda: [
                    "/fhir/Patient?_revinclude=Observation:patient&_count=10"
                    for _ in range(min(n, 50))
                ],
                "Observation?code=<code>&_include=Observation:subject": lambda: [
                    f"/fhir/Observation?code=http://loinc.org|{rng.choice(CODES)}"
                    "&_include=Observation:subject"
                    for _ in range(n)
                ],
            }
            _timed(client, headers, kinds["Observation?patient=Patient/<id>"]()[:20])  # warm
            # Round robin, one request of each kind in turn: on a shared machine the load of the
            # moment then weighs on every kind alike, and the ratios to the baseline hold.
            planned = {title: make() for title, make in kinds.items()}
            times: dict[str, list[float]] = {title: [] for title in planned}
            for i in range(max(len(urls) for urls in planned.values())):
                for title, urls in planned.items():
                    if i < len(urls):
                        times[title] += _timed(client, headers, [urls[i]])
            for title, taken in times.items():
                p50, p95 = _stats(taken)
                results[title] = (p50, p95, len(taken))
                print(f"{title:55} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  ({len(taken)})")
            if args.explain:
                deep = _next_links(
                    client, headers, f"/fhir/Observation?code=http://loinc.org|{CODES[0]}", 30
                )[-1]
                searches = {
                    "Observation?subject= (baseline)": "/fhir/Observation?subject=Patient/p123",
                    "Observation?code=, page 31 by cursor": deep,
                    "Observation?subject.name=<given> (chained)": CHAINED.format(name="P000123x"),
                    "Observation?subject.name=<family> (chained)": CHAINED.format(name=FAMILIES[3]),
                    "Patient?_revinclude=Observation:subject": REVINCLUDE,
                }
                _explain(url, settings, token_id, searches, args.explain)
    base = results[BASELINE][0]
    print(f"\nratio of each p50 to the baseline's ({base:.1f} ms):")
    for title, (p50, _, _) in results.items():
        print(f"{title:55} x{p50 / base:5.2f}  {'ok' if p50 < 100 else 'over 100 ms'}")


if __name__ == "__main__":
    main()
