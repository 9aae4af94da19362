"""Subscription fixtures: a database with hospitals H1 and H2 and their tokens
(tests/hospitals.py); the app under TestClient with a broker configured (the API refuses
Subscriptions without one) and an endpoint allow-list naming the local subscriber (http on
127.0.0.1) and ``subscriber.example.org``; a subscriber (an HTTP server in a thread) that
records what it is sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hie.app import create_app
from hie.config import Settings
from hie.storage import Database, open_database
from hie.subscriptions.deliverer import Deliverer
from hie.subscriptions.model import DELIVERY_EXTENSION
from tests.hospitals import Tokens, register_hospitals

ENDPOINTS = ("http://127.0.0.1", "https://subscriber.example.org/")


@pytest.fixture
def sub_settings(settings: Settings, broker_url: str) -> Settings:
    return settings.model_copy(
        update={"broker_url": SecretStr(broker_url), "subscription_endpoints": ENDPOINTS}
    )


@pytest.fixture
def tokens(sub_settings: Settings) -> Tokens:
    return register_hospitals(sub_settings)


@pytest.fixture
def client(sub_settings: Settings, tokens: Tokens) -> Iterator[TestClient]:
    with TestClient(create_app(sub_settings)) as test_client:
        yield test_client


@pytest.fixture
def database(sub_settings: Settings) -> Iterator[Database]:
    db = open_database(sub_settings)
    yield db
    db.close()


@pytest.fixture
def deliverer(database: Database, sub_settings: Settings) -> Deliverer:
    assert sub_settings.broker_url is not None
    return Deliverer(
        database,
        sub_settings.broker_url.get_secret_value(),
        sub_settings.zone,
        endpoints=sub_settings.endpoint_policy,
        backoff_base=0.05,
        attempts=3,
    )


def subscription(
    endpoint: str,
    criteria: str = "Observation?code=http://loinc.org|8867-4",
    *,
    payload: bool = True,
    headers: tuple[str, ...] = (),
    method: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint}
    if payload:
        channel["payload"] = "application/fhir+json"
    if headers:
        channel["header"] = list(headers)
    if method is not None:
        channel["extension"] = [{"url": DELIVERY_EXTENSION, "valueCode": method}]
    body = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "tests",
        "criteria": criteria,
        "channel": channel,
    }
    if end is not None:
        body["end"] = end
    return body


def observation(code: str, tag: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "identifier": [{"system": "urn:test", "value": tag}],
    }


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Subscriber:
    """What a subscriber was sent; ``fail`` answers the next that many requests with 500 (or
    with ``failure``)."""

    url: str
    received: list[Received] = field(default_factory=list)
    fail: int = 0
    failure: int = 500
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str) -> list[Any]:
        """What arrived at ``path`` or below it (a payload is PUT to <path>/<Type>/<id>)."""
        with self.lock:
            return [r.body for r in self.received if r.path.split("/")[:2] == path.split("/")]


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    state = Subscriber("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                failing = state.fail > 0
                state.fail -= failing
                if not failing:
                    body = json.loads(data, parse_float=Decimal) if data else None
                    state.received.append(
                        Received(self.command, self.path, dict(self.headers), body)
                    )
            self.send_response(state.failure if failing else 200)
            if failing and 300 <= state.failure < 400:
                self.send_header("Location", f"{state.url}/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_POST

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
