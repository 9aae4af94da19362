"""Turning hie's exceptions and FastAPI's validation errors into OperationOutcome responses."""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hie.errors import (
    HieError,
    InvalidInput,
    Unavailable,
)
from hie.outcome import OutcomeIssue, operation_outcome

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"

# The OperationOutcome issue code of each status a HieError is answered with (HieError.status).
_ISSUE_CODES = {401: "login", 403: "forbidden", 404: "not-found", 409: "conflict", 422: "invalid"}


def outcome_response(
    status: int, issues: list[OutcomeIssue], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        operation_outcome(issues), status_code=status, media_type=FHIR_JSON, headers=headers
    )


def negotiated_outcome(
    request: Request,
    status: int,
    issues: list[OutcomeIssue],
    headers: dict[str, str] | None = None,
) -> Response:
    """The error as :func:`outcome_response`, but in FHIR XML for a ``/fhir`` request that asks
    for XML (HAPI's clients), as the FHIR API's own answers are."""
    if request.url.path.startswith("/fhir"):
        # Imported here: hie.fhir imports hie.http, whose package imports this module.
        from hie.fhir.xml_format import FHIR_XML, to_fhir_xml, wants_xml

        if wants_xml(request.query_params.get("_format"), request.headers.get("accept")):
            return Response(
                to_fhir_xml(operation_outcome(issues)),
                status_code=status,
                media_type=f"{FHIR_XML}; charset=utf-8",
                headers=headers,
            )
    return outcome_response(status, issues, headers)


def _hie_error(request: Request, exc: Exception) -> Response:
    status = exc.status if isinstance(exc, HieError) else 500
    code = _ISSUE_CODES.get(status)
    if code is None:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        issue = OutcomeIssue("fatal", "exception", "internal error")
        return negotiated_outcome(request, 500, [issue])
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, InvalidInput):
        issues = [
            OutcomeIssue(
                "error",
                code,
                p.message,
                expression=p.field,
                location=f"{exc.source}, line {p.line}" if p.line is not None else None,
            )
            for p in exc.problems
        ]
    else:
        issues = [OutcomeIssue("error", code, str(exc))]
    return negotiated_outcome(request, status, issues, headers)


def _validation_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):  # registered for that type only
        raise TypeError(exc)
    issues = [
        OutcomeIssue(
            "error",
            "invalid",
            str(err.get("msg", "invalid value")),
            expression=".".join(str(part) for part in err.get("loc", ())),
        )
        for err in exc.errors()
    ]
    return negotiated_outcome(request, 422, issues)


def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # registered for that type only
        raise TypeError(exc)
    code = {404: "not-found", 405: "not-supported", 413: "too-long", 415: "not-supported"}.get(
        exc.status_code, "processing"
    )
    issues = [OutcomeIssue("error", code, str(exc.detail))]
    return negotiated_outcome(request, exc.status_code, issues, dict(exc.headers or {}))


def _unstorable(request: Request, exc: Exception) -> Response:
    """The last line behind the checks where input enters: a value PostgreSQL refuses
    (U+0000, a character the encoding lacks, a number out of range) is the client's input."""
    log.warning(
        "database refused a value on %s %s: %s", request.method, request.url.path, type(exc)
    )
    issue = OutcomeIssue(
        "error",
        "value",
        "the request holds a value the database cannot store (such as U+0000, a lone "
        "surrogate or a number out of range)",
    )
    return negotiated_outcome(request, 400, [issue])


def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    issue = OutcomeIssue("fatal", "exception", "internal error")
    return negotiated_outcome(request, 500, [issue])


class UnexpectedErrors:
    """ASGI middleware answering an unexpected exception with a 500 OperationOutcome.

    Not an ``Exception`` handler: Starlette's ServerErrorMiddleware re-raises after calling one,
    and uvicorn then closes the connection, breaking the client's next request on it. Here the
    error is logged and answered, and the connection stays usable. An error after the answer
    started can only end it, so that one still propagates.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            await _unexpected(Request(scope), exc)(scope, receive, send)


# Seconds a client is asked to wait before sending the same request again while a dependency is
# down (``Retry-After``); ``hie push`` honours it.
RETRY_AFTER_SECONDS = 5


# SQLSTATE classes and codes of failures that another attempt can get past: connection
# exceptions, transaction rollback (serialization failure, deadlock), insufficient resources,
# operator intervention (shutdown, cancel, not yet accepting connections), system errors, a lock
# or object busy. Other OperationalErrors (a program limit exceeded by the request's own data,
# for one) would fail the same way again: those stay 500.
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")
_TRANSIENT_CODES = ("55P03", "55006")


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, Unavailable):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    # No SQLSTATE: failed on the client's side (refused, lost, closed, the pool's wait over).
    state = exc.sqlstate
    return state is None or state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_CODES


def _transient(request: Request, exc: Exception) -> Response:
    """503 with ``Retry-After``: the database or the broker did not answer. Nothing was stored,
    or a commit's outcome is unknown; either way the same upload sent again is answered with the
    platform's usual idempotent receipt (the original one if it had been stored)."""
    if not _is_transient(exc):
        return _unexpected(request, exc)
    dependency = exc.dependency if isinstance(exc, Unavailable) else "database"
    # The class name only: a driver's message may carry host names and ports.
    log.warning(
        "%s unavailable on %s %s: %s",
        dependency,
        request.method,
        request.url.path,
        type(exc).__name__,
    )
    issue = OutcomeIssue("error", "transient", f"the {dependency} is unavailable; retry later")
    return negotiated_outcome(request, 503, [issue], {"Retry-After": str(RETRY_AFTER_SECONDS)})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(psycopg.DataError, _unstorable)
    app.add_exception_handler(UnicodeEncodeError, _unstorable)
    app.add_exception_handler(HieError, _hie_error)
    # psycopg's OperationalError covers a refused or lost connection, a pool timeout
    # (psycopg_pool.PoolTimeout), a server shutting down, and a serialization failure or
    # deadlock that outlived the write path's own retries: 503, worth the same request again
    # (_is_transient sends the rest of OperationalError to the 500 path).
    app.add_exception_handler(psycopg.OperationalError, _transient)
    app.add_exception_handler(Unavailable, _transient)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
