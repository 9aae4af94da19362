"""Events: what the outbox costs the store path, and how fast the relay publishes.

    .venv/bin/python benchmarks/event_outbox.py [--documents 2000] [--events 5000]

1. Whole CDA store path (validate, normalize, store with aggregates, receipt and the event), one
   document at a time, against the same path with the outbox write switched off, in the same run.
2. The relay (outbox read, publish with confirms, mark published) against bare pika publishes with
   confirms of the same bodies, no database.

Scratch database on HIE_TEST_POSTGRES_URL (dropped afterwards) and an exchange of its own on
HIE_TEST_BROKER_URL (deleted afterwards); defaults: the local servers.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid

import pika

import hie.ingest
from benchmarks.cda_store import CDA_HOSPITAL, documents, store_all
from benchmarks.scratch import scratch_store
from hie.cda.submission import CdaPipeline
from hie.events.broker import connection_parameters, declare_exchange
from hie.events.relay import Relay
from hie.validators.cda import CdaSchema

BROKER_URL = os.environ.get("HIE_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()
    exchange = f"hie.events.bench.{uuid.uuid4().hex[:8]}"
    with scratch_store(CDA_HOSPITAL) as (settings, database):
        pipeline = CdaPipeline(settings, database, schema=CdaSchema())
        store_all(pipeline, documents(200, "w"))  # warm up: partitions, caches, plans
        real = hie.ingest.append_events

        def off(conn: object, events: object) -> None:
            return None

        # Alternating rounds, so that a change of load on the machine hits both alike.
        rates: dict[str, list[float]] = {"without": [], "with": []}
        for round_ in range(4):
            for label, hook in (("without", off), ("with", real)):
                hie.ingest.append_events = hook  # type: ignore[assignment]
                rates[label].append(
                    store_all(pipeline, documents(args.documents // 4, f"{label}{round_}-"))
                )
        hie.ingest.append_events = real
        without = sum(rates["without"]) / 4
        with_events = sum(rates["with"]) / 4
        print(f"store path without the outbox (baseline) {without:>9,.0f} documents/s")
        print(
            f"store path with the outbox               {with_events:>9,.0f} documents/s"
            f"  ({with_events / without:.2f}x)"
        )

        # The relay: more events in the outbox, then publish them all.
        more = documents(max(0, args.events - args.documents - 200), "c")
        store_all(pipeline, more)
        with database.connection() as conn:
            row = conn.execute("select count(*) as n from event_outbox").fetchone()
            bodies = [
                json.dumps({"event_id": str(uuid.uuid4()), "n": n}).encode()
                for n in range(row["n"] if row else 0)
            ]
        broker = pika.BlockingConnection(connection_parameters(BROKER_URL))
        channel = broker.channel()
        channel.confirm_delivery()
        declare_exchange(channel, exchange)
        started = time.perf_counter()
        for body in bodies:
            channel.basic_publish(exchange, "record.bench", body)
        bare = len(bodies) / (time.perf_counter() - started)
        print(f"bare pika publish with confirms (baseline) {bare:>7,.0f} events/s")
        relay = Relay(database, BROKER_URL, exchange, batch=500, idle=0.05)
        stop = threading.Event()
        thread = threading.Thread(target=relay.run, args=(stop,))
        started = time.perf_counter()
        thread.start()
        while relay.published < len(bodies):
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        stop.set()
        thread.join()
        published = relay.published / seconds
        print(
            f"relay: read, publish with confirms, mark   {published:>7,.0f} events/s"
            f"  ({published / bare:.2f}x), {relay.published} events"
        )
        channel.exchange_delete(exchange)
        broker.close()


if __name__ == "__main__":
    main()
