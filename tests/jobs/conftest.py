"""Bulk job fixtures: a database with two hospitals and tokens of each role, and the app
without a broker (jobs worked by its own thread)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

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
    regulator: str


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def register(settings: Settings) -> Tokens:
    database = open_database(settings)
    try:
        with database.transaction() as tx:
            for code in ("H1", "H2"):
                add_institution(tx.conn, Institution(code, f"医院{code}", "hospital"), actor="t")

            def token(role: str, institution: str | None) -> str:
                return create_token(
                    tx.conn, role=role, institution_code=institution, label="", actor="t"
                )[1]

            return Tokens(
                token("submitter", "H1"),
                token("submitter", "H2"),
                token("admin", None),
                token("regulator", None),
            )
    finally:
        database.close()


@pytest.fixture
def bulk_settings(make_database: Callable[[], str], tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        database_url=make_database(), data_dir=tmp_path, secret_key=secrets.token_urlsafe(48)
    )


@pytest.fixture
def tokens(bulk_settings: Settings) -> Tokens:
    return register(bulk_settings)


@pytest.fixture
def client(bulk_settings: Settings, tokens: Tokens) -> Iterator[TestClient]:
    with TestClient(create_app(bulk_settings)) as test_client:
        yield test_client
