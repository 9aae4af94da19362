"""RabbitMQ unreachable (a broker URL on a closed port): queueing a report computation is
answered 503 with Retry-After, and /healthz names the broker as what is down."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hie.app import create_app
from hie.config import Settings
from hie.server import BackgroundServer, free_port
from hie.storage import open_database
from hie.storage.tokens import create_token
from hie.workers import configure

pytestmark = pytest.mark.fault


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    settings = Settings(
        database_url=database_url,
        # Nothing listens there: connections are refused at once.
        broker_url=f"amqp://guest:guest@127.0.0.1:{free_port()}//",
        data_dir=tmp_path,
        secret_key=secrets.token_urlsafe(48),
    )
    database = open_database(settings)
    with database.transaction() as tx:
        _, token = create_token(tx.conn, role="admin", institution_code=None, label="", actor="t")
    database.close()
    try:
        with BackgroundServer(create_app(settings)) as server:
            yield server.url, token
    finally:
        configure(Settings(data_dir=tmp_path))  # later tests get the in-process Celery again


def test_queueing_a_task_without_a_broker_is_answered_503(platform: tuple[str, str]) -> None:
    url, token = platform
    # The client's timeout: each answer comes within 5 s.
    with httpx.Client(base_url=url, timeout=5) as client:
        answer = client.post(
            "/api/reports/completeness/compute",
            params={"month": "2026-11"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["Retry-After"]) > 0
        issue = answer.json()["issue"][0]
        assert issue["code"] == "transient" and "broker" in issue["diagnostics"]
        assert "amqp://" not in answer.text and "guest" not in answer.text

        health = client.get("/healthz")
    assert health.status_code == 503
    body = health.json()
    assert body["unavailable"] == ["broker"]
    assert body["broker"]["status"] == "unavailable" and body["database"]["status"] == "ok"
