"""Turning hie's exceptions and FastAPI's validation errors into OperationOutcome responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from hie.errors import (
    Conflict,
    HieError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from hie.outcome import OutcomeIssue, operation_outcome

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"

_STATUS: list[tuple[type[HieError], int, str]] = [
    (Unauthenticated, 401, "login"),
    (PermissionDenied, 403, "forbidden"),
    (NotFound, 404, "not-found"),
    (Conflict, 409, "conflict"),
    (InvalidInput, 422, "invalid"),
]


def outcome_response(
    status: int, issues: list[OutcomeIssue], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        operation_outcome(issues), status_code=status, media_type=FHIR_JSON, headers=headers
    )


def _status_of(exc: Exception) -> tuple[int, str] | None:
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            return status, code
    return None


def _hie_error(request: Request, exc: Exception) -> JSONResponse:
    known = _status_of(exc)
    if known is None:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return outcome_response(500, [OutcomeIssue("fatal", "exception", "internal error")])
    status, code = known
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
    return outcome_response(status, issues, headers)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
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
    return outcome_response(422, issues)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):  # registered for that type only
        raise TypeError(exc)
    code = {404: "not-found", 405: "not-supported", 413: "too-long", 415: "not-supported"}.get(
        exc.status_code, "processing"
    )
    return outcome_response(
        exc.status_code, [OutcomeIssue("error", code, str(exc.detail))], dict(exc.headers or {})
    )


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return outcome_response(500, [OutcomeIssue("fatal", "exception", "internal error")])


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(HieError, _hie_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
