"""FHIR transaction ingest, end to end over HTTP, in resources per second.

Starts ``hie serve --workers N`` on 127.0.0.1 (a separate process, so the client does not
share its interpreter), posts the Synthea transaction bundles of ../shared/data/synthea-r4 from
several client threads, and reports resources stored per second. As the baseline it measures,
in the same run, fhir.resources (R4B) parsing the same resources in one thread: the cost of
model validation alone, which every stored resource also pays.

    .venv/bin/python -m benchmarks.fhir_ingest [--workers 2] [--clients 4] [--rounds 3]

Its scratch database is made by benchmarks/scratch.py (HIE_TEST_POSTGRES_URL) and dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import httpx
from fhir.resources.R4B import get_fhir_model_class

from benchmarks.scratch import SYNTHEA, hospital_site, serve


def _bundles() -> list[tuple[bytes, int]]:
    """Self-contained bundles (the fdp-* ones need practitioner bundles that are not there)."""
    found = []
    for path in sorted(SYNTHEA.glob("smart-*.json")):
        body = path.read_bytes()
        found.append((body, len(json.loads(body)["entry"])))
    return found


def baseline(bundles: list[tuple[bytes, int]]) -> float:
    """fhir.resources parsing of every resource of the bundles, resources per second."""
    resources = [e["resource"] for body, _ in bundles for e in json.loads(body)["entry"]]
    started = time.perf_counter()
    for resource in resources:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return len(resources) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--rounds", type=int, default=3, help="times each bundle is posted")
    args = parser.parse_args()
    if not SYNTHEA.is_dir():
        sys.exit(f"no Synthea bundles at {SYNTHEA}")

    with hospital_site() as site, serve(site.url, args.workers) as served:
        base, headers = served.base, site.headers
        bundles = _bundles()
        with httpx.Client(timeout=300) as http:  # warm-up: partitions, caches, connections
            response = http.post(f"{base}/fhir", content=bundles[0][0], headers=headers)
            response.raise_for_status()

        work = [b for _ in range(args.rounds) for b in bundles]
        lock = threading.Lock()
        failures: list[str] = []

        def client() -> None:
            with httpx.Client(timeout=300) as http:
                while True:
                    with lock:
                        if not work:
                            return
                        body, _ = work.pop()
                    response = http.post(f"{base}/fhir", content=body, headers=headers)
                    if response.status_code != 200:
                        failures.append(response.text[:300])

        total = sum(n for _, n in bundles) * args.rounds
        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if failures:
            sys.exit(f"{len(failures)} bundles failed, e.g. {failures[0]}")

        ingest = total / elapsed
        parse = baseline(bundles)
        print(f"cores: {os.cpu_count()}, uvicorn workers: {args.workers}, clients: {args.clients}")
        print(f"bundles posted: {len(bundles) * args.rounds}, resources: {total}, {elapsed:.1f} s")
        print(f"end-to-end transaction ingest: {ingest:8.0f} resources/s")
        print(f"fhir.resources R4B parse only: {parse:8.0f} resources/s (one thread)")
        print(f"ratio ingest / parse:          {ingest / parse:8.2f}")


if __name__ == "__main__":
    main()
