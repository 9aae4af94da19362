"""Rendering: the Jinja2 environment, number formats, links that keep the page's query, and the
language cookie. Security headers (CSP, no-store) are set on every response by
:class:`hie.http.SecurityHeaders`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from hie.auth import Principal
from hie.dashboard.i18n import LANGUAGES, Translator, pick_language
from hie.dashboard.session import LANG_COOKIE, PATH, Session

TEMPLATES = Path(__file__).parent / "templates"


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "svg"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["num"] = _number
_env.filters["pct"] = _percent


@dataclass(frozen=True)
class Viewer:
    """Who is looking and in which language."""

    principal: Principal | None
    session: Session | None
    t: Translator


def viewer_of(request: Request, principal: Principal | None, session: Session | None) -> Viewer:
    lang = pick_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))
    return Viewer(principal, session, Translator(lang))


def link(request: Request, path: str | None = None, **changes: Any) -> str:
    """The current page (or ``path``) with query parameters changed; None removes one."""
    params = dict(request.query_params) if path is None else {}
    params.pop("lang", None)  # the language lives in its cookie once chosen
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    query = urlencode(params)
    target = request.url.path if path is None else path
    return f"{target}?{query}" if query else target


def finish(request: Request, viewer: Viewer, response: Response) -> Response:
    chosen = request.query_params.get("lang")
    if chosen in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE, chosen, max_age=365 * 86400, path=PATH, samesite="lax", httponly=True
        )
    return response


def render(
    request: Request, viewer: Viewer, template: str, *, status: int = 200, **context: Any
) -> Response:
    other = "en" if viewer.t.lang == "zh" else "zh"
    html = _env.get_template(template).render(
        t=viewer.t,
        viewer=viewer,
        principal=viewer.principal,
        csrf=viewer.session.csrf if viewer.session else "",
        link=lambda path=None, **changes: link(request, path, **changes),
        language_link=_with_lang(request, other),
        **context,
    )
    return finish(request, viewer, HTMLResponse(html, status_code=status))


def _with_lang(request: Request, lang: str) -> str:
    base = link(request)
    return f"{base}{'&' if '?' in base else '?'}lang={lang}"
