"""A city platform with records and their events on a RabbitMQ exchange of the test's own, and
a fake upstream FHIR server that records what it is sent."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pika
import pytest
from pydantic import SecretStr

from hie.config import Settings
from hie.events.broker import connection_parameters
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token

HOSPITAL = "455755678"  # the custodian of the CDA fixtures


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Upstream:
    """An HTTP server answering as ``answer`` says; every request kept in ``seen``."""

    answer: Callable[[Seen], tuple[int, dict[str, Any] | None]]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    fake = Upstream(answer=lambda seen: (201, None))

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            seen = Seen(
                self.command,
                parts.path.removeprefix("/fhir/").removeprefix("/fhir"),
                parse_qs(parts.query),
                dict(self.headers.items()),
                json.loads(raw) if raw else None,
            )
            fake.seen.append(seen)
            status, body = fake.answer(seen)
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            if status == 201 and seen.path:
                self.send_header("Location", f"{fake.url}/{seen.path}/1/_history/1")
            self.end_headers()
            self.wfile.write(data)

        do_PUT = do_POST = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def city(settings: Settings, broker_url: str, queue_prefix: str) -> Iterator[Settings]:
    """A platform with one hospital, on RabbitMQ with an exchange of its own (removed after,
    with the forwarding queues the test made under ``queue_prefix``)."""
    exchange = f"hie.events.test.{uuid.uuid4().hex}"
    database = open_database(settings)
    with database.transaction() as tx:
        add_institution(tx.conn, Institution(HOSPITAL, "南京鼓楼医院", "hospital"), actor="t")
    database.close()
    yield settings.model_copy(
        update={
            "broker_url": SecretStr(broker_url),
            "events_exchange": exchange,
            "task_queue": queue_prefix,
        }
    )
    connection = pika.BlockingConnection(connection_parameters(broker_url))
    channel = connection.channel()
    for name in ("province", "dead", "slow", "cli"):
        channel.queue_delete(queue=f"{queue_prefix}.forward.{name}")
    channel.exchange_delete(exchange=exchange)
    connection.close()


def admin_token(settings: Settings, role: str = "admin") -> str:
    """A token of ``role`` (a submitter's is the hospital's)."""
    code = HOSPITAL if role == "submitter" else None
    database = open_database(settings)
    try:
        with database.transaction() as tx:
            return create_token(tx.conn, role=role, institution_code=code, label="", actor="t")[1]
    finally:
        database.close()
