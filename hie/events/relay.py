"""The relay: publishes the outbox to the ``hie.events`` exchange, in order, at least once.

One relay per database works at a time (an advisory lock; a second one waits as a standby). It
reads the oldest unpublished rows, publishes each with publisher confirms (the broker has taken
the message, persistent, before the next one goes), and marks the batch published only then. A
crash between a confirm and the mark republishes those events with the same event id; a RabbitMQ
or PostgreSQL outage only delays them. Two versions of one record are written by transactions
serialised on the record's head row, so the later one's row has the higher ``seq`` and is
committed after the earlier: reading in ``seq`` order keeps each record's events in order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import dataclass

import pika
import pika.exceptions
import psycopg

from hie.events.broker import connection_parameters, declare_exchange
from hie.events.model import message_of, routing_key
from hie.storage import Connection, Database
from hie.storage.outbox import mark_published, pending_events, try_relay_lock

log = logging.getLogger(__name__)

# What an outage looks like; anything else is a bug and stops the relay.
TRANSIENT = (pika.exceptions.AMQPError, psycopg.OperationalError, OSError)


@dataclass
class Relay:
    database: Database
    broker_url: str
    exchange: str = "hie.events"
    batch: int = 200
    idle: float = 0.5  # seconds between looks at an empty outbox
    max_backoff: float = 30.0
    published: int = 0

    def run(self, stop: threading.Event) -> None:
        """Publish until ``stop`` is set, riding out outages of either side."""
        delay = 1.0
        while not stop.is_set():
            try:
                self._session(stop)
                delay = 1.0
            except TRANSIENT as exc:
                # No URL or message in the log: only what failed.
                log.warning("relay: %s; retrying in %.0f s", type(exc).__name__, delay)
                stop.wait(delay)
                delay = min(delay * 2, self.max_backoff)

    def _session(self, stop: threading.Event) -> None:
        with self.database.connection() as conn:
            waiting = False
            while not try_relay_lock(conn):
                if not waiting:
                    log.info("relay: another relay publishes for this database; standing by")
                    waiting = True
                if stop.wait(5):
                    return
            try:
                self._publish_until(stop, conn)
            finally:
                # The pool keeps the connection: give the lock back with it.
                if not conn.closed:
                    conn.execute("select pg_advisory_unlock_all()")

    def _publish_until(self, stop: threading.Event, conn: Connection) -> None:
        broker = pika.BlockingConnection(connection_parameters(self.broker_url))
        try:
            channel = broker.channel()
            channel.confirm_delivery()
            declare_exchange(channel, self.exchange)
            log.info("relay: publishing to %s", self.exchange)
            while not stop.is_set():
                rows = pending_events(conn, self.batch)
                if not rows:
                    broker.process_data_events(time_limit=self.idle)  # heartbeats meanwhile
                    continue
                for row in rows:
                    body = message_of(row)
                    # With confirms on, this returns once the broker has the message (raises on
                    # a nack); mandatory=False: an exchange nobody is bound to yet is no error.
                    channel.basic_publish(
                        exchange=self.exchange,
                        routing_key=routing_key(
                            row["outcome"], row["institution_kind"], row["table_code"]
                        ),
                        body=json.dumps(body, ensure_ascii=False).encode(),
                        properties=pika.BasicProperties(
                            content_type="application/json",
                            delivery_mode=pika.DeliveryMode.Persistent,
                            message_id=body["event_id"],
                            type=body["type"],
                            timestamp=int(row["created_at"].timestamp()),
                        ),
                    )
                mark_published(conn, [row["seq"] for row in rows])
                self.published += len(rows)
        finally:
            if broker.is_open:
                with contextlib.suppress(*TRANSIENT):
                    broker.close()
