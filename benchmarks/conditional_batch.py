"""Conditional creates against plain creates: one batch Bundle of 2,382 POST entries, over HTTP.

The shape of Synthea's ``hospitalInformation``/``practitionerInformation`` files and of many EMR
exports: every Organization and Practitioner posted with ``request.ifNoneExist``
(``identifier=<system>|<value>``). The resources are the Organizations and Practitioners of the
Synthea bundles in ../shared/data/synthea-r4, copied with distinct identifiers up to the size.
Each run gets a fresh database and the app on a local uvicorn server:

1. the entries as plain creates (no ifNoneExist): the baseline;
2. the same entries with ifNoneExist on an empty database (every entry created, 201);
3. the conditional batch again on the database of run 2 (every entry matched, 200).

It prints seconds and resources per second of each, and the ratio conditional / plain.

    .venv/bin/python benchmarks/conditional_batch.py [--entries 2382]

Uses HIE_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres) to create
databases of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from hie.app import create_app
from hie.config import Settings
from hie.registry import Institution
from hie.server import BackgroundServer
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token

ROOT = Path(__file__).resolve().parents[1]
SYNTHEA = ROOT.parent / "shared" / "data" / "synthea-r4"
TYPES = ("Organization", "Practitioner", "Location", "PractitionerRole")


def _originals() -> list[dict[str, Any]]:
    """The distinct identified Organizations, Practitioners (and Locations) of the bundles."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in sorted(SYNTHEA.glob("*.json")):
        if path.name == "MANIFEST.json":
            continue
        for entry in json.loads(path.read_bytes()).get("entry") or []:
            resource = entry.get("resource") or {}
            identifiers = resource.get("identifier") or []
            if resource.get("resourceType") in TYPES and identifiers:
                first = identifiers[0]
                key = (resource["resourceType"], first.get("system", ""), first.get("value", ""))
                found.setdefault(key, resource)
    return list(found.values())


def entries(size: int, conditional: bool) -> list[dict[str, Any]]:
    """``size`` POST entries; copies after the first get a suffix on every identifier value."""
    originals = _originals()
    made: list[dict[str, Any]] = []
    copy_number = 0
    while len(made) < size:
        for original in originals:
            if len(made) == size:
                break
            resource = copy.deepcopy(original)
            resource.pop("id", None)
            for identifier in resource["identifier"]:
                if copy_number:
                    identifier["value"] = f"{identifier['value']}-{copy_number}"
            first = resource["identifier"][0]
            request = {"method": "POST", "url": resource["resourceType"]}
            if conditional:
                request["ifNoneExist"] = f"identifier={first['system']}|{first['value']}"
            made.append(
                {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource, "request": request}
            )
        copy_number += 1
    return made


@contextmanager
def served(admin_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh migrated database with one hospital, the app serving it; (FHIR base, headers)."""
    name = f"hie_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    try:
        settings = Settings(
            database_url=url, data_dir=Path("/nonexistent"), secret_key=secrets.token_urlsafe(48)
        )
        database = open_database(settings)
        with database.transaction() as tx:
            add_institution(tx.conn, Institution("BENCH", "基准医院", "hospital"), actor="bench")
            token = create_token(
                tx.conn, role="submitter", institution_code="BENCH", label="", actor="bench"
            )[1]
        database.close()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
        with BackgroundServer(create_app(settings)) as server:
            yield f"{server.url}/fhir", headers
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def post(
    base: str, headers: dict[str, str], batch: list[dict[str, Any]]
) -> tuple[float, Counter[str]]:
    body = json.dumps({"resourceType": "Bundle", "type": "batch", "entry": batch}).encode()
    started = time.perf_counter()
    response = httpx.post(base, content=body, headers=headers, timeout=3600)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    statuses = Counter(e["response"]["status"] for e in response.json()["entry"])
    return elapsed, statuses


def warm_up(base: str, headers: dict[str, str]) -> None:
    """One small batch first (partitions, catalog cache, pool connections), of an identifier
    that no measured entry has."""
    resource = {
        "resourceType": "Organization",
        "identifier": [{"system": "urn:bench", "value": str(uuid.uuid4())}],
        "name": "warm-up",
    }
    post(
        base,
        headers,
        [{"resource": resource, "request": {"method": "POST", "url": "Organization"}}],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=2382, help="POST entries in the batch")
    args = parser.parse_args()
    if not SYNTHEA.is_dir():
        sys.exit(f"no Synthea bundles at {SYNTHEA}")
    admin_url = os.environ.get(
        "HIE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    plain, conditional = entries(args.entries, False), entries(args.entries, True)
    print(f"{args.entries} entries from {len(_originals())} distinct Synthea resources")

    def line(label: str, seconds: float, statuses: Counter[str]) -> None:
        rate = args.entries / seconds
        shown = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
        print(f"{label:34s} {seconds:7.2f} s {rate:8.0f} resources/s   ({shown})")

    with served(admin_url) as (base, headers):
        warm_up(base, headers)
        plain_s, statuses = post(base, headers, plain)
    line("plain creates (fresh database)", plain_s, statuses)
    with served(admin_url) as (base, headers):
        warm_up(base, headers)
        first_s, statuses = post(base, headers, conditional)
        line("ifNoneExist, all new (fresh db)", first_s, statuses)
        second_s, statuses = post(base, headers, conditional)
        line("ifNoneExist again, all matching", second_s, statuses)
    print(f"ratio conditional / plain:          {first_s / plain_s:7.2f} (goal <= 2)")
    print(f"ratio all-matching / plain:         {second_s / plain_s:7.2f}")


if __name__ == "__main__":
    main()
