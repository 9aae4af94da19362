"""Subscriptions end to end on the real RabbitMQ: the relay and the deliverer as `hie` processes,
records posted by two hospitals, a subscriber (an HTTP server in a thread) answering 500 once.
Each matching create arrives once, nothing from the institution the token cannot read, and
events published again (a relay that died before marking them) deliver nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pika
import pika.exceptions
import pytest
from fastapi.testclient import TestClient

from hie.config import Settings
from hie.events.broker import connection_parameters
from hie.storage import open_database
from tests.hospitals import Tokens, auth
from tests.subscriptions.conftest import Subscriber, observation, subscription

HIE = [sys.executable, "-m", "hie"]
HEART_RATE = "http://loinc.org|8867-4"


@pytest.fixture
def process_settings(sub_settings: Settings, queue_prefix: str) -> Iterator[Settings]:
    """The test's own exchange and queue prefix; both removed afterwards (the prefix's queues by
    ``queue_prefix``, the exchange here)."""
    settings = sub_settings.model_copy(
        update={
            "task_queue": queue_prefix,
            "events_exchange": f"hie.events.test.{uuid.uuid4().hex}",
        }
    )
    yield settings
    assert settings.broker_url is not None
    connection = pika.BlockingConnection(
        connection_parameters(settings.broker_url.get_secret_value())
    )
    try:
        connection.channel().exchange_delete(settings.events_exchange)
    finally:
        connection.close()


def env_of(settings: Settings) -> dict[str, str]:
    assert settings.database_url is not None and settings.broker_url is not None
    return {
        **os.environ,
        "HIE_DATABASE_URL": settings.database_url.get_secret_value(),
        "HIE_BROKER_URL": settings.broker_url.get_secret_value(),
        "HIE_EVENTS_EXCHANGE": settings.events_exchange,
        "HIE_TASK_QUEUE": settings.task_queue,
        "HIE_SUBSCRIPTION_ENDPOINTS": ",".join(settings.subscription_endpoints),
        "HIE_DATA_DIR": str(settings.data_dir),
        "PYTHONUNBUFFERED": "1",
    }


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.1)


def consumers(settings: Settings, queue: str) -> int:
    assert settings.broker_url is not None
    connection = pika.BlockingConnection(
        connection_parameters(settings.broker_url.get_secret_value())
    )
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.consumer_count)
    except pika.exceptions.ChannelClosedByBroker:  # not declared yet
        return 0
    finally:
        if connection.is_open:
            connection.close()


def test_each_matching_create_arrives_once_and_only_what_the_token_may_read(
    process_settings: Settings, client: TestClient, tokens: Tokens, subscriber: Subscriber
) -> None:
    env = env_of(process_settings)
    deliverer = subprocess.Popen([*HIE, "subscriptions", "deliver", "--backoff", "0.2"], env=env)
    relay = None
    try:
        wait_for(
            lambda: consumers(process_settings, f"{process_settings.task_queue}.subscriptions") > 0
        )
        ids = {}
        for name, token in (("h1", tokens.h1), ("admin", tokens.admin)):
            body = subscription(f"{subscriber.url}/{name}", f"Observation?code={HEART_RATE}")
            answer = client.post("/fhir/Subscription", json=body, headers=auth(token))
            ids[name] = answer.json()["id"]

        def active() -> bool:
            return all(
                client.get(f"/fhir/Subscription/{sid}", headers=auth(tokens.admin)).json()["status"]
                == "active"
                for sid in ids.values()
            )

        wait_for(active)
        subscriber.fail = 1
        posted: dict[str, list[str]] = {"H1": [], "H2": []}
        for institution, token in (("H1", tokens.h1), ("H2", tokens.h2)):
            for n, code in enumerate(["8867-4", "8310-5", "8867-4", "8867-4", "8302-2"]):
                resource = observation(code, f"{institution}-{n}")
                answer = client.post("/fhir/Observation", json=resource, headers=auth(token))
                assert answer.status_code == 201, answer.text
                if code == "8867-4":
                    posted[institution].append(answer.json()["id"])
        relay = subprocess.Popen([*HIE, "events", "relay"], env=env)

        def got(path: str) -> list[str]:
            return sorted(b["id"] for b in subscriber.bodies(path))

        wait_for(lambda: len(got("/h1")) >= 3 and len(got("/admin")) >= 6)

        # The relay publishes every event again (as after a crash before marking them); a last
        # matching record, behind them in the queue, shows when they have all been handled.
        assert process_settings.database_url is not None
        database = open_database(process_settings)
        try:
            with database.transaction() as tx:
                tx.conn.execute("update event_outbox set published_at = null")
        finally:
            database.close()
        last = client.post(
            "/fhir/Observation", json=observation("8867-4", "last"), headers=auth(tokens.h1)
        ).json()["id"]
        posted["H1"].append(last)
        wait_for(lambda: last in got("/h1") and last in got("/admin"))

        assert got("/h1") == sorted(posted["H1"])  # once each, nothing of H2
        assert got("/admin") == sorted(posted["H1"] + posted["H2"])
        assert all(b["resourceType"] == "Observation" for b in subscriber.bodies("/admin"))

        listed = subprocess.run(
            [*HIE, "subscriptions", "list", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        states = {s["id"]: (s["status"], s["deliveries"]) for s in json.loads(listed)}
        assert states == {
            ids["h1"]: ("active", {"sent": 4}),
            ids["admin"]: ("active", {"sent": 7}),
        }
    finally:
        for process in (relay, deliverer):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (relay, deliverer):
            if process is not None:
                try:
                    assert process.wait(timeout=30) == 0
                except subprocess.TimeoutExpired:
                    process.kill()
                    raise
