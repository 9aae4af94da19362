"""Subscriptions: what matching costs per event, and how fast deliveries go out.

    .venv/bin/python benchmarks/subscriptions.py [--resources 500] [--subscriptions 20]

1. The deliverer's matching of accepted-Observation events (active subscriptions read, each
   one's search run restricted to the resource, delivery rows written) with ``--subscriptions``
   active subscriptions, against the same events with none active (the fixed cost of an event),
   in alternating rounds of the same run; each event in its own transaction (``handle``) and in
   batches of the prefetch (``handle_batch``, as the consumer does). Ratios are to one by one
   with none active.
2. The sender (claim, POST with httpx, mark sent, audit entry) to a local HTTP server answering
   200, against bare httpx POSTs of the same bodies to the same server.

Scratch database on HIE_TEST_POSTGRES_URL (dropped afterwards); no broker is used (events are
the outbox rows as the relay would publish them).
"""

from __future__ import annotations

import argparse
import os
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fastapi.testclient import TestClient
from psycopg import sql
from pydantic import SecretStr

from hie.app import create_app
from hie.config import Settings
from hie.events.model import message_of
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token
from hie.subscriptions.deliverer import Deliverer

ADMIN_URL = os.environ.get("HIE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CODES = ("8867-4", "8310-5", "8302-2", "29463-7", "9279-1")


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real subscriber would

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST  # a payload is PUT to <hook>/<Type>/<id>, as HAPI delivers it

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=500)
    parser.add_argument("--subscriptions", type=int, default=20)
    args = parser.parse_args()
    name = f"hie_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    settings = Settings(
        database_url=ADMIN_URL.rsplit("/", 1)[0] + f"/{name}",
        data_dir=Path("/nonexistent"),
        secret_key=secrets.token_urlsafe(48),
        broker_url=SecretStr("amqp://guest:guest@127.0.0.1:5672//"),  # never connected
        subscription_endpoints=("http://127.0.0.1",),  # the local subscriber
    )
    database = open_database(settings)
    try:
        with database.transaction() as tx:
            add_institution(tx.conn, Institution("H1", "医院", "hospital"), actor="b")
            submitter = create_token(
                tx.conn, role="submitter", institution_code="H1", label="", actor="b"
            )[1]
            admin = create_token(tx.conn, role="admin", institution_code=None, label="", actor="b")[
                1
            ]
        with TestClient(create_app(settings)) as client:
            for n in range(args.resources):
                resource = {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {
                        "coding": [{"system": "http://loinc.org", "code": CODES[n % len(CODES)]}]
                    },
                }
                answer = client.post(
                    "/fhir/Observation",
                    json=resource,
                    headers={"Authorization": f"Bearer {submitter}"},
                )
                answer.raise_for_status()
            for n in range(args.subscriptions):
                token = admin if n % 2 else submitter
                body = {
                    "resourceType": "Subscription",
                    "status": "requested",
                    "reason": "benchmark",
                    "criteria": f"Observation?code=http://loinc.org|{CODES[n % len(CODES)]}",
                    "channel": {
                        "type": "rest-hook",
                        "endpoint": hook,
                        "payload": "application/fhir+json",
                    },
                }
                client.post(
                    "/fhir/Subscription", json=body, headers={"Authorization": f"Bearer {token}"}
                ).raise_for_status()
        with database.connection() as conn:
            # The statistics autovacuum would have gathered by now: without them the planner
            # takes the freshly loaded tables for empty and nests loops over the search index.
            conn.execute("analyze")
        deliverer = Deliverer(database, "unused", settings.zone, endpoints=settings.endpoint_policy)
        deliverer.activate()
        with database.connection() as conn:
            events = [
                message_of(row)
                for row in conn.execute("select * from event_outbox order by seq").fetchall()
            ]

        def match_rate(active: bool, batched: bool) -> float:
            with database.transaction() as tx:
                tx.conn.execute(
                    "update subscription set status = %s", ("active" if active else "off",)
                )
            started = time.perf_counter()
            if batched:  # as the consumer does: up to `batch` (the prefetch) events at once
                for n in range(0, len(events), deliverer.batch):
                    deliverer.handle_batch(events[n : n + deliverer.batch])
            else:
                for event in events:
                    deliverer.handle(event)
            return len(events) / (time.perf_counter() - started)

        match_rate(True, False)  # warm up: plans, caches (and the delivery rows, written once)
        match_rate(True, True)
        modes = [(a, b) for b in (False, True) for a in (False, True)]
        rates: dict[tuple[bool, bool], list[float]] = {mode: [] for mode in modes}
        for _ in range(3):
            for mode in modes:
                rates[mode].append(match_rate(*mode))
        mean = {mode: sum(r) / len(r) for mode, r in rates.items()}
        none = mean[False, False]
        for (active, batched), rate in mean.items():
            what = f"{args.subscriptions} active subscriptions" if active else "no subscription"
            how = f"in batches of {deliverer.batch}" if batched else "one by one"
            label = f"events matched {how}, {what}"
            print(f"{label:<58}{rate:>8,.0f} events/s  ({rate / none:.2f}x)")

        with database.connection() as conn:
            row = conn.execute("select count(*) as n from subscription_delivery").fetchone()
        deliveries = int(row["n"]) if row else 0
        with httpx.Client(timeout=10) as http:
            body = b'{"resourceType":"Observation"}' * 8
            started = time.perf_counter()
            for _ in range(deliveries):
                http.post(hook, content=body).raise_for_status()
            bare = deliveries / (time.perf_counter() - started)
            started = time.perf_counter()
            while deliverer.send_due(http):
                pass
            sent = deliverer.sent / (time.perf_counter() - started)
        print(f"bare httpx POSTs to a local subscriber (baseline) {bare:>8,.0f} POSTs/s")
        print(
            f"deliveries sent ({deliverer.sent} with payload and audit entry)"
            f"{' ' * max(1, 9 - len(str(deliverer.sent)))}{sent:>8,.0f} deliveries/s"
            f"  ({sent / bare:.2f}x)"
        )
    finally:
        database.close()
        server.shutdown()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
