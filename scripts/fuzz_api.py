"""Fuzz every operation of the OpenAPI document (the /api, /cda and /fhir routes) with
schemathesis, on a fresh database, and report how many requests were served and how many were
answered with a server error (5xx). Nothing is down during the run, so any 5xx is a bug.

    python scripts/fuzz_api.py --max-examples 200

The app runs on uvicorn in this process; schemathesis runs as two processes against it at once,
one with an admin token (acting for hospital H1), one with H1's submitter token. Requests are
counted by the server itself. Exit status 1 when any request got a 5xx (each is listed).
Needs PostgreSQL (HIE_TEST_POSTGRES_URL, default the local server) and RabbitMQ for the
report-computing route (HIE_TEST_BROKER_URL).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from hie.app import create_app
from hie.config import Settings
from hie.registry import Institution
from hie.server import BackgroundServer
from hie.storage import open_database
from hie.storage.declarations import set_declaration
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
BROKER = "amqp://guest:guest@127.0.0.1:5672//"


@dataclass
class Served:
    """What the server answered: request count by status, and each 5xx."""

    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


class Counting:
    """ASGI wrapper counting the answers of the app it wraps."""

    def __init__(self, app: Any, served: Served) -> None:
        self.app = app
        self.served = served

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self.served.statuses[status] += 1
                if status >= 500:
                    query = scope.get("query_string", b"").decode("latin-1")[:200]
                    self.served.server_errors.append(
                        f"{status} {scope['method']} {scope['path']}?{query}"
                    )
            await send(message)

        await self.app(scope, receive, counting_send)


def _database(admin_url: str, name: str, *, create: bool) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        statement = "create database {}" if create else "drop database if exists {} with (force)"
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def _seed(settings: Settings) -> dict[str, str]:
    database = open_database(settings)  # migrates
    try:
        with database.transaction() as tx:
            add_institution(tx.conn, Institution("D1", "区一", "district"), actor="fuzz")
            add_institution(tx.conn, Institution("H1", "医院一", "hospital", "D1"), actor="fuzz")
            set_declaration(tx.conn, "H1", ["C0001", "C0002"], actor="fuzz")
            return {
                role: create_token(
                    tx.conn, role=role, institution_code=code, label="fuzz", actor="fuzz"
                )[1]
                for role, code in (("admin", None), ("submitter", "H1"))
            }
    finally:
        database.close()


def fuzz(
    *,
    max_examples: int,
    postgres_url: str = POSTGRES,
    broker_url: str = BROKER,
    seed: int | None = None,
    workers: int = 2,
    phases: str | None = None,
    max_time: int | None = None,
    output: Path | None = None,
    progress: Path | None = None,
) -> Served:
    """Run schemathesis against a fresh app and database; return what the server answered."""
    name = f"hie_fuzz_{uuid.uuid4().hex[:12]}"
    url = _database(postgres_url, name, create=True)
    served = Served()
    try:
        with tempfile.TemporaryDirectory() as work:
            settings = Settings(
                database_url=url,
                broker_url=broker_url,
                data_dir=Path(work),
                secret_key=secrets.token_urlsafe(48),
            )
            tokens = _seed(settings)
            with BackgroundServer(Counting(create_app(settings), served)) as server:
                runs = []
                # Both roles at once: the server spends most of a request waiting on the
                # database, so two clients keep it busier than one.
                for role, extra in (("admin", ["-H", "X-HIE-Institution: H1"]), ("submitter", [])):
                    command = [
                        str(Path(sys.executable).with_name("st")),
                        "run",
                        f"{server.url}/openapi.json",
                        "--checks",
                        "not_a_server_error",
                        "-H",
                        f"Authorization: Bearer {tokens[role]}",
                        *extra,
                        "--max-examples",
                        str(max_examples),
                        "--workers",
                        str(workers),
                        "--request-timeout",
                        "60",
                        "--no-color",
                        *(["--seed", str(seed)] if seed is not None else []),
                        *(["--phases", phases] if phases else []),
                        *(["--max-time", str(max_time)] if max_time else []),
                    ]
                    log = Path(work) / f"{role}.log"
                    with log.open("w", encoding="utf-8") as sink:
                        runs.append(
                            (
                                role,
                                log,
                                subprocess.Popen(  # noqa: S603 (our own command line)
                                    command, cwd=work, stdout=sink, stderr=subprocess.STDOUT
                                ),
                            )
                        )
                while any(run.poll() is None for _, _, run in runs):
                    time.sleep(5)
                    if progress is not None:
                        progress.write_text(f"{served.requests} requests\n", encoding="utf-8")
                if output is not None:
                    with output.open("a", encoding="utf-8") as sink:
                        for role, log, _ in runs:
                            sink.write(f"== {role}\n{log.read_text(encoding='utf-8')}\n")
    finally:
        _database(postgres_url, name, create=False)
    return served


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=200, help="per operation and run")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--phases", help="schemathesis phases (default: all)")
    parser.add_argument("--max-time", type=int, help="seconds: fuzz until spent (schemathesis)")
    parser.add_argument("--output", type=Path, help="append schemathesis' own output here")
    parser.add_argument("--progress", type=Path, help="rewrite the request count here")
    args = parser.parse_args()
    served = fuzz(
        max_examples=args.max_examples,
        postgres_url=os.environ.get("HIE_TEST_POSTGRES_URL", POSTGRES),
        broker_url=os.environ.get("HIE_TEST_BROKER_URL", BROKER),
        seed=args.seed,
        workers=args.workers,
        phases=args.phases,
        max_time=args.max_time,
        output=args.output,
        progress=args.progress,
    )
    by_status = ", ".join(f"{s}: {n}" for s, n in sorted(served.statuses.items()))
    print(f"{served.requests} requests served ({by_status})")
    print(f"{len(served.server_errors)} server errors (5xx)")
    for line in served.server_errors[:50]:
        print(f"  {line}")
    return 1 if served.server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
