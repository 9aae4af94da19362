"""Each destination's RabbitMQ queue: durable, quorum, named from ``HIE_TASK_QUEUE`` and the
destination's name, bound to the events exchange for the tables it forwards. One queue per
destination: a slow or dead upstream lets its own queue grow and holds up no other."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from hie.events.broker import connection_parameters, declare_exchange
from hie.events.model import routing_segment


def queue_of(prefix: str, destination: str) -> str:
    return f"{prefix}.forward.{destination}"


def binding_keys(tables: tuple[str, ...] | None) -> list[str]:
    """The accepted records of these tables, from institutions of any kind (all: None)."""
    if tables is None:
        return ["record.accepted.#"]
    return [f"record.accepted.*.{routing_segment(t)}" for t in tables]


def declare_queue(
    channel: BlockingChannel, exchange: str, queue: str, tables: tuple[str, ...] | None
) -> None:
    """The destination's queue and bindings (the same declaration from every process)."""
    declare_exchange(channel, exchange)
    # A single active consumer: a second forwarder stands by instead of taking every other
    # message, which would break each record's order.
    arguments = {"x-queue-type": "quorum", "x-single-active-consumer": True}
    channel.queue_declare(queue=queue, durable=True, arguments=arguments)
    for key in binding_keys(tables):
        channel.queue_bind(queue=queue, exchange=exchange, routing_key=key)


def declare(broker_url: str, exchange: str, queue: str, tables: tuple[str, ...] | None) -> None:
    """Declare a destination's queue now (``hie forward add``): events are kept from this
    moment on, even before a forwarder runs."""
    broker = pika.BlockingConnection(connection_parameters(broker_url))
    try:
        declare_queue(broker.channel(), exchange, queue, tables)
    finally:
        broker.close()


def delete(broker_url: str, queue: str) -> None:
    """Delete a removed destination's queue and the events waiting in it."""
    broker = pika.BlockingConnection(connection_parameters(broker_url))
    try:
        broker.channel().queue_delete(queue=queue)
    finally:
        broker.close()


def waiting(broker_url: str, queues: Sequence[str], *, timeout: float = 3.0) -> dict[str, int]:
    """Messages in each queue not yet handed to a forwarder (passive declares); a queue that
    does not exist is left out, an unreachable broker gives nothing."""
    out: dict[str, int] = {}
    with contextlib.suppress(pika.exceptions.AMQPError, OSError):
        broker = pika.BlockingConnection(connection_parameters(broker_url, timeout=timeout))
        try:
            for queue in queues:
                try:
                    channel = broker.channel()
                    ok = channel.queue_declare(queue=queue, passive=True)
                    out[queue] = int(ok.method.message_count)
                    channel.close()
                except pika.exceptions.ChannelClosedByBroker:
                    continue  # 404: no such queue (its channel is closed by the broker)
        finally:
            if broker.is_open:
                broker.close()
    return out


def republish(broker_url: str, queue: str, bodies: Sequence[dict[str, Any]]) -> None:
    """Put events straight into one destination's queue (the default exchange), with publisher
    confirms: ``hie forward retry``."""
    broker = pika.BlockingConnection(connection_parameters(broker_url))
    try:
        channel = broker.channel()
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish(
                exchange="",
                routing_key=queue,
                body=json.dumps(body, ensure_ascii=False).encode(),
                properties=pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=body["event_id"],
                    type=body["type"],
                ),
                mandatory=True,  # no queue (a removed destination): an error, not a silent drop
            )
    finally:
        broker.close()
