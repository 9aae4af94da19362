"""Bulk job fixtures: a database with two hospitals and tokens of each role, and the app
without a broker (jobs worked by its own thread)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings
from tests.hospitals import Tokens, register_hospitals


@pytest.fixture
def bulk_settings(make_database: Callable[[], str], tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        database_url=make_database(), data_dir=tmp_path, secret_key=secrets.token_urlsafe(48)
    )


@pytest.fixture
def tokens(bulk_settings: Settings) -> Tokens:
    return register_hospitals(bulk_settings)


@pytest.fixture
def client(bulk_settings: Settings, tokens: Tokens) -> Iterator[TestClient]:
    with TestClient(create_app(bulk_settings)) as test_client:
        yield test_client
