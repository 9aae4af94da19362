"""The platform's HTTP client (httpx): what ``hie push`` and ``hie demo`` upload with.

Retries only transient failures (connection errors and timeouts, 408, 429, 502, 503, 504) with
exponential backoff, waiting at least what the server's ``Retry-After`` asks, for a bounded total
time; any other answer (a 4xx, a 500) is returned at once. A CDA document, a resource with a
client id and a transaction of PUTs are idempotent on the platform (the same upload again gets
its original receipt), so a retry after a lost response or an unknown commit stores nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

TRANSIENT_STATUS = frozenset({408, 429, 502, 503, 504})
CDA_TYPE = "application/hl7-cda+xml"
FHIR_TYPE = "application/fhir+json"


@dataclass(frozen=True)
class Receipt:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def outcome(self) -> str:
        if self.status == 201:
            return "accepted"
        if self.status == 200 and self.body.get("resourceType") == "Bundle":
            # A transaction or batch answers 200 as a whole; its entries say what was written.
            statuses = [e.get("response", {}).get("status", "") for e in self.body.get("entry", [])]
            if any(s.startswith(("4", "5")) for s in statuses):
                return "rejected"
            return "accepted" if any(s.startswith("201") for s in statuses) else "unchanged"
        if self.status == 200:
            return "unchanged"
        if self.status == 409:
            return "conflict"
        if self.status in TRANSIENT_STATUS:
            return "unavailable"  # still transient after every retry: nothing was stored
        return "rejected"

    def _errors(self) -> list[dict[str, Any]]:
        return [
            issue
            for issue in self.body.get("issue", [])
            if issue.get("severity") in ("fatal", "error")
        ]

    @staticmethod
    def _rule(issue: dict[str, Any]) -> str:
        coding = issue.get("details", {}).get("coding", [{}])[0]
        return str(coding.get("code", issue.get("code", "?")))

    def rules(self) -> list[str]:
        """The rule of each error in an OperationOutcome body."""
        return [self._rule(issue) for issue in self._errors()]

    def errors(self) -> list[str]:
        """``rule: message`` of each error in an OperationOutcome body."""
        return [f"{self._rule(i)}: {i.get('diagnostics', '')}" for i in self._errors()]


@dataclass(frozen=True)
class Retry:
    """A transient failure about to be retried: what happened and how long the client waits."""

    path: str
    status: int | None  # None: no answer (connection refused, reset, timed out)
    error: str  # the status's reason, or the transport error's class
    delay: float


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` of a response in seconds (delta-seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class PlatformClient:
    """``retry_for``: seconds one upload may spend waiting between retries before the last
    failure is given back (raised for a connection error, returned for a status);
    ``max_delay``: the longest wait between two attempts that the client picks itself (a longer
    ``Retry-After`` is still honoured while it fits in ``retry_for``)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        retry_for: float = 300.0,
        backoff: float = 0.5,
        max_delay: float = 15.0,
        timeout: float = 60,
        transport: httpx.BaseTransport | None = None,
        on_retry: Callable[[Retry], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if backoff <= 0:
            raise ValueError("backoff must be positive")  # else retrying would never end
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self._retry_for = retry_for
        self._backoff = backoff
        self._max_delay = max_delay
        self._on_retry = on_retry
        self._sleep = sleep

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | Callable[[], Iterable[bytes]],
        media_type: str,
        params: dict[str, str] | None,
        headers: dict[str, str] | None = None,
    ) -> Receipt:
        waited = 0.0
        attempt = 0
        while True:
            delay = min(self._backoff * 2**attempt, self._max_delay)
            try:
                response = self._http.request(
                    method,
                    path,
                    # A stream is made again for each attempt: a bulk upload is never in memory.
                    content=body() if callable(body) else body,
                    params=params,
                    headers={"Content-Type": media_type, **(headers or {})},
                )
            except httpx.TransportError as exc:
                if waited + delay > self._retry_for:
                    raise
                retry = Retry(path, None, type(exc).__name__, delay)
            else:
                asked = retry_after(response)
                if asked is not None:
                    delay = max(delay, asked)
                if response.status_code not in TRANSIENT_STATUS or waited + delay > self._retry_for:
                    try:
                        payload = response.json()
                    except ValueError:
                        payload = {"text": response.text}
                    return Receipt(response.status_code, payload, dict(response.headers))
                retry = Retry(path, response.status_code, response.reason_phrase, delay)
            if self._on_retry is not None:
                self._on_retry(retry)
            self._sleep(delay)
            waited += delay
            attempt += 1

    def submit_cda(
        self, body: bytes, *, institution: str | None = None, received_at: datetime | None = None
    ) -> Receipt:
        params = {}
        if institution:
            params["institution"] = institution
        if received_at:
            params["received_at"] = received_at.isoformat()
        return self._send("POST", "/cda", body, CDA_TYPE, params)

    def submit_fhir(
        self,
        body: bytes,
        *,
        resource_path: str = "",
        method: str = "POST",
        institution: str | None = None,
        received_at: datetime | None = None,
    ) -> Receipt:
        """POST a resource (to ``/fhir/<Type>``) or a transaction/batch Bundle (to ``/fhir``), or
        PUT a resource under its own id (``/fhir/<Type>/<id>``), which a retry cannot duplicate.
        An admin names the institution, and for a backfill the original receipt time."""
        headers = {}
        if institution:
            headers["X-HIE-Institution"] = institution
        if received_at:
            headers["X-HIE-Received-At"] = received_at.isoformat()
        return self._send(method, f"/fhir{resource_path}", body, FHIR_TYPE, {}, headers)

    def submit_bulk(
        self,
        path: str,
        content: Callable[[], Iterable[bytes]],
        media_type: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Receipt:
        """A bulk upload (``/fhir/$import``, ``/cda/batch``), streamed from ``content()``; its
        202 carries the job's URL in ``Content-Location``."""
        return self._send("POST", path, content, media_type, params or {}, headers)

    def job(self, url: str) -> Receipt:
        """A job's state: 202 (``X-Progress``) while it runs, 200 with its summary at the end."""
        # No params: httpx would replace the query of the URL (a page's ``state=``, ``after=``).
        return self._send("GET", url, b"", "application/json", None)
