"""An unexpected error is answered with an OperationOutcome, and the connection stays open for
the client's next request (on a real uvicorn server: the TestClient has no connections)."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

import hie.fhir.routes
from hie.app import create_app
from hie.config import Settings
from hie.server import BackgroundServer


def test_a_500_keeps_the_connection_open(
    hostile_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = hie.fhir.routes.capability_statement
    calls = {"n": 0}

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected fault")
        return real(*args, **kwargs)

    monkeypatch.setattr(hie.fhir.routes, "capability_statement", failing_once)
    with BackgroundServer(create_app(hostile_settings)) as server:
        address = urlsplit(server.url)
        conn = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
        try:
            conn.request("GET", "/fhir/metadata")
            first = conn.getresponse()
            body = json.loads(first.read())
            assert first.status == 500
            assert first.getheader("content-type", "").startswith("application/fhir+json")
            assert body["resourceType"] == "OperationOutcome"
            assert body["issue"][0]["code"] == "exception"
            assert "injected" not in json.dumps(body)  # no internals leak to the client
            # http.client drops its socket when the server says or does "close".
            assert first.getheader("connection", "").lower() != "close"
            sock = conn.sock
            assert sock is not None
            conn.request("GET", "/fhir/metadata")
            second = conn.getresponse()
            assert second.status == 200
            assert json.loads(second.read())["resourceType"] == "CapabilityStatement"
            assert conn.sock is sock  # the same connection answered both
        finally:
            conn.close()
