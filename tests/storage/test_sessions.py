"""Server-side dashboard sessions: only the id's hash is stored, and a session dies when it ends,
expires, idles or its token is revoked; dead ones are purged after a while."""

from __future__ import annotations

import hashlib

from hie.storage import Database
from hie.storage.sessions import (
    end_session,
    find_session,
    open_session,
    purge_sessions,
    record_signin_failure,
)
from hie.storage.tokens import create_token, revoke_token


def test_a_session_lives_until_it_ends_expires_idles_or_its_token_is_revoked(
    db: Database,
) -> None:
    with db.transaction() as tx:
        conn = tx.conn
        token_id, _ = create_token(
            conn, role="regulator", institution_code=None, label="", actor="t"
        )
        ids = [open_session(conn, token_id)[0] for _ in range(4)]
        stored = conn.execute("select id_hash from dashboard_session").fetchall()
        assert {r["id_hash"] for r in stored} == {hashlib.sha256(i.encode()).digest() for i in ids}
        found = find_session(conn, ids[0])
        assert found is not None and found.principal.token_id == token_id

        assert end_session(conn, ids[0]) == token_id and find_session(conn, ids[0]) is None
        assert end_session(conn, ids[0]) is None  # already ended
        conn.execute(
            "update dashboard_session set expires_at = now() - interval '1 second' "
            "where id_hash = %s",
            (hashlib.sha256(ids[1].encode()).digest(),),
        )
        assert find_session(conn, ids[1]) is None
        conn.execute(
            "update dashboard_session set last_seen_at = now() - interval '31 minutes' "
            "where id_hash = %s",
            (hashlib.sha256(ids[2].encode()).digest(),),
        )
        assert find_session(conn, ids[2]) is None
        assert find_session(conn, ids[3]) is not None
        revoke_token(conn, token_id, actor="t")
        assert find_session(conn, ids[3]) is None


def test_dead_sessions_and_old_failures_are_purged(db: Database) -> None:
    with db.transaction() as tx:
        conn = tx.conn
        token_id, _ = create_token(
            conn, role="regulator", institution_code=None, label="", actor="t"
        )
        live, old = open_session(conn, token_id)[0], open_session(conn, token_id)[0]
        conn.execute(
            "update dashboard_session set expires_at = now() - interval '8 days' "
            "where id_hash = %s",
            (hashlib.sha256(old.encode()).digest(),),
        )
        record_signin_failure(conn, "192.0.2.1", None)
        conn.execute("update dashboard_signin_failure set failed_at = now() - interval '8 days'")
        record_signin_failure(conn, "192.0.2.1", token_id)
        assert purge_sessions(conn) == 2
        assert find_session(conn, live) is not None
        left = conn.execute("select token_id from dashboard_signin_failure").fetchall()
        assert left == [{"token_id": token_id}]
