"""Subscription fixtures: a database with hospitals H1 and H2, a submitter token each and an
admin token; the app under TestClient with a broker configured (the API refuses Subscriptions
without one); a subscriber (an HTTP server in a thread) that records what it is sent."""

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
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token


@dataclass(frozen=True)
class Tokens:
    h1: str
    h2: str
    admin: str


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def sub_settings(settings: Settings, broker_url: str) -> Settings:
    return settings.model_copy(update={"broker_url": SecretStr(broker_url)})


@pytest.fixture
def tokens(sub_settings: Settings) -> Tokens:
    database = open_database(sub_settings)
    try:
        with database.transaction() as tx:
            for code in ("H1", "H2"):
                add_institution(tx.conn, Institution(code, f"医院{code}", "hospital"), actor="t")

            def token(role: str, institution: str | None) -> str:
                return create_token(
                    tx.conn, role=role, institution_code=institution, label="", actor="t"
                )[1]

            return Tokens(token("submitter", "H1"), token("submitter", "H2"), token("admin", None))
    finally:
        database.close()


@pytest.fixture
def client(sub_settings: Settings, tokens: Tokens) -> Iterator[TestClient]:
    with TestClient(create_app(sub_settings)) as test_client:
        yield test_client


def subscription(
    endpoint: str,
    criteria: str = "Observation?code=http://loinc.org|8867-4",
    *,
    payload: bool = True,
    headers: tuple[str, ...] = (),
) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint}
    if payload:
        channel["payload"] = "application/fhir+json"
    if headers:
        channel["header"] = list(headers)
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "tests",
        "criteria": criteria,
        "channel": channel,
    }


def observation(code: str, tag: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "identifier": [{"system": "urn:test", "value": tag}],
    }


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Subscriber:
    """What a subscriber was sent; ``fail`` answers the next that many requests with 500."""

    url: str
    received: list[Received] = field(default_factory=list)
    fail: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str) -> list[Any]:
        with self.lock:
            return [r.body for r in self.received if r.path == path]


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
                    state.received.append(Received(self.path, dict(self.headers), body))
            self.send_response(500 if failing else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

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
