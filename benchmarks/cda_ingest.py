"""CDA ingest throughput: documents per second through validation alone and through the whole
store path (validate, normalize, store with aggregates and receipt), each against a bare lxml parse
of the same documents measured in the same run.

    .venv/bin/python -m benchmarks.cda_ingest [--documents 2000]

Uses the project's own valid fixtures, each copied with fresh document ids. The store path runs on a
scratch database (benchmarks/scratch.py, HIE_TEST_POSTGRES_URL), dropped afterwards.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lxml import etree  # type: ignore[import-untyped]

from benchmarks.scratch import scratch_database, settings_for
from hie.catalog import default_catalog_path, read_catalog
from hie.cda.submission import CdaPipeline, submit_cda
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.validators.cda import CdaSchema, validate_cda
from hie.validators.xml import hardened_parser

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cda"


def documents(count: int) -> list[bytes]:
    """``count`` hospital documents (the WS/T 500 fixtures), each with a document id of its own."""
    sources = sorted(p.read_bytes() for p in FIXTURES.glob("C00*-valid.xml"))
    made = []
    for n in range(count):
        source = sources[n % len(sources)]
        made.append(
            source.replace(b'extension="455755678-C', f'extension="b{n}-455755678-C'.encode(), 1)
        )
    return made


def rate(label: str, count: int, seconds: float, baseline: float | None) -> float:
    per_second = count / seconds
    ratio = f"  ({per_second / baseline:.2f}x the bare parse)" if baseline else ""
    print(f"{label:<38} {per_second:>9,.0f} documents/s{ratio}")
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    docs = documents(args.documents)
    catalog = read_catalog(default_catalog_path())
    schema = CdaSchema()
    xml_parser = hardened_parser()

    started = time.perf_counter()
    for doc in docs:
        etree.fromstring(doc, xml_parser)
    bare = rate("bare lxml parse (baseline)", len(docs), time.perf_counter() - started, None)

    started = time.perf_counter()
    for doc in docs:
        if validate_cda(doc, catalog=catalog, kind="hospital", schema=schema).report.rejected:
            raise RuntimeError("a benchmark document is invalid")
    rate("validation (all five layers)", len(docs), time.perf_counter() - started, bare)

    with scratch_database() as url:
        settings = settings_for(url)
        database = open_database(settings)
        with database.transaction() as tx:
            add_institution(
                tx.conn, Institution("455755678", "南京鼓楼医院", "hospital"), actor="b"
            )
        pipeline = CdaPipeline(settings, database, schema=schema)
        started = time.perf_counter()
        for doc in docs:
            receipt = submit_cda(pipeline, doc, principal=None, institution="455755678")
            if receipt.status != 201:
                raise RuntimeError(f"not stored: {receipt.body}")
        rate("whole store path (one at a time)", len(docs), time.perf_counter() - started, bare)

        # Hospitals upload in parallel: the same path from several threads (own connections).
        more = [d.replace(b'extension="b', b'extension="p', 1) for d in docs]

        def one(doc: bytes) -> int:
            return submit_cda(pipeline, doc, principal=None, institution="455755678").status

        started = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            statuses = list(pool.map(one, more))
        if set(statuses) != {201}:
            raise RuntimeError(f"not all stored: {set(statuses)}")
        label = f"whole store path ({args.threads} in parallel)"
        rate(label, len(more), time.perf_counter() - started, bare)
        database.close()


if __name__ == "__main__":
    main()
