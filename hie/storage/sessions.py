"""Dashboard sessions kept on the server, and the count of failed sign-ins.

A session is a random id handed to the browser; only its SHA-256 is stored, with the token it
stands for and its CSRF token. It is valid while it has not ended, expired or been idle too long,
and while its token is not revoked, so signing out or revoking a token ends it at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from hie.auth import Principal
from hie.auth.tokens import PREFIX, hash_token, token_hint
from hie.storage.database import Connection

LIFETIME = timedelta(hours=8)  # a working day; then sign in again
IDLE = timedelta(minutes=30)  # a screen left open is signed out
# Failed sign-ins allowed per client address, and per token, within the window.
FAILURE_LIMIT = 5
FAILURE_WINDOW = timedelta(minutes=15)
# Ended and expired sessions and old failures are kept this long (for a look back), then purged.
KEEP = timedelta(days=7)


@dataclass(frozen=True)
class StoredSession:
    principal: Principal
    csrf: str


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


def open_session(conn: Connection, token_id: int) -> tuple[str, str]:
    """A new session of a token: (session id for the cookie, CSRF token)."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    conn.execute(
        """
        insert into dashboard_session (id_hash, token_id, csrf, expires_at)
        values (%s, %s, %s, now() + %s)
        """,
        (_hash(session_id), token_id, csrf, LIFETIME),
    )
    return session_id, csrf


def find_session(conn: Connection, session_id: str) -> StoredSession | None:
    """The live session of that id, or None when it is unknown, ended, expired, idle or its token
    is revoked."""
    row = conn.execute(
        """
        select t.id, t.role, t.institution_code, s.csrf,
               s.last_seen_at < now() - interval '1 minute' as stale
        from dashboard_session s join access_token t on t.id = s.token_id
        where s.id_hash = %s and s.ended_at is null and s.expires_at > now()
          and s.last_seen_at > now() - %s and t.revoked_at is null
        """,
        (_hash(session_id), IDLE),
    ).fetchone()
    if row is None:
        return None
    if row["stale"]:
        # At most one write a minute per session, enough for the idle timeout.
        conn.execute(
            "update dashboard_session set last_seen_at = now() where id_hash = %s",
            (_hash(session_id),),
        )
    return StoredSession(Principal(row["id"], row["role"], row["institution_code"]), row["csrf"])


def end_session(conn: Connection, session_id: str) -> int | None:
    """End a session (sign-out); the token id it belonged to, or None if it was not live."""
    row = conn.execute(
        """
        update dashboard_session set ended_at = now()
        where id_hash = %s and ended_at is null returning token_id
        """,
        (_hash(session_id),),
    ).fetchone()
    return None if row is None else int(row["token_id"])


def end_token_sessions(conn: Connection, token_id: int) -> int:
    """End every live session of a token (on revocation); how many there were."""
    cursor = conn.execute(
        "update dashboard_session set ended_at = now() where token_id = %s and ended_at is null",
        (token_id,),
    )
    return cursor.rowcount


def purge_sessions(conn: Connection) -> int:
    """Delete sessions ended or expired, and failed sign-ins older than :data:`KEEP`."""
    cursor = conn.execute(
        """
        delete from dashboard_session
        where expires_at < now() - %(keep)s or ended_at < now() - %(keep)s
        """,
        {"keep": KEEP},
    )
    purged = cursor.rowcount
    cursor = conn.execute(
        "delete from dashboard_signin_failure where failed_at < now() - %s", (KEEP,)
    )
    return purged + cursor.rowcount


def named_token(conn: Connection, token: str) -> int | None:
    """The id of the token a pasted value names, even a wrong or revoked one: the token with that
    hash, else the only token with that hint. A guess at one token is then counted against it."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = conn.execute("select id from access_token where token_hash = %s", (hash_token(token),))
    found = row.fetchone()
    if found is not None:
        return int(found["id"])
    rows = conn.execute(
        "select id from access_token where hint = %s limit 2", (token_hint(token),)
    ).fetchall()
    return int(rows[0]["id"]) if len(rows) == 1 else None


def signin_wait(conn: Connection, address: str, token_id: int | None) -> int | None:
    """Seconds until a sign-in from ``address`` (for ``token_id``) may be tried again, or None if
    it may be tried now.

    Takes transaction-level advisory locks on the address and the token, so that concurrent
    attempts, in any process, are counted one after the other: call it in the transaction that
    then records the outcome.
    """
    keys = [f"hie.signin.address:{address}"]
    if token_id is not None:
        keys.append(f"hie.signin.token:{token_id}")
    for key in keys:  # always address first: no two attempts wait on each other in a cycle
        conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
    row = conn.execute(
        """
        select ceil(extract(epoch from max(until) - now()))::int as wait from (
            select (array_agg(failed_at order by failed_at desc))[%(limit)s] + %(window)s as until
            from dashboard_signin_failure
            where address = %(address)s and failed_at > now() - %(window)s
            having count(*) >= %(limit)s
            union all
            select (array_agg(failed_at order by failed_at desc))[%(limit)s] + %(window)s
            from dashboard_signin_failure
            where token_id = %(token)s and failed_at > now() - %(window)s
            having count(*) >= %(limit)s
        ) locked
        """,
        {"address": address, "token": token_id, "limit": FAILURE_LIMIT, "window": FAILURE_WINDOW},
    ).fetchone()
    wait = None if row is None else row["wait"]
    return max(1, int(wait)) if wait is not None else None


def record_signin_failure(conn: Connection, address: str, token_id: int | None) -> None:
    conn.execute(
        "insert into dashboard_signin_failure (address, token_id) values (%s, %s)",
        (address, token_id),
    )
