"""Dashboard sessions live on the server: a forged cookie opens nothing, signing out and revoking
end them, failed sign-ins are limited per address and per token, and each step is audited."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer

from hie.app import create_app
from hie.auth.tokens import token_hint
from hie.storage import Database, open_database
from hie.storage.sessions import FAILURE_LIMIT
from hie.storage.tokens import create_token, revoke_token
from tests.dashboard.test_pages import csrf_of, sign_in


def _address() -> str:
    # Failed sign-ins are counted per address in the shared site database: each test its own.
    return f"198.51.100.{secrets.randbelow(250) + 1}-{secrets.token_hex(4)}"


@pytest.fixture
def database(site: Any) -> Iterator[Database]:
    database = open_database(site.settings)
    try:
        yield database
    finally:
        database.close()


def _client(site: Any, address: str | None = None) -> TestClient:
    return TestClient(
        create_app(site.settings), follow_redirects=False, client=(address or _address(), 50000)
    )


def _new_token(database: Database, role: str = "regulator") -> tuple[int, str]:
    with database.transaction() as tx:
        return create_token(tx.conn, role=role, institution_code=None, label="", actor="t")


def _audit(database: Database, address: str) -> list[tuple[str, str]]:
    """(action, the whole row as text) of the dashboard's audit entries from one address."""
    with database.connection() as conn:
        rows = conn.execute(
            """
            select a.action, row_to_json(a)::text as whole from audit_event a
            where a.action like 'dashboard.%%' and row_to_json(a)::text like %s order by a.id
            """,
            (f"%{address}%",),
        ).fetchall()
    return [(r["action"], r["whole"]) for r in rows]


def test_a_cookie_forged_with_the_signing_key_opens_nothing(site: Any, database: Database) -> None:
    # Whoever knows HIE_SECRET_KEY can sign any cookie; a token's number must not be enough.
    token_id, _ = _new_token(database)
    signer = URLSafeTimedSerializer(
        site.settings.secret_key.get_secret_value(), salt="hie.dashboard"
    )
    with _client(site) as client:
        for forged in (
            {"csrf": "x", "token": token_id},
            {"sid": secrets.token_urlsafe(32)},
            {"sid": str(token_id)},
        ):
            client.cookies.set("hie_session", signer.dumps(forged), path="/dashboard")
            assert client.get("/dashboard").status_code == 303, forged


def test_signing_out_ends_the_session_on_the_server(site: Any, database: Database) -> None:
    address = _address()
    token_id, token = _new_token(database)
    with _client(site, address) as client:
        sign_in(client, token)
        page = client.get("/dashboard")
        assert page.status_code == 200
        stolen = client.cookies.get("hie_session", path="/dashboard")
        assert stolen
        assert (
            client.post("/dashboard/logout", data={"csrf": csrf_of(page.text)}).status_code == 303
        )
        # The cookie kept from before sign-out (copied, or replayed by a thief) is dead too.
        client.cookies.set("hie_session", stolen, path="/dashboard")
        assert client.get("/dashboard").status_code == 303
    entries = _audit(database, address)
    assert [action for action, _ in entries] == ["dashboard.signin", "dashboard.signout"]
    for _, whole in entries:
        assert f"token:{token_id}" in whole and "regulator" in whole
        assert token not in whole and token_hint(token).rstrip("…") not in whole


def test_revoking_a_token_ends_its_sessions(site: Any, database: Database) -> None:
    token_id, token = _new_token(database)
    with _client(site) as first, _client(site) as second:
        sign_in(first, token)
        sign_in(second, token)
        live = (
            "select count(*) as n from dashboard_session where token_id = %s and ended_at is null"
        )
        with database.transaction() as tx:
            assert tx.conn.execute(live, (token_id,)).fetchone() == {"n": 2}
            revoke_token(tx.conn, token_id, actor="t")
            assert tx.conn.execute(live, (token_id,)).fetchone() == {"n": 0}
        assert first.get("/dashboard").status_code == 303
        assert second.get("/dashboard").status_code == 303


def _try(client: TestClient, token: str) -> Any:
    csrf = csrf_of(client.get("/dashboard/login").text)
    return client.post("/dashboard/login", data={"csrf": csrf, "token": token})


def test_failed_sign_ins_lock_the_address_across_processes(site: Any, database: Database) -> None:
    address = _address()
    _, token = _new_token(database)
    with _client(site, address) as client:
        for _ in range(FAILURE_LIMIT):
            assert _try(client, "hie_" + secrets.token_urlsafe(32)).status_code == 401
    # Another web process (an app of its own) sees the same count: it lives in PostgreSQL.
    with _client(site, address) as other:
        locked = _try(other, token)  # even the right token is refused while locked
        assert locked.status_code == 429
        assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
        assert other.get("/dashboard").status_code == 303
    with _client(site) as elsewhere:
        assert _try(elsewhere, token).status_code == 303
    actions = [action for action, _ in _audit(database, address)]
    assert actions == ["dashboard.signin_failed"] * FAILURE_LIMIT + ["dashboard.signin_locked"]
    assert all(token not in whole for _, whole in _audit(database, address))


def test_failed_sign_ins_lock_the_token_they_aim_at(site: Any, database: Database) -> None:
    token_id, token = _new_token(database)
    # Guesses that share the token's shown hint, each from a new address.
    for _ in range(FAILURE_LIMIT):
        guess = token[: len(token_hint(token)) - 1] + secrets.token_urlsafe(24)
        with _client(site) as guesser:
            assert _try(guesser, guess).status_code == 401
    with _client(site) as owner:
        assert _try(owner, token).status_code == 429
    with database.connection() as conn:
        locked = conn.execute(
            "select count(*) as n from audit_event where action = 'dashboard.signin_locked' "
            "and actor = %s",
            (f"token:{token_id}",),
        ).fetchone()
    assert locked is not None and locked["n"] == 1


def test_signing_in_again_replaces_the_browsers_session(site: Any, database: Database) -> None:
    _, token = _new_token(database)
    with _client(site) as client:
        sign_in(client, token)
        first = client.cookies.get("hie_session", path="/dashboard")
        sign_in(client, token)
        assert client.get("/dashboard").status_code == 200
        client.cookies.set("hie_session", first or "", path="/dashboard")
        assert client.get("/dashboard").status_code == 303
        # Signing out of a session that already ended just goes back to the sign-in form.
        out = client.post("/dashboard/logout", data={"csrf": "whatever"})
        assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
