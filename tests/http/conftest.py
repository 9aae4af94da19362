"""Fixtures of the hostile-input suite: one migrated database per module with a hospital that
declared C0001 and C0002, an admin and a submitter token, and the app under TestClient with
server errors answered (not raised), as a client would see them."""

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
from hie.storage.declarations import set_declaration
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token

GULOU = "455755678"  # the custodian of the CDA fixtures


@dataclass(frozen=True)
class Tokens:
    admin: str
    submitter: str
    regulator: str


@pytest.fixture(scope="module")
def hostile_settings(
    make_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return Settings(
        database_url=make_database(),
        data_dir=tmp_path_factory.mktemp("hostile"),
        secret_key=secrets.token_urlsafe(48),
    )


@pytest.fixture(scope="module")
def tokens(hostile_settings: Settings) -> Tokens:
    database = open_database(hostile_settings)
    try:
        with database.transaction() as tx:
            add_institution(tx.conn, Institution(GULOU, "南京鼓楼医院", "hospital"), actor="t")
            set_declaration(tx.conn, GULOU, ["C0001", "C0002"], actor="t")

            def token(role: str, institution: str | None) -> str:
                return create_token(
                    tx.conn, role=role, institution_code=institution, label="", actor="t"
                )[1]

            return Tokens(token("admin", None), token("submitter", GULOU), token("regulator", None))
    finally:
        database.close()


@pytest.fixture(scope="module")
def client(hostile_settings: Settings, tokens: Tokens) -> Iterator[TestClient]:
    with TestClient(create_app(hostile_settings), raise_server_exceptions=False) as test_client:
        yield test_client


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}
