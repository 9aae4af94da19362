"""Forwarding: how fast the forwarder sends accepted records upstream.

    .venv/bin/python benchmarks/forwarding.py [--documents 1000]

CDA documents are stored (each with its event), the relay puts the events in a destination's
queue, then the forwarder (consume one at a time, check the delivery state, read the stored
version, build the MHD transaction, send, record the outcome, acknowledge) sends them all to a
local upstream that answers at once. The baseline, in the same run: the same transactions built
from the same bytes and POSTed one after another with one httpx client, no broker, no database.

Scratch database on HIE_TEST_POSTGRES_URL (dropped afterwards) and an exchange and queue of its
own on HIE_TEST_BROKER_URL (deleted afterwards); defaults: the local servers.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pika

from benchmarks.cda_store import CDA_HOSPITAL, documents, store_all
from benchmarks.scratch import scratch_store
from hie.cda.submission import CdaPipeline
from hie.events.broker import connection_parameters
from hie.events.relay import Relay
from hie.forwarding.forwarder import Forwarder
from hie.forwarding.messages import document_bundle
from hie.forwarding.queues import declare, queue_of
from hie.storage.forwarding import Destination, add_destination, delivery_counts
from hie.storage.outbox import outbox_counts
from hie.validators.cda import CdaSchema

BROKER_URL = os.environ.get("HIE_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
TOKEN_ENV = "HIE_BENCH_FORWARD_TOKEN"  # noqa: S105 (a variable's name)


class Upstream(BaseHTTPRequestHandler):
    """Reads the body and answers 200 with a transaction-response at once."""

    answer = json.dumps(
        {"resourceType": "Bundle", "type": "transaction-response", "entry": []}
    ).encode()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000)
    args = parser.parse_args()
    exchange = f"hie.events.bench.{uuid.uuid4().hex[:8]}"
    prefix = f"hie-bench-{uuid.uuid4().hex[:8]}"
    queue = queue_of(prefix, "province")
    os.environ[TOKEN_ENV] = "bench"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    try:
        with scratch_store(CDA_HOSPITAL) as (settings, database):
            with database.transaction() as tx:
                add_destination(tx.conn, Destination("province", base, TOKEN_ENV, None))
            declare(BROKER_URL, exchange, queue, None)
            docs = documents(args.documents, "f")
            store_all(CdaPipeline(settings, database, schema=CdaSchema()), docs)

            # The events into the destination's queue first: the forwarder alone is timed.
            stop = threading.Event()
            relay = Relay(database, BROKER_URL, exchange, batch=500, idle=0.05)
            relay_thread = threading.Thread(target=relay.run, args=(stop,))
            relay_thread.start()
            while True:
                with database.connection() as conn:
                    if outbox_counts(conn)["pending"] == 0:
                        break
                time.sleep(0.05)

            # Baseline: the same transactions, built and POSTed back to back.
            with httpx.Client(timeout=30) as client:
                started = time.perf_counter()
                for n, doc in enumerate(docs):
                    bundle = document_bundle(f"bench^{n}", doc, table_code="C0002")
                    answer = client.post(
                        base,
                        content=json.dumps(bundle).encode(),
                        headers={"Content-Type": "application/fhir+json"},
                    )
                    answer.raise_for_status()
                bare = len(docs) / (time.perf_counter() - started)
            print(f"bare httpx POST of the transactions (baseline) {bare:>7,.0f} documents/s")

            forwarder = Forwarder(database, BROKER_URL, exchange, prefix, refresh=0.2)
            forward_thread = threading.Thread(target=forwarder.run, args=(stop,))
            started = time.perf_counter()
            forward_thread.start()
            while True:
                with database.connection() as conn:
                    counts = delivery_counts(conn).get("province", {})
                if counts.get("sent", 0) + counts.get("failed", 0) >= len(docs):
                    break
                time.sleep(0.2)
            seconds = time.perf_counter() - started
            rate = len(docs) / seconds
            print(
                f"forwarder: consume, read, build, send, record   {rate:>7,.0f} documents/s"
                f"  ({rate / bare:.2f}x), {counts.get('sent', 0)} sent, "
                f"{counts.get('failed', 0)} failed"
            )
            stop.set()
            forward_thread.join()
            relay_thread.join()
    finally:
        server.shutdown()
        broker = pika.BlockingConnection(connection_parameters(BROKER_URL))
        channel = broker.channel()
        channel.queue_delete(queue)
        channel.exchange_delete(exchange)
        broker.close()


if __name__ == "__main__":
    main()
