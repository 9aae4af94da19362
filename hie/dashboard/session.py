"""The dashboard's session: a cookie signed with the platform's session key.

Before sign-in the cookie holds only a CSRF token (for the sign-in form). After it, the cookie
holds a random session id whose hash the server keeps with the token's id and the CSRF token
(:mod:`hie.storage.sessions`): never the access token, and never anything a holder of the signing
key could forge, so signing out, expiry and revoking the token end the session on the server.
Every form carries the session's CSRF token, and a POST whose Origin is another site is refused
before its form is read.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from hie.auth import Principal
from hie.config import Settings
from hie.storage import Database
from hie.storage.sessions import LIFETIME, find_session

COOKIE = "hie_session"
LANG_COOKIE = "hie_lang"
PATH = "/dashboard"
MAX_AGE = int(LIFETIME.total_seconds())
FORM_LIMIT = 8192  # a sign-in or sign-out form is a few hundred bytes


@dataclass(frozen=True)
class Session:
    """An anonymous session (a CSRF token only), or a signed-in one found on the server."""

    csrf: str
    session_id: str | None = None
    principal: Principal | None = None


def _serializer(request: Request) -> URLSafeTimedSerializer:
    # Built once per app: in embedded mode the key is read from a file.
    state = request.app.state
    serializer: URLSafeTimedSerializer | None = getattr(state, "dashboard_serializer", None)
    if serializer is None:
        settings: Settings = state.settings
        serializer = URLSafeTimedSerializer(settings.session_secret(), salt="hie.dashboard")
        state.dashboard_serializer = serializer
    return serializer


def read_session(request: Request) -> Session | None:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    try:
        data = _serializer(request).loads(cookie, max_age=MAX_AGE)
    except BadSignature:  # also an expired one (SignatureExpired is a BadSignature)
        return None
    if not isinstance(data, dict):
        return None
    session_id = data.get("sid")
    if isinstance(session_id, str):
        database: Database = request.app.state.database
        with database.connection() as conn:
            stored = find_session(conn, session_id)
        # An ended session is no session: the sign-in form then issues a fresh one.
        return None if stored is None else Session(stored.csrf, session_id, stored.principal)
    if isinstance(data.get("csrf"), str):
        return Session(data["csrf"])
    return None


def new_session() -> Session:
    return Session(secrets.token_urlsafe(32))


def write_session(request: Request, response: Response, session: Session) -> None:
    payload = {"sid": session.session_id} if session.session_id else {"csrf": session.csrf}
    value = _serializer(request).dumps(payload)
    response.set_cookie(
        COOKIE,
        value,
        max_age=MAX_AGE,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH)


def principal_of(session: Session | None) -> Principal | None:
    return None if session is None else session.principal


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Browsers send Origin on every cross-site POST; its absence means a same-site form or a
        # non-browser client, which the CSRF token still has to pass.
        return origin is None
    return origin == f"{request.url.scheme}://{request.url.netloc}"


async def read_form(request: Request, session: Session | None) -> dict[str, str] | None:
    """The fields of a urlencoded form whose CSRF token matches the session's; None otherwise."""
    if session is None or not _same_origin(request):
        return None
    body = await request.body()
    if len(body) > FORM_LIMIT:
        return None
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return None
    form = {k: v[0] for k, v in fields.items()}
    if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
        return None
    return form
