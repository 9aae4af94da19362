"""The upload client retries transient failures only."""

from __future__ import annotations

import httpx
import pytest

from hie.client import PlatformClient


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
        "http://hie.test", "hie_x", backoff=0, transport=httpx.MockTransport(answer)
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
        "http://hie.test", "hie_x", backoff=0, transport=httpx.MockTransport(answer)
    ) as client:
        receipt = client.submit_cda(b"<x/>")
    assert len(calls) == 1 and receipt.outcome == "rejected"
    assert receipt.errors() == ["cda.header.realm: realmCode is 'US'"]


def test_a_server_that_stays_down_is_an_error_after_the_retries() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with (
        PlatformClient(
            "http://hie.test", "t", retries=2, backoff=0, transport=httpx.MockTransport(answer)
        ) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.submit_cda(b"<x/>")
