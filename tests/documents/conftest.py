"""Two hospitals (A, the custodian of the CDA fixtures, and B), tokens of each role, and the app
under TestClient on a database of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token

A = "455755678"  # 南京鼓楼医院, the custodian of tests/fixtures/cda
B = "455755679"
# 陈静, the resident of C0053-valid.xml, by her resident ID number and her health card.
CHEN = "urn:oid:2.16.156.10011.1.3|320113198906300623"
CHEN_CARD = "urn:oid:2.16.156.10011.1.19|H32011300045678"


@dataclass(frozen=True)
class Tokens:
    a: str
    b: str
    admin: str
    regulator: str
    clinician_b: str


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


@pytest.fixture
def tokens(settings: Settings) -> Tokens:
    database = open_database(settings)
    try:
        with database.transaction() as tx:
            add_institution(tx.conn, Institution(A, "南京鼓楼医院", "hospital"), actor="t")
            add_institution(tx.conn, Institution(B, "医院乙", "hospital"), actor="t")

            def token(role: str, institution: str | None) -> str:
                return create_token(
                    tx.conn, role=role, institution_code=institution, label="", actor="t"
                )[1]

            return Tokens(
                token("submitter", A),
                token("submitter", B),
                token("admin", None),
                token("regulator", None),
                token("clinician", B),
            )
    finally:
        database.close()


@pytest.fixture
def client(settings: Settings, tokens: Tokens) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
