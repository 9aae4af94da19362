"""What referential integrity (HAPI's default, on here by default) costs writes, over HTTP.

Each round loads the Synthea transaction Bundles of ../shared/data/synthea-r4 (those whose
references all resolve inside the folder) into a fresh database, once with
HIE_ENFORCE_REFERENTIAL_INTEGRITY_ON_WRITE/_ON_DELETE on and once off (the order alternating
between rounds), then deletes as many leaf resources (Observations nobody refers to) one by one.
It prints the medians and the ratios on / off.

    .venv/bin/python benchmarks/referential_integrity.py [--rounds 3] [--deletes 300]

Uses HIE_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres) to create
databases of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


def bundles() -> list[bytes]:
    """The Synthea Bundles whose references resolve without other files (no Practitioner?…)."""
    found = []
    for path in sorted(SYNTHEA.glob("*.json")):
        text = path.read_bytes()
        if path.name != "MANIFEST.json" and b"?identifier=" not in text:
            found.append(text)
    return found


@contextmanager
def served(admin_url: str, integrity: bool) -> Iterator[tuple[str, dict[str, str]]]:
    name = f"hie_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    try:
        settings = Settings(
            database_url=url,
            data_dir=Path("/nonexistent"),
            secret_key=secrets.token_urlsafe(48),
            enforce_referential_integrity_on_write=integrity,
            enforce_referential_integrity_on_delete=integrity,
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


def run(admin_url: str, integrity: bool, loads: list[bytes], deletes: int) -> tuple[float, float]:
    """Seconds to load the Bundles, and to delete ``deletes`` Observations one by one."""
    with served(admin_url, integrity) as (base, headers), httpx.Client(timeout=600) as http:
        started = time.perf_counter()
        for body in loads:
            http.post(base, content=body, headers=headers).raise_for_status()
        loaded = time.perf_counter() - started
        referred = set()
        observations = []
        url: str | None = f"{base}/Observation?_count=1000"
        while url and len(observations) < deletes * 2:
            page = http.get(url, headers=headers).json()
            observations += [e["resource"] for e in page.get("entry", [])]
            url = next((k["url"] for k in page.get("link", []) if k["relation"] == "next"), None)
        for observation in observations:
            for member in observation.get("hasMember") or []:
                referred.add(member.get("reference"))
        leaves = [o["id"] for o in observations if f"Observation/{o['id']}" not in referred]
        started = time.perf_counter()
        for observation_id in leaves[:deletes]:
            http.delete(f"{base}/Observation/{observation_id}", headers=headers).raise_for_status()
        deleted = time.perf_counter() - started
    return loaded, deleted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deletes", type=int, default=300)
    args = parser.parse_args()
    if not SYNTHEA.is_dir():
        sys.exit(f"no Synthea bundles at {SYNTHEA}")
    admin_url = os.environ.get(
        "HIE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    loads = bundles()
    resources = sum(len(json.loads(b).get("entry") or []) for b in loads)
    print(
        f"{len(loads)} Synthea transaction Bundles, {resources} resources; {args.deletes} deletes"
    )
    times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for round_number in range(args.rounds):
        for integrity in (True, False) if round_number % 2 == 0 else (False, True):
            times[integrity].append(run(admin_url, integrity, loads, args.deletes))
            loaded, deleted = times[integrity][-1]
            label = "on " if integrity else "off"
            print(
                f"round {round_number + 1} integrity {label}: load {loaded:6.2f} s, "
                f"deletes {deleted:6.2f} s"
            )
    on_load = statistics.median(t[0] for t in times[True])
    off_load = statistics.median(t[0] for t in times[False])
    on_delete = statistics.median(t[1] for t in times[True])
    off_delete = statistics.median(t[1] for t in times[False])
    print(
        f"load:    on {on_load:6.2f} s ({resources / on_load:5.0f}/s), "
        f"off {off_load:6.2f} s ({resources / off_load:5.0f}/s), ratio {on_load / off_load:.2f}"
    )
    print(
        f"deletes: on {on_delete:6.2f} s, off {off_delete:6.2f} s, "
        f"ratio {on_delete / off_delete:.2f}"
    )


if __name__ == "__main__":
    main()
