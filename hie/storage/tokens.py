"""Stored access tokens."""

from __future__ import annotations

from typing import Any

from hie.auth import ROLES, Principal, generate_token, hash_token
from hie.auth.tokens import PREFIX, token_hint
from hie.errors import InvalidInput, NotFound, Problem
from hie.storage.audit import record_event
from hie.storage.database import Connection
from hie.storage.institutions import get_institution
from hie.storage.sessions import end_token_sessions


def create_token(
    conn: Connection, *, role: str, institution_code: str | None, label: str, actor: str
) -> tuple[int, str]:
    """Create a token and return (id, token). The token is not stored and cannot be shown again."""
    if role not in ROLES:
        raise InvalidInput(
            "token", [Problem(f"{role!r} is not one of {', '.join(ROLES)}", field="role")]
        )
    if role in ("submitter", "clinician") and institution_code is None:
        raise InvalidInput(
            "token", [Problem(f"a {role} token needs an institution", field="institution")]
        )
    if institution_code is not None:
        get_institution(conn, institution_code)
    token = generate_token()
    row = conn.execute(
        """
        insert into access_token (token_hash, hint, role, institution_code, label)
        values (%s, %s, %s, %s, %s) returning id
        """,
        (hash_token(token), token_hint(token), role, institution_code, label),
    ).fetchone()
    if row is None:
        raise RuntimeError("insert returned no row")
    record_event(conn, actor, "token.create", institution_code, token_id=row["id"], role=role)
    return row["id"], token


def authenticate(conn: Connection, token: str) -> Principal | None:
    """The principal a presented token stands for, or None if it is unknown or revoked."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = conn.execute(
        """
        select id, role, institution_code, last_used_at < now() - interval '1 minute' as stale
        from access_token where token_hash = %s and revoked_at is null
        """,
        (hash_token(token),),
    ).fetchone()
    if row is None:
        return None
    if row["stale"] is not False:
        # At most one write a minute per token, so parallel uploads do not queue on its row.
        conn.execute("update access_token set last_used_at = now() where id = %s", (row["id"],))
    return Principal(row["id"], row["role"], row["institution_code"])


def revoke_token(conn: Connection, token_id: int, *, actor: str) -> None:
    row = conn.execute(
        """
        update access_token set revoked_at = coalesce(revoked_at, now())
        where id = %s returning institution_code
        """,
        (token_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no token with id {token_id}")
    # Its dashboard sessions end now (the session look-up also checks revocation; this records it).
    end_token_sessions(conn, token_id)
    record_event(conn, actor, "token.revoke", row["institution_code"], token_id=token_id)


def list_tokens(conn: Connection, *, institution_code: str | None = None) -> list[dict[str, Any]]:
    return conn.execute(
        """
        select id, hint, role, institution_code, label, created_at, last_used_at, revoked_at
        from access_token where %(code)s::text is null or institution_code = %(code)s
        order by id
        """,
        {"code": institution_code},
    ).fetchall()
