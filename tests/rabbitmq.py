"""Leave the shared RabbitMQ as a test found it.

Each test platform declares quorum queues and exchanges of its own (``HIE_TASK_QUEUE`` as
prefix). Left behind, they pile up across runs, and a broker recovering hundreds of quorum
queues stops completing handshakes, so every fixture that makes a prefix removes it."""

from __future__ import annotations

from kombu import Connection

from hie.workers.app import QUEUES, queue_name


def remove_queues(broker_url: str, prefix: str) -> None:
    # "subscriptions": the subscription deliverer's queue of events (hie/subscriptions).
    names = [queue_name(prefix, q) for q in (*QUEUES, "subscriptions", "dead")]
    with Connection(broker_url, connect_timeout=10) as connection:
        channel = connection.default_channel
        for name in names:
            channel.queue_delete(name)
            channel.exchange_delete(name)
