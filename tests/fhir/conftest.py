"""FHIR API fixtures: one migrated database per module with two hospitals and tokens, the app
under TestClient, and the same app on a real uvicorn server on a free local port."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings
from hie.server import BackgroundServer
from tests.hospitals import Tokens, register_hospitals


@pytest.fixture(scope="module")
def fhir_settings(
    make_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return Settings(
        database_url=make_database(),
        data_dir=tmp_path_factory.mktemp("fhir"),
        secret_key=secrets.token_urlsafe(48),
        max_bundle_entries=500,
        db_pool_max=12,
    )


@pytest.fixture(scope="module")
def tokens(fhir_settings: Settings) -> Tokens:
    return register_hospitals(fhir_settings)


@pytest.fixture(scope="module")
def client(fhir_settings: Settings, tokens: Tokens) -> Iterator[TestClient]:
    with TestClient(create_app(fhir_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def live_server(fhir_settings: Settings, tokens: Tokens) -> Iterator[str]:
    """The app on uvicorn at 127.0.0.1:<free port>; yields the FHIR base URL."""
    with BackgroundServer(create_app(fhir_settings)) as server:
        yield f"{server.url}/fhir"


def example(path: Path) -> bytes:
    return path.read_bytes()
