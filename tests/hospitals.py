"""Hospitals H1 and H2 with a submitter token each, an admin and a regulator token: what the
API tests of several domains call with."""

from __future__ import annotations

from dataclasses import dataclass

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


def register_hospitals(settings: Settings) -> Tokens:
    """H1 and H2 registered in the settings' database, and the four tokens."""
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
