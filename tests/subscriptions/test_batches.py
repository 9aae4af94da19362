"""The deliverer's consumer on the real RabbitMQ: events waiting in its queue, an unreadable one
among them, are matched as a batch and all settled (acked after the commit, the unreadable one
dead-lettered), and the same events published again add no delivery."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pika
import pytest
from fastapi.testclient import TestClient

from hie.events.broker import connection_parameters, declare_exchange
from hie.storage import Database
from hie.subscriptions.deliverer import BINDING, Deliverer, queue_arguments
from tests.hospitals import Tokens
from tests.subscriptions.test_matching import (
    BODY_TEMPERATURE,
    HEART_RATE,
    events,
    post,
    subscribe,
)


@pytest.fixture
def consumer(deliverer: Deliverer, queue_prefix: str) -> Iterator[Deliverer]:
    """The deliverer on a queue prefix and an exchange of the test's own, the exchange removed
    afterwards (the queues by ``queue_prefix``)."""
    own = replace(deliverer, prefix=queue_prefix, exchange=f"hie.events.test.{uuid.uuid4().hex}")
    yield own
    connection = pika.BlockingConnection(connection_parameters(own.broker_url))
    try:
        connection.channel().exchange_delete(own.exchange)
    finally:
        connection.close()


def publish(deliverer: Deliverer, bodies: list[bytes]) -> None:
    """The bodies published to the deliverer's exchange, its queue declared (as it declares it)
    so that they wait there."""
    connection = pika.BlockingConnection(connection_parameters(deliverer.broker_url))
    try:
        channel = connection.channel()
        declare_exchange(channel, deliverer.exchange)
        channel.queue_declare(
            deliverer.queue, durable=True, arguments=queue_arguments(deliverer.prefix)
        )
        channel.queue_bind(deliverer.queue, deliverer.exchange, routing_key=BINDING)
        for body in bodies:
            channel.basic_publish(deliverer.exchange, "record.accepted.hospital.fhir", body)
    finally:
        connection.close()


def waiting(deliverer: Deliverer) -> int:
    connection = pika.BlockingConnection(connection_parameters(deliverer.broker_url))
    try:
        declared = connection.channel().queue_declare(deliverer.queue, passive=True)
        return int(declared.method.message_count)
    finally:
        connection.close()


def deliveries(database: Database) -> int:
    with database.connection() as conn:
        row = conn.execute("select count(*) as n from subscription_delivery").fetchone()
    return int(row["n"]) if row else 0


def running(deliverer: Deliverer, done: Callable[[], bool]) -> None:
    """Run the deliverer until ``done``, then stop it (its unacked messages go back)."""
    stop = threading.Event()
    thread = threading.Thread(target=deliverer.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not done():
            assert time.monotonic() < deadline, "gave up waiting"
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(30)


def test_queued_events_are_matched_as_a_batch_and_all_settled(
    client: TestClient, tokens: Tokens, database: Database, consumer: Deliverer
) -> None:
    # Endpoints nobody listens on: only the matching is looked at here.
    subscribe(client, tokens.h1, "http://127.0.0.1:9/h1", HEART_RATE)
    subscribe(client, tokens.h2, "http://127.0.0.1:9/h2", HEART_RATE)
    subscribe(client, tokens.admin, "http://127.0.0.1:9/admin", BODY_TEMPERATURE)
    assert consumer.activate() == 3
    post(client, tokens.h1, HEART_RATE, "a")
    post(client, tokens.h1, BODY_TEMPERATURE, "b")
    post(client, tokens.h2, HEART_RATE, "c")
    post(client, tokens.h2, "29463-7", "d")  # nobody's criteria
    bodies: list[Any] = [json.dumps(e).encode() for e in events(database)]
    publish(consumer, [*bodies[:2], b"not an event", *bodies[2:]])

    # h1: a; h2: c; admin: b. All settled: nothing back in the queue once the consumer stops.
    running(consumer, lambda: deliveries(database) == 3 and waiting(consumer) == 0)
    assert waiting(consumer) == 0 and deliveries(database) == 3

    publish(consumer, bodies)  # published again: matched, acked, nothing added
    running(consumer, lambda: waiting(consumer) == 0)
    assert waiting(consumer) == 0 and deliveries(database) == 3
