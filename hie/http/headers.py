"""Security headers on every response, including errors, 401s and 413s.

Answers of the API, FHIR, CDA and dashboard hold clinical or personal data: no cache (browser,
proxy) may keep them. No response may be content-sniffed into something it is not. Dashboard
pages get a Content-Security-Policy that allows no script at all; ``/docs`` (Swagger UI, which
needs inline script) and ``/healthz`` get neither, having nothing personal.
"""

from __future__ import annotations

import base64
import hashlib

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hie.documents.render.page import STYLE as DOCUMENT_STYLE

NO_STORE_PREFIXES = ("/api", "/fhir", "/cda", "/documents", "/dashboard")

ALWAYS = {"X-Content-Type-Options": "nosniff"}
PRIVATE = {"Cache-Control": "no-store"}
# A document opened in the record browser is the MHD rendering, whose one inline style block is
# allowed by its hash (no other inline style is).
_DOCUMENT_STYLE_HASH = base64.b64encode(hashlib.sha256(DOCUMENT_STYLE.encode()).digest()).decode()
# Nothing is loaded from elsewhere (the users sit in a closed network), no script is needed, and
# the pages hold patient-adjacent figures: no framing, no referrer leaks.
DASHBOARD = {
    "Content-Security-Policy": "default-src 'none'; "
    f"style-src 'self' 'sha256-{_DOCUMENT_STYLE_HASH}'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def headers_for(path: str) -> dict[str, str]:
    """The headers a response to ``path`` must carry."""
    wanted = dict(ALWAYS)
    if any(_under(path, prefix) for prefix in NO_STORE_PREFIXES):
        wanted |= PRIVATE
    if _under(path, "/dashboard"):
        wanted |= DASHBOARD
    return wanted


class SecurityHeaders:
    """ASGI middleware, meant to wrap the whole application (outside Starlette's error middleware,
    so that its 500 answers get the headers too). It overrides what a handler set: a handler
    cannot make a personal answer cacheable by mistake."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = headers_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in wanted.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
