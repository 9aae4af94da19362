"""The subscription deliverer: a consumer of the ``hie.events`` exchange and a sender.

Why a consumer of the exchange rather than a Celery task reading the outbox: the relay is the one
ordered reader of the outbox (an advisory lock), and the exchange is the documented way for any
downstream system to follow accepted records, at least once with a stable event id. The
deliverer is such a consumer: its own durable quorum queue (``<HIE_TASK_QUEUE>.subscriptions``)
bound to ``record.accepted.#``, so events wait in RabbitMQ while it is down and nothing is taken
from other consumers.

Two loops, two threads:

- **match** (pika): for each accepted FHIR version, the active subscriptions on its type whose
  owner token may read its institution, matched by running their search restricted to the
  resource's id; a ``subscription_delivery`` row per match, written before the message is
  acknowledged. The row's key (subscription, event id) makes a redelivered event a no-op.
- **send** (httpx): due deliveries are leased, POSTed, and marked sent; a transient failure
  (connection errors, timeouts, 408, 429, 5xx) is tried again with a doubling pause, and after
  ``attempts`` tries (or at once for any other answer) the delivery fails and its subscription
  goes to status ``error`` with the reason (HAPI's behaviour). Sending apart from matching keeps
  a slow subscriber from holding up the queue. A deliverer that dies after a POST but before
  marking it sends that one again after the lease: a subscriber may see a repeat, never a gap.

It also takes ``requested`` subscriptions and makes them ``active``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
import pika
import pika.exceptions
import psycopg
import simplejson

from hie.events.broker import connection_parameters, declare_exchange
from hie.events.model import SCHEMA
from hie.fhir.content import served_form
from hie.storage import Database
from hie.storage.audit import record_event
from hie.storage.fhir import read_version_of
from hie.storage.subscriptions import (
    Due,
    NewDelivery,
    active_subscriptions,
    add_deliveries,
    claim_due,
    hold_back,
    mark_failed,
    mark_sent,
    requested_subscriptions,
    retry_later,
    set_status,
)
from hie.subscriptions.model import TRANSIENT_STATUSES, backoff, header_pairs
from hie.subscriptions.service import matching
from hie.workers.app import DELIVERY_LIMIT, queue_name

log = logging.getLogger(__name__)

QUEUE = "subscriptions"
BINDING = "record.accepted.#"
# An outage of RabbitMQ or PostgreSQL: wait and go on. Anything else is a bug and stops.
OUTAGES = (pika.exceptions.AMQPError, psycopg.OperationalError, OSError)
# A subscriber that could not be reached or did not answer in time: tried again.
TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def queue_arguments(prefix: str) -> dict[str, Any]:
    """A quorum queue whose poison messages go to the platform's dead letters, like the Celery
    queues (hie/workers/app.py)."""
    dead = queue_name(prefix, "dead")
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": dead,
        "x-dead-letter-routing-key": dead,
        "x-delivery-limit": DELIVERY_LIMIT,
    }


@dataclass
class Deliverer:
    database: Database
    broker_url: str
    zone: ZoneInfo
    prefix: str = "hie"  # HIE_TASK_QUEUE
    exchange: str = "hie.events"
    attempts: int = 8  # tries of one delivery before the subscription goes to error
    backoff_base: float = 2.0  # seconds before the first retry, doubling after
    backoff_most: float = 600.0
    timeout: float = 10.0  # seconds a subscriber has to answer
    lease: float = 120.0  # seconds a claimed delivery is kept from other deliverers
    batch: int = 50
    idle: float = 0.5
    max_outage_pause: float = 30.0
    matched: int = 0
    sent: int = 0
    _failure: list[BaseException] = field(default_factory=list)

    @property
    def queue(self) -> str:
        return queue_name(self.prefix, QUEUE)

    def run(self, stop: threading.Event) -> None:
        """Match and send until ``stop`` is set, riding out outages of either side."""
        sender = threading.Thread(target=self._guarded, args=(stop,), name="subscription-sender")
        sender.start()
        try:
            self._outage_loop(stop, self._consume_until)
        finally:
            stop.set()
            sender.join()
        if self._failure:
            raise self._failure[0]

    def _guarded(self, stop: threading.Event) -> None:
        try:
            self._outage_loop(stop, self._send_until)
        except BaseException as exc:  # the consumer thread re-raises it
            self._failure.append(exc)
            stop.set()

    def _outage_loop(self, stop: threading.Event, body: Any) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                body(stop)
                delay = 1.0
            except OUTAGES as exc:
                log.warning("subscriptions: %s; retrying in %.0f s", type(exc).__name__, delay)
                stop.wait(delay)
                delay = min(delay * 2, self.max_outage_pause)

    # -- matching ---------------------------------------------------------------------------

    def _consume_until(self, stop: threading.Event) -> None:
        broker = pika.BlockingConnection(connection_parameters(self.broker_url))
        try:
            channel = broker.channel()
            declare_exchange(channel, self.exchange)
            channel.queue_declare(self.queue, durable=True, arguments=queue_arguments(self.prefix))
            channel.queue_bind(queue=self.queue, exchange=self.exchange, routing_key=BINDING)
            channel.basic_qos(prefetch_count=self.batch)
            log.info("subscriptions: matching events of %s from %s", self.exchange, self.queue)
            for method, _properties, body in channel.consume(
                self.queue, inactivity_timeout=self.idle
            ):
                if stop.is_set():
                    break
                if method is None:
                    continue
                try:
                    self.handle(json.loads(body))
                except ValueError as exc:
                    # Not an event of ours: to the dead letters, not round and round.
                    log.warning("subscriptions: unreadable event dead-lettered (%s)", exc)
                    channel.basic_reject(method.delivery_tag, requeue=False)
                    continue
                channel.basic_ack(method.delivery_tag)
            with contextlib.suppress(*OUTAGES):
                channel.cancel()
        finally:
            if broker.is_open:
                with contextlib.suppress(*OUTAGES):
                    broker.close()

    def handle(self, event: Any) -> int:
        """Record a delivery for each subscription the event's resource matches; how many are
        new (0 for an event seen before). ValueError for a body that is no event."""
        target = _target(event)
        if target is None:
            return 0
        event_id, institution, resource_type, resource_id, version = target
        with self.database.transaction() as tx:
            candidates = active_subscriptions(tx.conn, resource_type)
            found = [
                NewDelivery(
                    subscription_id=subscription.id,
                    event_id=event_id,
                    institution_code=institution,
                    logical_id=f"{resource_type}/{resource_id}",
                    version=version,
                )
                for subscription in matching(
                    tx.conn, self.zone, candidates, institution, resource_id
                )
            ]
            new = add_deliveries(tx.conn, found)
        self.matched += new
        return new

    # -- sending ----------------------------------------------------------------------------

    def _send_until(self, stop: threading.Event) -> None:
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            while not stop.is_set():
                self.activate()
                if self.send_due(client) == 0:
                    stop.wait(self.idle)

    def activate(self) -> int:
        """Requested subscriptions become active (their criteria were checked on write)."""
        with self.database.transaction() as tx:
            rows = requested_subscriptions(tx.conn)
            for row in rows:
                set_status(tx.conn, row["id"], "active")
        for row in rows:
            log.info("subscriptions: Subscription/%s is active", row["id"])
        return len(rows)

    def send_due(self, client: httpx.Client) -> int:
        """Send the deliveries that are due, each subscription's in the order of its events;
        how many were tried. A subscriber that fails a transient way is not tried again in this
        round: its other deliveries wait with the failed one, so a dead endpoint costs one
        timeout per round rather than one per pending delivery (and a subscription that went
        to error sends nothing more)."""
        with self.database.transaction() as tx:
            due = claim_due(tx.conn, self.batch, timedelta(seconds=self.lease))
        resting: dict[str, datetime] = {}  # subscription: when it is tried again
        held: dict[str, list[UUID]] = {}
        tried = 0
        for delivery in due:
            if delivery.subscription_id in resting:
                held.setdefault(delivery.subscription_id, []).append(delivery.event_id)
                continue
            tried += 1
            again = self._send(client, delivery)
            if again is not None:
                resting[delivery.subscription_id] = again
        if held:
            with self.database.transaction() as tx:
                for subscription_id, event_ids in held.items():
                    hold_back(tx.conn, subscription_id, event_ids, resting[subscription_id])
        return tried

    def _body(self, delivery: Due) -> bytes | None:
        if delivery.payload is None:
            return None
        with self.database.connection() as conn:
            row = read_version_of(
                conn, delivery.institution_code, delivery.logical_id, delivery.version
            )
        if row is None or row["resource"] is None:
            return None
        served = served_form(row["resource"], row["version"], row["received_at"])
        # simplejson: a stored decimal (read as Decimal) is sent with its digits, as 1.50.
        return simplejson.dumps(served, ensure_ascii=False).encode()

    def _send(self, client: httpx.Client, delivery: Due) -> datetime | None:
        """POST one delivery and record the outcome. None when it was sent; else when the
        subscriber's other deliveries are due again (after a failure for good, at once: its
        subscription is in error and no longer claimed)."""
        headers = header_pairs(delivery.headers)
        body = self._body(delivery)
        if body is not None:
            headers["Content-Type"] = f"{delivery.payload}; charset=utf-8"
        retry_after = 0.0
        try:
            response = client.post(delivery.endpoint, content=body or b"", headers=headers)
        except TRANSIENT_ERRORS as exc:
            why, transient = type(exc).__name__, True
        else:
            if response.is_success:
                with self.database.transaction() as tx:
                    mark_sent(tx.conn, delivery.subscription_id, delivery.event_id)
                    # A disclosure on the owner's behalf, audited as its reads are.
                    record_event(
                        tx.conn,
                        f"token:{delivery.owner_token_id}",
                        "subscription.deliver",
                        f"{delivery.logical_id}/_history/{delivery.version}",
                        outcome=response.status_code,
                        acting_for=delivery.institution_code,
                        subscription=f"Subscription/{delivery.subscription_id}",
                        content=body is not None,
                    )
                self.sent += 1
                return None
            why = f"HTTP {response.status_code}"
            transient = response.status_code in TRANSIENT_STATUSES
            retry_after = _seconds(response.headers.get("Retry-After"))
        tries = delivery.attempts + 1
        # The endpoint is not logged: its query may carry the subscriber's secret.
        log.warning(
            "subscriptions: Subscription/%s, event %s: %s (try %d)",
            delivery.subscription_id,
            delivery.event_id,
            why,
            tries,
        )
        with self.database.transaction() as tx:
            if transient and tries < self.attempts:
                pause = max(retry_after, backoff(tries, self.backoff_base, self.backoff_most))
                at = datetime.now(UTC) + timedelta(seconds=pause)
                retry_later(tx.conn, delivery.subscription_id, delivery.event_id, at, why)
                return at
            mark_failed(tx.conn, delivery.subscription_id, delivery.event_id, why)
            set_status(
                tx.conn,
                delivery.subscription_id,
                "error",
                f"delivery of {delivery.logical_id}/_history/{delivery.version} failed after "
                f"{tries} attempt(s): {why}",
            )
        return datetime.now(UTC)


def _target(event: Any) -> tuple[UUID, str, str, str, int] | None:
    """Event id, institution, type, id and version of an accepted FHIR version (None for any
    other event: a CDA document, a delete, a rejection); ValueError when it is no event."""
    try:
        record = event.get("record") or {}
        if (
            event.get("type") != "record.accepted"
            or record.get("kind") != "fhir"
            or record.get("deleted")
        ):
            return None
        return (
            UUID(str(event["event_id"])),
            str(event["institution"]["code"]),
            str(record["resource_type"]),
            str(record["id"]),
            int(record["version"]),
        )
    except (AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"not a {SCHEMA} event: {type(exc).__name__} {exc}") from None


def _seconds(value: str | None) -> float:
    """A Retry-After given in seconds (a date is left to the backoff)."""
    if value is None or not value.strip().isdigit():
        return 0.0
    return min(float(value.strip()), 3600.0)
