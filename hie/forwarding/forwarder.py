"""The forwarder process: one consumer per destination, each on its own thread, connection and
queue, so a slow or dead upstream holds up only its own queue.

A consumer works one message at a time, in queue order (with a single active consumer per queue
this keeps each record's events in order), and acknowledges it only once the upstream answered
2xx or a permanent failure is recorded. A transient failure (connection refused or cut, timeout,
5xx, 429, 401, no token) is retried in place with a doubling pause, the message held: nothing
behind it overtakes it. A forwarder killed meanwhile leaves its messages unacknowledged, and
RabbitMQ gives them to the next one. Every attempt is recorded in ``forward_delivery`` under the
event id, so a redelivered event already sent is acknowledged without sending it again; one sent
but not yet recorded when the forwarder died is sent again, which the requests are built to make
harmless upstream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pika
import pika.exceptions
import psycopg
import psycopg.errors
from pika.adapters.blocking_connection import BlockingConnection

from hie.events.broker import connection_parameters
from hie.forwarding.queues import declare_queue, queue_of
from hie.forwarding.sender import Permanent, Transient, build_request, delivery_of, send
from hie.storage import Database
from hie.storage.forwarding import (
    Delivery,
    Destination,
    State,
    delivery_state,
    destination_exists,
    list_destinations,
    record_attempt,
)

log = logging.getLogger(__name__)

# An outage of RabbitMQ or PostgreSQL: the consumer reconnects and the message comes again.
OUTAGE = (pika.exceptions.AMQPError, psycopg.OperationalError, OSError)


class Removed(Exception):
    """The destination was removed while its consumer worked: it stops (its message goes with
    the deleted queue)."""


@dataclass
class Backoff:
    first: float = 1.0
    most: float = 60.0

    def delays(self) -> Iterator[float]:
        """1, 2, 4 … up to ``most`` seconds, for ever."""
        delay = self.first
        while True:
            yield delay
            delay = min(delay * 2, self.most)


@dataclass
class DestinationConsumer:
    destination: Destination
    database: Database
    broker_url: str
    exchange: str
    queue: str
    backoff: Backoff = field(default_factory=Backoff)
    timeout: float = 30.0
    sent: int = 0
    failed: int = 0

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, riding out outages of RabbitMQ and PostgreSQL."""
        reconnect = self.backoff.delays()
        with httpx.Client(timeout=self.timeout) as client:
            while not stop.is_set():
                try:
                    self._session(stop, client)
                    reconnect = self.backoff.delays()
                except Removed:
                    log.info("forward %s: the destination was removed", self.destination.name)
                    return
                except OUTAGE as exc:
                    delay = next(reconnect)
                    log.warning(
                        "forward %s: %s; reconnecting in %.1f s",
                        self.destination.name,
                        type(exc).__name__,
                        delay,
                    )
                    stop.wait(delay)

    def _session(self, stop: threading.Event, client: httpx.Client) -> None:
        with self.database.connection() as conn:
            if not destination_exists(conn, self.destination.name):
                # Removed (its queue deleted, which cancelled this consumer): declaring the
                # queue again would leave it behind.
                raise Removed
        broker = pika.BlockingConnection(connection_parameters(self.broker_url))
        try:
            channel = broker.channel()
            declare_queue(channel, self.exchange, self.queue, self.destination.tables)
            # One unacknowledged message at most: the status counts the queue's ready messages
            # plus the one being retried, and a larger prefetch measured no faster.
            channel.basic_qos(prefetch_count=1)
            log.info("forward %s: consuming %s", self.destination.name, self.queue)
            for method, _properties, body in channel.consume(self.queue, inactivity_timeout=1.0):
                if stop.is_set():
                    break
                if method is None:
                    continue
                if self._handle(stop, broker, client, body):
                    channel.basic_ack(method.delivery_tag)
                else:
                    break  # stopping while retrying: the message stays for the next forwarder
        finally:
            if broker.is_open:
                with contextlib.suppress(*OUTAGE):
                    broker.close()

    def _handle(
        self, stop: threading.Event, broker: BlockingConnection, client: httpx.Client, body: bytes
    ) -> bool:
        """Deliver one event; True when it may be acknowledged."""
        try:
            event = json.loads(body)
            delivery = delivery_of(event)
        except (ValueError, KeyError, TypeError):
            log.warning("forward %s: a message that is no event, dropped", self.destination.name)
            return True
        if delivery is None:
            return True
        name = self.destination.name
        try:
            with self.database.connection() as conn:
                if delivery_state(conn, name, delivery.event_id) in ("sent", "failed"):
                    return True  # a redelivery: this event was settled already
                request = build_request(conn, self.destination, event, delivery)
        except Permanent as exc:
            self._record(delivery, "failed", error=str(exc))
            self.failed += 1
            return True
        delays = self.backoff.delays()
        while True:
            try:
                sent = send(
                    client,
                    self.destination,
                    request,
                    institution_code=delivery.institution_code,
                    received_at=event.get("received_at"),
                )
            except Transient as exc:
                self._record(delivery, "pending", error=str(exc), status=exc.status)
                delay = next(delays)
                log.warning("forward %s: %s; retrying in %.1f s", name, exc, delay)
                if not _pause(stop, broker, delay):
                    return False
                continue
            except Permanent as exc:
                self._record(delivery, "failed", error=str(exc), status=exc.status)
                self.failed += 1
                log.warning("forward %s: event %s refused: %s", name, delivery.event_id, exc)
                return True
            self._record(delivery, "sent", status=sent.status, location=sent.location)
            self.sent += 1
            return True

    def _record(self, delivery: Delivery, state: State, **details: Any) -> None:
        try:
            with self.database.transaction() as tx:
                record_attempt(tx.conn, self.destination.name, delivery, state, **details)
        except psycopg.errors.ForeignKeyViolation:
            raise Removed from None


