"""One send: which answers are retried, which are the record's failure, and what goes along."""

from __future__ import annotations

import httpx
import pytest

from hie.forwarding.messages import UpstreamRequest
from hie.forwarding.sender import Permanent, Transient, send
from hie.storage.forwarding import Destination

DESTINATION = Destination("province", "https://province.example/fhir", "HIE_TEST_TOKEN", None)
REQUEST = UpstreamRequest("PUT", "Patient", {"identifier": "urn:x|1"}, {"resourceType": "Patient"})


def client(status: int, seen: list[httpx.Request] | None = None) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if status == 0:
            raise httpx.ConnectError("refused", request=request)
        outcome = {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "why not"}]}
        return httpx.Response(status, json=outcome if status >= 400 else None)

    return httpx.Client(transport=httpx.MockTransport(answer))


def test_what_is_retried_and_what_is_the_records_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIE_TEST_TOKEN", "t0ken")
    for status in (0, 401, 408, 429, 500, 502, 503):
        with pytest.raises(Transient):
            send(client(status), DESTINATION, REQUEST, institution_code="H1", received_at=None)
    for status in (400, 403, 404, 409, 412, 422):
        with pytest.raises(Permanent, match=f"HTTP {status}: why not"):
            send(client(status), DESTINATION, REQUEST, institution_code="H1", received_at=None)
    monkeypatch.delenv("HIE_TEST_TOKEN")
    with pytest.raises(Transient, match="HIE_TEST_TOKEN is not set"):
        send(client(201), DESTINATION, REQUEST, institution_code="H1", received_at=None)


def test_a_send_carries_the_token_institution_and_receipt_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[httpx.Request] = []
    monkeypatch.setenv("HIE_TEST_TOKEN", "t0ken")
    sent = send(
        client(201, seen),
        DESTINATION,
        REQUEST,
        institution_code="H1",
        received_at="2019-07-15T12:00:00+08:00",
    )
    assert sent.status == 201
    (request,) = seen
    assert request.method == "PUT"
    assert str(request.url) == "https://province.example/fhir/Patient?identifier=urn%3Ax%7C1"
    assert request.headers["Authorization"] == "Bearer t0ken"
    assert request.headers["X-HIE-Institution"] == "H1"
    assert request.headers["X-HIE-Received-At"] == "2019-07-15T12:00:00+08:00"
    assert request.headers["Content-Type"] == "application/fhir+json"
    # The token is read at each send: a new one is used at once.
    monkeypatch.setenv("HIE_TEST_TOKEN", "n3w")
    send(client(200, seen), DESTINATION, REQUEST, institution_code="H1", received_at=None)
    assert seen[-1].headers["Authorization"] == "Bearer n3w"


def test_the_upstreams_words_are_kept_without_resident_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HIE_TEST_TOKEN", "t0ken")

    def answer(request: httpx.Request) -> httpx.Response:
        issue = {"diagnostics": "identifier 11010519491231002X is already taken"}
        return httpx.Response(422, json={"resourceType": "OperationOutcome", "issue": [issue]})

    refusing = httpx.Client(transport=httpx.MockTransport(answer))
    with pytest.raises(Permanent) as refused:
        send(refusing, DESTINATION, REQUEST, institution_code="H1", received_at=None)
    assert str(refused.value) == "HTTP 422: identifier *** is already taken"
