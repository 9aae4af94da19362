"""Refusing a request whose path, query parameters or headers carry a character PostgreSQL
cannot store (see :mod:`hie.storable`), before any route sees it: 400 naming the place.

Bodies are checked where they are parsed (FHIR JSON, CSV, the /api models), which can name the
element or line."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from hie.http.errors import negotiated_outcome
from hie.outcome import OutcomeIssue
from hie.storable import printable, unstorable


def _problems(scope: Scope) -> list[OutcomeIssue]:
    found: list[OutcomeIssue] = []
    path: str = scope.get("path", "")
    if (why := unstorable(path)) is not None:
        found.append(OutcomeIssue("error", "value", f"the URL path {why}", expression="path"))
    query = scope.get("query_string", b"").decode("latin-1")
    if "%00" in query or "\x00" in query:
        # Decoded as Starlette does; only NUL survives the UTF-8 decoding of a query string.
        for name, value in parse_qsl(query, keep_blank_values=True):
            where = printable(name)
            if (why := unstorable(name)) is not None:
                found.append(OutcomeIssue("error", "value", f"a query parameter name {why}", where))
            elif (why := unstorable(value)) is not None:
                found.append(
                    OutcomeIssue("error", "value", f"query parameter {where} {why}", where)
                )
    for raw_name, raw_value in scope.get("headers", ()):
        if b"\x00" in raw_value or b"\x00" in raw_name:
            name = printable(raw_name.decode("latin-1")).title().replace("X-Hie-", "X-HIE-")
            found.append(
                OutcomeIssue("error", "value", f"header {name} contains a NUL character", name)
            )
    return found


class RefuseUnstorable:
    """ASGI middleware: 400 with an OperationOutcome for NUL in the path, query or headers, in
    FHIR XML for a ``/fhir`` client that asks for it, as every other error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (problems := _problems(scope)):
            await self.app(scope, receive, send)
            return
        response = negotiated_outcome(Request(scope), 400, problems)
        await response(scope, receive, send)
