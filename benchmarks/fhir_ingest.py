"""FHIR transaction ingest, end to end over HTTP, in resources per second.

Starts ``uvicorn hie.app:create_app`` on 127.0.0.1 (a separate process, so the client does not
share its interpreter), posts the Synthea transaction bundles of ../shared/data/synthea-r4 from
several client threads, and reports resources stored per second. As the baseline it measures,
in the same run, fhir.resources (R4B) parsing the same resources in one thread: the cost of
model validation alone, which every stored resource also pays.

    .venv/bin/python benchmarks/fhir_ingest.py [--workers 2] [--clients 4] [--rounds 3]

Uses HIE_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres) to create a
database of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from fhir.resources.R4B import get_fhir_model_class
from psycopg import sql

from hie.config import Settings
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token

ROOT = Path(__file__).resolve().parents[1]
SYNTHEA = ROOT.parent / "shared" / "data" / "synthea-r4"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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

    admin_url = os.environ.get(
        "HIE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"hie_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    server = None
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

        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
        env |= {
            "HIE_DATABASE_URL": url,
            "HIE_SECRET_KEY": secrets.token_urlsafe(48),
            "HIE_DB_POOL_MAX": "8",
        }
        server = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [
                sys.executable,
                "-m",
                "uvicorn",
                "hie.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/fhir/metadata", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit("uvicorn did not start")
            time.sleep(0.2)

        bundles = _bundles()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
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
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    main()
