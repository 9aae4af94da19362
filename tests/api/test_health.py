"""/healthz answers without a token and tells the database's and the broker's state."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings


def test_healthz_reports_database_and_in_process_broker(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok" and body["database"]["schema_version"] >= 1
    assert body["broker"] == {"status": "ok", "mode": "in-process"}


def test_healthz_is_503_when_the_broker_is_down(database_url: str, tmp_path: Path) -> None:
    # Nothing listens on port 1 of the loopback address.
    settings = Settings(
        database_url=database_url,
        broker_url="amqp://guest:guest@127.0.0.1:1//",
        data_dir=tmp_path,
        secret_key=secrets.token_urlsafe(48),
    )
    try:
        with TestClient(create_app(settings)) as client:
            response = client.get("/healthz")
    finally:
        from hie.workers import configure

        configure(Settings(data_dir=tmp_path))
    assert response.status_code == 503
    assert response.json()["broker"]["status"] == "unavailable"
    assert response.json()["database"]["status"] == "ok"


def test_the_app_refuses_to_start_without_a_secret_outside_development(database_url: str) -> None:
    import pytest

    from hie.errors import ConfigError

    with pytest.raises(ConfigError, match="HIE_SECRET_KEY"):
        create_app(Settings(database_url=database_url))
