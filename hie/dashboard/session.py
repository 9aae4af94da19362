"""The dashboard's session: a cookie signed with the platform's session key, holding the signed-in
token's id and a CSRF token; never the access token itself.

A session is looked up against the token table on every request, so revoking a token ends its
sessions at once. Every form carries the session's CSRF token, and a POST whose Origin is another
site is refused before its form is read.
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
from hie.storage.dashboard import active_principal

COOKIE = "hie_session"
LANG_COOKIE = "hie_lang"
PATH = "/dashboard"
MAX_AGE = 8 * 3600  # a working day; then sign in again
FORM_LIMIT = 8192  # a sign-in or sign-out form is a few hundred bytes


@dataclass(frozen=True)
class Session:
    csrf: str
    token_id: int | None = None


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
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    token_id = data.get("token")
    return Session(data["csrf"], token_id if isinstance(token_id, int) else None)


def new_session(token_id: int | None = None) -> Session:
    return Session(secrets.token_urlsafe(32), token_id)


def write_session(request: Request, response: Response, session: Session) -> None:
    value = _serializer(request).dumps({"csrf": session.csrf, "token": session.token_id})
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


def principal_of(request: Request, session: Session | None) -> Principal | None:
    if session is None or session.token_id is None:
        return None
    database: Database = request.app.state.database
    with database.connection() as conn:
        return active_principal(conn, session.token_id)


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
