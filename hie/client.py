"""The platform's HTTP client (httpx): what ``hie push`` and ``hie demo`` upload with.

Retries only transient failures (connection errors, 429, 502, 503, 504) with exponential backoff;
an upload is idempotent on the platform (the same document again gets its original receipt), so a
retry after a lost response never stores anything twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
CDA_TYPE = "application/hl7-cda+xml"
FHIR_TYPE = "application/fhir+json"


@dataclass(frozen=True)
class Receipt:
    status: int
    body: dict[str, Any]

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


class PlatformClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 60,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self._retries = retries
        self._backoff = backoff

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _post(
        self,
        path: str,
        body: bytes,
        media_type: str,
        params: dict[str, str],
        headers: dict[str, str] | None = None,
    ) -> Receipt:
        attempt = 0
        while True:
            try:
                response = self._http.post(
                    path,
                    content=body,
                    params=params,
                    headers={"Content-Type": media_type, **(headers or {})},
                )
            except httpx.TransportError:
                if attempt >= self._retries:
                    raise
            else:
                if response.status_code not in TRANSIENT_STATUS or attempt >= self._retries:
                    try:
                        payload = response.json()
                    except ValueError:
                        payload = {"text": response.text}
                    return Receipt(response.status_code, payload)
            time.sleep(self._backoff * 2**attempt)
            attempt += 1

    def submit_cda(
        self, body: bytes, *, institution: str | None = None, received_at: datetime | None = None
    ) -> Receipt:
        params = {}
        if institution:
            params["institution"] = institution
        if received_at:
            params["received_at"] = received_at.isoformat()
        return self._post("/cda", body, CDA_TYPE, params)

    def submit_fhir(
        self,
        body: bytes,
        *,
        resource_path: str = "",
        institution: str | None = None,
        received_at: datetime | None = None,
    ) -> Receipt:
        """POST a resource (to ``/fhir/<Type>``) or a transaction/batch Bundle (to ``/fhir``).
        An admin names the institution, and for a backfill the original receipt time."""
        headers = {}
        if institution:
            headers["X-HIE-Institution"] = institution
        if received_at:
            headers["X-HIE-Received-At"] = received_at.isoformat()
        return self._post(f"/fhir{resource_path}", body, FHIR_TYPE, {}, headers)
