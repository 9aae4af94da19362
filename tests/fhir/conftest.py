"""FHIR API fixtures: one migrated database per module with two hospitals and tokens, the app
under TestClient, and the same app on a real uvicorn server on a free local port."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings
from hie.registry import Institution
from hie.server import BackgroundServer
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
    """Hospitals H1 and H2 with a submitter token each, an admin and a regulator token."""
    database = open_database(fhir_settings)
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
