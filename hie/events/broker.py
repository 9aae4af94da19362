"""The RabbitMQ side of events, on pika: connection parameters from ``HIE_BROKER_URL`` (written
for Celery) and the ``hie.events`` exchange."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pika
from pika.adapters.blocking_connection import BlockingChannel

# Celery's transport names for the same AMQP 0-9-1 server.
_AMQP_SCHEMES = {"amqp": "amqp", "pyamqp": "amqp", "librabbitmq": "amqp", "amqps": "amqps"}


def connection_parameters(broker_url: str, *, timeout: float = 10.0) -> pika.URLParameters:
    """pika's parameters for a Celery broker URL (``pyamqp://``; ``//`` is the default vhost)."""
    parts = urlsplit(broker_url)
    scheme = _AMQP_SCHEMES.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"events need an AMQP broker, not {parts.scheme!r}")
    params = pika.URLParameters(urlunsplit(parts._replace(scheme=scheme)))
    if params.virtual_host in ("", "/"):
        params.virtual_host = "/"
    params.socket_timeout = timeout
    params.blocked_connection_timeout = 60
    params.connection_attempts = 1
    return params


def declare_exchange(channel: BlockingChannel, exchange: str) -> None:
    """The durable topic exchange events go to (declared by whoever comes first, the same way)."""
    channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
