"""Events on the real RabbitMQ: each test has an exchange of its own, so parallel runs of the
suite never see each other's events."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from pydantic import SecretStr

from hie.config import Settings
from hie.events.broker import connection_parameters, declare_exchange


@pytest.fixture
def event_settings(settings: Settings, broker_url: str) -> Settings:
    return settings.model_copy(
        update={
            "broker_url": SecretStr(broker_url),
            "events_exchange": f"hie.events.test.{uuid.uuid4().hex}",
        }
    )


class Consumer:
    """A queue of the test's own bound to its exchange, read after the fact."""

    def __init__(self, settings: Settings, key: str = "record.#") -> None:
        assert settings.broker_url is not None
        self.exchange = settings.events_exchange
        self.connection = pika.BlockingConnection(
            connection_parameters(settings.broker_url.get_secret_value())
        )
        self.channel = self.connection.channel()
        declare_exchange(self.channel, self.exchange)
        self.queue = self.channel.queue_declare(queue="", exclusive=True).method.queue
        self.channel.queue_bind(queue=self.queue, exchange=self.exchange, routing_key=key)

    def drain(self) -> list[tuple[str, Any, dict[str, Any]]]:
        """Every message waiting: (routing key, properties, body)."""
        out = []
        while True:
            method, properties, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                return out
            out.append((method.routing_key, properties, json.loads(body)))

    def close(self) -> None:
        if self.connection.is_open:
            self.channel.exchange_delete(self.exchange)
            self.connection.close()


@pytest.fixture
def consumer(event_settings: Settings) -> Iterator[Consumer]:
    c = Consumer(event_settings)
    yield c
    c.close()


def hie_env(settings: Settings) -> dict[str, str]:
    """The environment of a `hie` process on the test's database and exchange."""
    assert settings.database_url is not None and settings.broker_url is not None
    return {
        **os.environ,
        "HIE_DATABASE_URL": settings.database_url.get_secret_value(),
        "HIE_BROKER_URL": settings.broker_url.get_secret_value(),
        "HIE_EVENTS_EXCHANGE": settings.events_exchange,
        "HIE_DATA_DIR": str(settings.data_dir),
        "PYTHONUNBUFFERED": "1",
    }


HIE = [sys.executable, "-m", "hie"]
