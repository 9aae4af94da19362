"""Which failures of a dependency are answered 503 with Retry-After (retry later), and which
stay 500 (the same request would fail again)."""

from __future__ import annotations

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg_pool import PoolTimeout

from hie.errors import Unavailable
from hie.http import install_error_handlers


def _answer(exc: Exception, path: str = "/x") -> tuple[int, dict[str, str], dict]:
    app = FastAPI()
    install_error_handlers(app)

    @app.get(path)
    def fail() -> None:
        raise exc

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(path)
    return response.status_code, dict(response.headers), response.json()


@pytest.mark.parametrize(
    "exc",
    [
        PoolTimeout("couldn't get a connection after 3.00 sec"),
        psycopg.OperationalError(
            'connection to server at "10.0.0.5", port 5432 failed: Connection refused'
        ),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.CannotConnectNow("the database system is starting up"),
        psycopg.errors.SerializationFailure("could not serialize access"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.TooManyConnections("too many clients already"),
        psycopg.errors.LockNotAvailable("could not obtain lock"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_database_that_does_not_answer_is_503_with_retry_after(exc: Exception) -> None:
    status, headers, body = _answer(exc)
    assert status == 503 and int(headers["retry-after"]) > 0
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["code"] == "transient"
    assert issue["diagnostics"] == "the database is unavailable; retry later"
    # The driver's message (hosts, ports) is not passed on.
    assert "10.0.0.5" not in str(body)


def test_the_broker_is_named() -> None:
    status, headers, body = _answer(Unavailable("broker"))
    assert status == 503 and "retry-after" in headers
    assert body["issue"][0]["diagnostics"] == "the broker is unavailable; retry later"


def test_under_fhir_the_answer_is_fhir_xml_when_asked() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fhir/Patient")
    def fail() -> None:
        raise PoolTimeout("couldn't get a connection")

    with TestClient(app) as client:
        response = client.get("/fhir/Patient", headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 503 and "retry-after" in response.headers
    assert response.headers["content-type"].startswith("application/fhir+xml")
    assert 'code value="transient"' in response.text


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.errors.ProgramLimitExceeded("index row size 3000 exceeds btree maximum"),
        psycopg.errors.ObjectNotInPrerequisiteState("cannot do that now"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_failure_that_would_repeat_is_not_answered_retry_later(exc: Exception) -> None:
    status, headers, _ = _answer(exc)
    assert status == 500 and "retry-after" not in headers
