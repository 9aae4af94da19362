"""The subscription deliverer: a consumer of the ``hie.events`` exchange and a sender.

Why a consumer of the exchange rather than a Celery task reading the outbox: the relay is the one
ordered reader of the outbox (an advisory lock), and the exchange is the documented way for any
downstream system to follow accepted records, at least once with a stable event id. The
deliverer is such a consumer: its own durable quorum queue (``<HIE_TASK_QUEUE>.subscriptions``)
bound to ``record.accepted.#``, so events wait in RabbitMQ while it is down and nothing is taken
from other consumers.

Two loops, two threads:

- **match** (pika): events are taken in batches of up to ``batch`` (the prefetch; a batch is
  cut short when nothing more is waiting). For each accepted FHIR version, the active
  subscriptions on its type whose owner token may read its institution, matched by running
  their search restricted to the resource's id (one search per criteria and institution for the
  whole batch, ``_id`` listing the batch's resources, all in one round trip); a
  ``subscription_delivery`` row per match, all the batch's written in one transaction before
  its messages are acknowledged (at once, up to the last). The row's key (subscription, event
  id) makes a redelivered event a no-op.
- **send** (httpx): due deliveries are leased, sent (HAPI's shape: a payload PUT to
  ``<endpoint>/<Type>/<id>``, a notification POSTed to the endpoint; ``post`` on the channel's
  ``DELIVERY_EXTENSION`` POSTs a payload to the endpoint), and marked sent; a transient failure
  (connection errors, timeouts, 408, 429, 5xx) is tried again with a doubling pause, and after
  ``attempts`` tries (or at once for any other answer) the delivery fails and its subscription
  goes to status ``error`` with the reason (HAPI's behaviour). Sending apart from matching keeps
  a slow subscriber from holding up the queue. A deliverer that dies after a POST but before
  marking it sends that one again after the lease: a subscriber may see a repeat, never a gap.

It also takes ``requested`` subscriptions and makes them ``active``, and turns ``off`` those past
their ``end``.

Every request goes to an address checked against the endpoint policy (``endpoints.py``,
``HIE_SUBSCRIPTION_ENDPOINTS``) after DNS: the name is resolved here, each address checked, and
the request sent to the checked address itself, with the name kept in the Host header and as
the TLS server name (SNI and certificate check). Checking the resolved addresses and then
letting httpx resolve again would leave a window for DNS rebinding (the second answer
127.0.0.1); a custom httpcore network backend would do the same inside httpx, but httpx exposes
no public way to install one. Connections are not kept alive: the pool is keyed by address, so
a kept connection, verified for one name, could carry a request for another name at the same
address. Redirects are not followed (a 3xx is a failure, like any other answer): a redirect
would lead to an unchecked place. Environment proxies are not used, so nothing else resolves
the name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
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
    SubscriptionRow,
    active_subscriptions,
    add_deliveries,
    claim_due,
    end_subscriptions,
    hold_back,
    mark_failed,
    mark_sent,
    requested_subscriptions,
    retry_later,
    set_status,
)
from hie.subscriptions.endpoints import Address, EndpointPolicy, Resolver
from hie.subscriptions.model import (
    TRANSIENT_STATUSES,
    backoff,
    delivery_method,
    header_pairs,
    resource_url,
)
from hie.subscriptions.service import matching
from hie.workers.app import DELIVERY_LIMIT, queue_name

log = logging.getLogger(__name__)

QUEUE = "subscriptions"
BINDING = "record.accepted.#"
# An outage of RabbitMQ or PostgreSQL: wait and go on. Anything else is a bug and stops.
OUTAGES = (pika.exceptions.AMQPError, psycopg.OperationalError, OSError)
# A subscriber that could not be reached or did not answer in time: tried again.
TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# Headers of a subscription's channel.header that are the deliverer's to set.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


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
    endpoints: EndpointPolicy = field(default_factory=EndpointPolicy)  # HIE_SUBSCRIPTION_...
    resolver: Resolver = socket.getaddrinfo
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
            batch: list[Target] = []
            last: int | None = None  # the delivery tag of the batch's last event
            for method, _properties, body in channel.consume(
                self.queue, inactivity_timeout=self.idle
            ):
                if stop.is_set():
                    break
                if method is not None:
                    try:
                        target = _target(json.loads(body))
                    except ValueError as exc:
                        # Not an event of ours: to the dead letters, not round and round.
                        log.warning("subscriptions: unreadable event dead-lettered (%s)", exc)
                        channel.basic_reject(method.delivery_tag, requeue=False)
                    else:
                        if target is not None:
                            batch.append(target)
                        last = method.delivery_tag
                # Matched once the batch is full or nothing more has arrived: a lone event
                # waits for no other, a busy queue is matched prefetch events at a time.
                full = len(batch) >= self.batch
                if last is not None and (full or channel.get_waiting_message_count() == 0):
                    self.match(batch)
                    # After the commit, every event up to the last at once; a crash before it
                    # redelivers them, and their delivery rows are not written twice.
                    channel.basic_ack(last, multiple=True)
                    batch, last = [], None
            with contextlib.suppress(*OUTAGES):
                channel.cancel()
        finally:
            if broker.is_open:
                with contextlib.suppress(*OUTAGES):
                    broker.close()

    def handle(self, event: Any) -> int:
        """Record a delivery for each subscription the event's resource matches; how many are
        new (0 for an event seen before). ValueError for a body that is no event."""
        return self.handle_batch([event])

    def handle_batch(self, events: Sequence[Any]) -> int:
        """``handle`` for many events in one transaction. ValueError if any is no event."""
        return self.match([t for t in map(_target, events) if t is not None])

    def match(self, targets: Sequence[Target]) -> int:
        """A delivery for each subscription each target matches, in the order of the targets
        (so each record's versions stay in order), all in one transaction: the active
        subscriptions read once per type, every search in one round trip, the rows in one
        insert. How many are new."""
        if not targets:
            return 0
        by_type: dict[str, list[Target]] = {}
        for target in targets:
            by_type.setdefault(target.resource_type, []).append(target)
        with self.database.transaction() as tx:
            matched: dict[Target, list[SubscriptionRow]] = {}
            for resource_type, group in by_type.items():
                candidates = active_subscriptions(tx.conn, resource_type)
                if not candidates:
                    continue
                found = matching(
                    tx.conn,
                    self.zone,
                    candidates,
                    [(t.institution, t.resource_id) for t in group],
                )
                matched.update(zip(group, found, strict=True))
            rows = [
                NewDelivery(
                    subscription_id=subscription.id,
                    event_id=target.event_id,
                    institution_code=target.institution,
                    logical_id=f"{target.resource_type}/{target.resource_id}",
                    version=target.version,
                )
                for target in targets
                for subscription in matched.get(target, [])
            ]
            new = add_deliveries(tx.conn, rows)
        self.matched += new
        return new

    # -- sending ----------------------------------------------------------------------------

    def _send_until(self, stop: threading.Event) -> None:
        # Why no keep-alive, no redirects and no environment proxies: the module's docstring.
        with httpx.Client(
            timeout=self.timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            while not stop.is_set():
                self.activate()
                if self.send_due(client) == 0:
                    stop.wait(self.idle)

    def expire(self) -> list[str]:
        """Subscriptions past their ``end`` are turned off; their ids."""
        with self.database.transaction() as tx:
            ended = end_subscriptions(tx.conn)
        for subscription_id in ended:
            log.info("subscriptions: Subscription/%s reached its end: off", subscription_id)
        return ended

    def activate(self) -> int:
        """Requested subscriptions become active (their criteria were checked on write), after
        those past their end are turned off."""
        self.expire()
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

    def _request(self, delivery: Due) -> tuple[str, str, dict[str, str], bytes | None]:
        """Method, URL, headers and body of one delivery, in HAPI's shape unless the channel
        asks for a POST."""
        headers = {
            name: value
            for name, value in header_pairs(delivery.headers).items()
            if name.lower() not in _OWN_HEADERS
        }
        body = self._body(delivery)
        if body is None:  # a notification (or a version no longer stored): POST, no body
            return "POST", delivery.endpoint, headers, None
        headers["Content-Type"] = f"{delivery.payload}; charset=utf-8"
        if delivery_method(delivery.extensions) == "post":
            return "POST", delivery.endpoint, headers, body
        return "PUT", resource_url(delivery.endpoint, delivery.logical_id), headers, body

    def _attempt(
        self,
        client: httpx.Client,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
    ) -> httpx.Response | tuple[str, bool]:
        """The subscriber's answer, or why there is none and whether that may pass."""
        try:
            addresses, refused = self.endpoints.resolve(url, self.resolver)
        except (OSError, UnicodeError) as exc:  # socket.gaierror: no answer from DNS (yet)
            return f"DNS: {exc}", True
        if refused is not None:
            return refused, False  # the policy, or what the name now resolves to: for good
        try:
            return _pinned(client, method, url, addresses, headers, body)
        except TRANSIENT_ERRORS as exc:
            return type(exc).__name__, True

    def _send(self, client: httpx.Client, delivery: Due) -> datetime | None:
        """Send one delivery and record the outcome. None when it was sent; else when the
        subscriber's other deliveries are due again (after a failure for good, at once: its
        subscription is in error and no longer claimed)."""
        method, url, headers, body = self._request(delivery)
        retry_after = 0.0
        answer = self._attempt(client, method, url, headers, body)
        if isinstance(answer, tuple):
            why, transient = answer
        else:
            response = answer
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


def _pinned(
    client: httpx.Client,
    method: str,
    url: str,
    addresses: list[Address],
    headers: dict[str, str],
    body: bytes | None,
) -> httpx.Response:
    """The request sent to one of the checked ``addresses`` (the next on a refused connection),
    the URL's host kept as the Host header and the TLS server name."""
    target = httpx.URL(url)
    host = target.raw_host.decode("ascii")
    named = f"[{host}]" if ":" in host else host
    headers = {**headers, "Host": named if target.port is None else f"{named}:{target.port}"}
    extensions = {"sni_hostname": host} if target.scheme == "https" else {}
    for n, address in enumerate(addresses):
        try:
            return client.request(
                method,
                target.copy_with(host=str(address)),
                content=body or b"",
                headers=headers,
                extensions=extensions,
            )
        except httpx.ConnectError:
            if n == len(addresses) - 1:
                raise
    raise httpx.ConnectError("no address")  # cannot be: resolve returns at least one


class Target(NamedTuple):
    """What matching needs of an accepted FHIR version's event."""

    event_id: UUID
    institution: str
    resource_type: str
    resource_id: str
    version: int


def _target(event: Any) -> Target | None:
    """The target of an accepted FHIR version's event (None for any other event: a CDA
    document, a delete, a rejection); ValueError when it is no event."""
    try:
        record = event.get("record") or {}
        if (
            event.get("type") != "record.accepted"
            or record.get("kind") != "fhir"
            or record.get("deleted")
        ):
            return None
        return Target(
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
