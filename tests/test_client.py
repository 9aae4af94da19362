"""The upload client retries transient failures only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from hie.client import PlatformClient, retry_after


def test_transient_failures_are_retried_until_a_receipt() -> None:
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(calls) == 2:
            return httpx.Response(503, json={"resourceType": "OperationOutcome", "issue": []})
        return httpx.Response(201, json={"status": "created", "record": 1})

    with PlatformClient(
        "http://hie.test", "hie_x", sleep=lambda _: None, transport=httpx.MockTransport(answer)
    ) as client:
        receipt = client.submit_cda(b"<ClinicalDocument/>", institution="H1")
    assert receipt.outcome == "accepted" and len(calls) == 3
    assert calls[0].headers["authorization"] == "Bearer hie_x"
    assert calls[0].url.params["institution"] == "H1"


def test_errors_that_are_not_transient_are_not_retried() -> None:
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            422,
            json={
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "invalid",
                        "diagnostics": "realmCode is 'US'",
                        "details": {"coding": [{"code": "cda.header.realm"}]},
                    }
                ],
            },
        )

    with PlatformClient(
        "http://hie.test", "hie_x", sleep=lambda _: None, transport=httpx.MockTransport(answer)
    ) as client:
        receipt = client.submit_cda(b"<x/>")
    assert len(calls) == 1 and receipt.outcome == "rejected"
    assert receipt.errors() == ["cda.header.realm: realmCode is 'US'"]


def test_a_server_that_stays_down_is_an_error_after_the_retries() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    slept: list[float] = []
    with (
        PlatformClient(
            "http://hie.test",
            "t",
            retry_for=3,
            backoff=0.5,
            sleep=slept.append,
            transport=httpx.MockTransport(answer),
        ) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.submit_cda(b"<x/>")
    # Doubling waits while they fit in the three seconds it may wait in all.
    assert slept == [0.5, 1.0]


def test_retry_after_is_honoured_and_the_total_wait_is_bounded() -> None:
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            503,
            headers={"Retry-After": "5"},
            json={"resourceType": "OperationOutcome", "issue": []},
        )

    slept: list[float] = []
    retried = []
    with PlatformClient(
        "http://hie.test",
        "t",
        retry_for=12,
        sleep=slept.append,
        on_retry=retried.append,
        transport=httpx.MockTransport(answer),
    ) as client:
        receipt = client.submit_cda(b"<x/>")
    assert slept == [5, 5] and len(calls) == 3
    assert [(r.status, r.delay) for r in retried] == [(503, 5), (503, 5)]
    assert receipt.status == 503 and receipt.outcome == "unavailable"


def test_retry_after_as_an_http_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=30)
    response = httpx.Response(503, headers={"Retry-After": format_datetime(later, usegmt=True)})
    assert 25 < (retry_after(response) or 0) <= 30
    assert retry_after(httpx.Response(503)) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 415, 422, 500])
def test_no_other_4xx_nor_a_500_is_retried(status: int) -> None:
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            status, headers={"Retry-After": "1"}, json={"resourceType": "OperationOutcome"}
        )

    with PlatformClient(
        "http://hie.test", "t", sleep=lambda _: None, transport=httpx.MockTransport(answer)
    ) as client:
        receipt = client.submit_cda(b"<x/>")
    assert len(calls) == 1 and receipt.status == status


@pytest.mark.parametrize("status", [408, 429, 502, 504])
def test_the_other_transient_answers_are_retried(status: int) -> None:
    statuses = [status, 201]

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(statuses.pop(0), json={"status": "created"})

    with PlatformClient(
        "http://hie.test", "t", sleep=lambda _: None, transport=httpx.MockTransport(answer)
    ) as client:
        assert client.submit_cda(b"<x/>").outcome == "accepted"
