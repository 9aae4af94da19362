"""What the person index costs the store step: Patients stored through ``ingest.store_record``
with the index hook and with it replaced by a no-op, in alternating rounds on one database.

A third of the Patients carry a resident ID, a third a health card, a third demographics only
(the probabilistic match, among some hundreds born in the same year). Run:

    .venv/bin/python benchmarks/person_index.py [--patients 2000] [--rounds 4]

It makes a scratch database on HIE_TEST_POSTGRES_URL (default: the local server) and drops it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import hie.ingest
from benchmarks.scratch import scratch_store
from hie.catalog import default_catalog_path, read_catalog
from hie.ingest import Arrival, store_record
from hie.normalize.fhir import normalize_resource
from hie.normalize.identity import check_character
from hie.registry import Institution
from hie.storage import Database
from hie.storage.partitions import PartitionMaker

AT = datetime(2019, 7, 10, 2, 0, tzinfo=UTC)
TABLE = read_catalog(default_catalog_path()).get("FHIR.Patient")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"


def patient(rng: random.Random, n: int, tag: str) -> dict[str, Any]:
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(365))
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": f"{tag}-{n}",
        "name": [{"text": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)}],
        "gender": rng.choice(["male", "female"]),
        "birthDate": born.isoformat(),
        "address": [{"text": f"南京市玄武区{rng.randrange(200)}号"}],
    }
    if n % 3 == 0:
        first17 = f"320102{born:%Y%m%d}{rng.randrange(1000):03d}"
        value, system = first17 + check_character(first17), "urn:oid:2.16.156.10011.1.3"
        resource["identifier"] = [{"system": system, "value": value}]
    elif n % 3 == 1:
        value = f"HC{rng.randrange(10**8):08d}"
        resource["identifier"] = [{"system": "urn:oid:2.16.156.10011.1.19", "value": value}]
    return resource


def store_all(database: Database, resources: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for resource in resources:
        record = normalize_resource(resource, TABLE)
        with database.transaction() as tx:
            store_record(
                tx.conn,
                Arrival("H1", AT, AT.date(), uuid.uuid4()),
                TABLE,
                record,
                content_sha256=hashlib.sha256(json.dumps(resource).encode()).digest(),
                resource=resource,
                immutable=False,
            )
    return (time.perf_counter() - started) / len(resources) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    hook = hie.ingest.index_stored
    timings: dict[str, list[float]] = {"with index": [], "without": []}
    with scratch_store(Institution("H1", "医院", "hospital")) as (settings, database):
        try:
            PartitionMaker(database, settings.zone).ensure_for(AT)
            rng = random.Random(17)  # noqa: S311 (test data)
            for round_ in range(args.rounds):
                for label in ("without", "with index") if round_ % 2 else ("with index", "without"):
                    hie.ingest.index_stored = hook if label == "with index" else _no_index  # type: ignore[assignment]
                    batch = [patient(rng, n, f"r{round_}{label[0]}") for n in range(args.patients)]
                    timings[label].append(store_all(database, batch))
        finally:
            hie.ingest.index_stored = hook  # type: ignore[assignment]
    with_index = statistics.median(timings["with index"])
    without = statistics.median(timings["without"])
    print(f"patients per round: {args.patients}, rounds: {args.rounds}")
    print(f"store step without the index: {without:8.0f} µs per Patient (median of rounds)")
    print(f"store step with the index:    {with_index:8.0f} µs per Patient")
    print(f"ratio: {with_index / without:.2f}")


def _no_index(*args: object, **kwargs: object) -> None:
    return None


if __name__ == "__main__":
    main()