def _pause(stop: threading.Event, broker: BlockingConnection, seconds: float) -> bool:
    """Wait ``seconds`` keeping the connection alive (heartbeats); False when told to stop."""
    waited = 0.0
    while waited < seconds:
        if stop.is_set():
            return False
        step = min(0.5, seconds - waited)
        broker.sleep(step)
        waited += step
    return not stop.is_set()


@dataclass
class Forwarder:
    """Runs a consumer per configured destination, following additions and removals."""

    database: Database
    broker_url: str
    exchange: str
    prefix: str
    refresh: float = 5.0
    backoff: Backoff = field(default_factory=Backoff)
    consumers: dict[str, tuple[DestinationConsumer, threading.Thread, threading.Event]] = field(
        default_factory=dict
    )
    stopped_sent: int = 0  # sent by consumers since stopped

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    with self.database.connection() as conn:
                        destinations = {d.name: d for d in list_destinations(conn)}
                except psycopg.OperationalError as exc:
                    log.warning("forwarder: %s reading the destinations", type(exc).__name__)
                else:
                    self._follow(destinations)
                stop.wait(self.refresh)
        finally:
            for name in list(self.consumers):
                self._stop(name)

    def _follow(self, destinations: dict[str, Destination]) -> None:
        for name, (consumer, thread, _) in list(self.consumers.items()):
            if destinations.get(name) != consumer.destination or not thread.is_alive():
                self._stop(name)
        for name, destination in destinations.items():
            if name not in self.consumers:
                consumer = DestinationConsumer(
                    destination,
                    self.database,
                    self.broker_url,
                    self.exchange,
                    queue_of(self.prefix, name),
                    self.backoff,
                )
                halt = threading.Event()
                thread = threading.Thread(
                    target=consumer.run, args=(halt,), name=f"forward-{name}", daemon=True
                )
                thread.start()
                self.consumers[name] = (consumer, thread, halt)
                log.info("forwarder: forwarding to %s", name)

    def _stop(self, name: str) -> None:
        consumer, thread, halt = self.consumers.pop(name)
        halt.set()
        thread.join(timeout=60)
        self.stopped_sent += consumer.sent

    @property
    def sent(self) -> int:
        return self.stopped_sent + sum(c.sent for c, _, _ in self.consumers.values())
