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

    .venv/bin/python -m benchmarks.conditional_batch [--entries 2382]

Its scratch databases are made by benchmarks/scratch.py (HIE_TEST_POSTGRES_URL) and dropped.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from benchmarks.scratch import SYNTHEA, hospital_site
from hie.app import create_app
from hie.server import BackgroundServer

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
def served(admin_url: str | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh migrated database with one hospital, the app serving it; (FHIR base, headers)."""
    with hospital_site() as site, BackgroundServer(create_app(site.settings)) as server:
        yield f"{server.url}/fhir", site.headers


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
    plain, conditional = entries(args.entries, False), entries(args.entries, True)
    print(f"{args.entries} entries from {len(_originals())} distinct Synthea resources")

    def line(label: str, seconds: float, statuses: Counter[str]) -> None:
        rate = args.entries / seconds
        shown = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
        print(f"{label:34s} {seconds:7.2f} s {rate:8.0f} resources/s   ({shown})")

    with served() as (base, headers):
        warm_up(base, headers)
        plain_s, statuses = post(base, headers, plain)
    line("plain creates (fresh database)", plain_s, statuses)
    with served() as (base, headers):
        warm_up(base, headers)
        first_s, statuses = post(base, headers, conditional)
        line("ifNoneExist, all new (fresh db)", first_s, statuses)
        second_s, statuses = post(base, headers, conditional)
        line("ifNoneExist again, all matching", second_s, statuses)
    print(f"ratio conditional / plain:          {first_s / plain_s:7.2f} (goal <= 2)")
    print(f"ratio all-matching / plain:         {second_s / plain_s:7.2f}")


if __name__ == "__main__":
    main()
