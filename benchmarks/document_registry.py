"""Documents: what the MHD registry entry costs the CDA store path.

    .venv/bin/python -m benchmarks.document_registry [--documents 2000]

The whole CDA store path (validate, normalize, store with aggregates, receipt, event, person
index and the DocumentReference), one document at a time, against the same path with the registry
hook switched off, in alternating rounds of the same run. Then ITI-67 searches of one resident
per second. Scratch database on HIE_TEST_POSTGRES_URL (dropped afterwards).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

import hie.ingest
from hie.auth import Principal
from hie.cda.submission import CdaPipeline, submit_cda
from hie.config import Settings
from hie.documents.search import find_documents
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.validators.cda import CdaSchema

ADMIN_URL = os.environ.get("HIE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cda"


def documents(count: int, tag: str) -> list[bytes]:
    sources = sorted(p.read_bytes() for p in FIXTURES.glob("C00*-valid.xml"))
    return [
        sources[n % len(sources)].replace(
            b'extension="455755678-C', f'extension="{tag}{n}-455755678-C'.encode(), 1
        )
        for n in range(count)
    ]


def store_all(pipeline: CdaPipeline, docs: list[bytes]) -> float:
    started = time.perf_counter()
    for doc in docs:
        receipt = submit_cda(pipeline, doc, principal=None, institution="455755678")
        if receipt.status != 201:
            raise RuntimeError(f"not stored: {receipt.body}")
    return len(docs) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    args = parser.parse_args()
    name = f"hie_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    settings = Settings(
        database_url=ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", data_dir=Path("/nonexistent")
    )
    database = open_database(settings)
    try:
        with database.transaction() as tx:
            add_institution(
                tx.conn, Institution("455755678", "南京鼓楼医院", "hospital"), actor="b"
            )
        pipeline = CdaPipeline(settings, database, schema=CdaSchema())
        store_all(pipeline, documents(200, "w"))  # warm up: partitions, caches, plans
        real = hie.ingest.register_cda

        def off(*args: object) -> None:
            return None

        # Alternating rounds, so that a change of load on the machine hits both alike.
        rates: dict[str, list[float]] = {"without": [], "with": []}
        for round_ in range(4):
            for label, hook in (("without", off), ("with", real)):
                hie.ingest.register_cda = hook  # type: ignore[assignment]
                rates[label].append(
                    store_all(pipeline, documents(args.documents // 4, f"{label}{round_}-"))
                )
        hie.ingest.register_cda = real
        without = statistics.median(rates["without"])
        with_registry = statistics.median(rates["with"])
        print(f"store path without the registry (baseline) {without:>9,.0f} documents/s")
        print(
            f"store path with the registry entry         {with_registry:>9,.0f} documents/s"
            f"  ({with_registry / without:.2f}x)"
        )
        admin = Principal(0, "admin", None)
        query = [
            ("patient.identifier", "urn:oid:2.16.156.10011.1.3|320113198906300623"),
            ("status", "current"),
        ]
        with database.connection() as conn:
            started = time.perf_counter()
            for _ in range(200):
                found = find_documents(
                    conn, admin, None, query, zone=settings.zone, base="http://h/fhir", self_url=""
                )
            per_second = 200 / (time.perf_counter() - started)
        total = found.answer.body["total"] if found.answer.body else 0
        print(f"ITI-67 by resident ID ({total} documents)    {per_second:>9,.0f} searches/s")
    finally:
        database.close()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
