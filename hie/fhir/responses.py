"""FHIR HTTP answers: the body, status and headers (ETag, Location, Last-Modified), ``Prefer``.

Interactions return an :class:`Answer`, independent of the web framework; the routes turn it
into a response, and a Bundle entry turns it into ``entry.response``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal

import simplejson

from hie.fhir.content import etag, http_date, instant, served_form
from hie.outcome import OutcomeIssue, operation_outcome
from hie.validators import Report

FHIR_JSON = "application/fhir+json"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")

ReturnMode = Literal["minimal", "representation", "OperationOutcome"]


@dataclass(frozen=True)
class Preferences:
    """The ``Prefer`` header: what a write returns, and how unknown search parameters are
    handled (RFC 7240; FHIR R4 http.html#ops and search.html#errors)."""

    # None: not asked; a single interaction then returns the resource, a Bundle entry does not.
    return_mode: ReturnMode | None = None
    strict: bool = False
    # handling=lenient: unknown search parameters are ignored with a warning (else 400).
    lenient: bool = False

    @classmethod
    def parse(cls, header: str | None) -> Preferences:
        mode: ReturnMode | None = None
        strict = lenient = False
        for part in (header or "").replace(";", ",").split(","):
            key, _, value = part.strip().partition("=")
            value = value.strip().strip('"')
            if key == "return" and value in ("minimal", "representation", "OperationOutcome"):
                mode = value  # type: ignore[assignment]
            elif key == "handling":
                strict = value == "strict"
                lenient = value == "lenient"
        return cls(mode, strict, lenient)


@dataclass
class Answer:
    """One interaction's result: what a response (or a Bundle entry's response) carries."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    location: str | None = None  # "<Type>/<id>/_history/<vid>", relative to the base
    # The resource written or read, for Bundle entries (Prefer decides if it is sent).
    resource: dict[str, Any] | None = None
    outcome: dict[str, Any] | None = None

    @property
    def status_line(self) -> str:
        return f"{self.status} {HTTPStatus(self.status).phrase}"

    def to_bytes(self) -> bytes:
        if self.body is None:
            return b""
        # simplejson: it writes RawJSON (resources spliced as stored, see reads.py) and
        # Decimal (a FHIR decimal keeps its digits, as 1.50) as they are.
        return simplejson.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()

    def plain_body(self) -> dict[str, Any] | None:
        """The body as plain JSON values (spliced JSON text parsed; decimals as Decimal), for
        writers that walk it, such as FHIR XML."""
        if self.body is None:
            return None
        plain: dict[str, Any] = simplejson.loads(self.to_bytes(), use_decimal=True)
        return plain


def entry_resource(entry: dict[str, Any]) -> dict[str, Any]:
    """The resource of a Bundle entry as a dict: search pages carry their resources as JSON
    text (``RawJSON``, hie/fhir/reads.py), parsed here for code that looks inside them."""
    resource = entry.get("resource")
    if isinstance(resource, simplejson.RawJSON):
        parsed: dict[str, Any] = simplejson.loads(resource.encoded_json, use_decimal=True)
        return parsed
    return resource if isinstance(resource, dict) else {}


def outcome(
    severity: str, code: str, message: str, *, expression: str | None = None
) -> dict[str, Any]:
    return operation_outcome([OutcomeIssue(severity, code, message, expression=expression)])


def failure(status: int, report: Report) -> Answer:
    body = report.to_operation_outcome()
    return Answer(status, body, outcome=body)


def error(status: int, code: str, message: str) -> Answer:
    body = outcome("error", code, message)
    return Answer(status, body, outcome=body)


def information(status: int, message: str) -> Answer:
    body = outcome("information", "informational", message)
    return Answer(status, body, outcome=body)


def resource_answer(
    status: int,
    resource: dict[str, Any],
    version: int,
    last_updated: datetime,
    *,
    prefs: Preferences,
    base: str,
    report: Report | None = None,
    write: bool = False,
) -> Answer:
    """The answer of a write or a read: headers from the version, body as ``Prefer`` asks."""
    served = served_form(resource, version, last_updated)
    path = f"{resource['resourceType']}/{resource['id']}/_history/{version}"
    headers = {"ETag": etag(version), "Last-Modified": http_date(last_updated)}
    if write:
        headers["Location"] = f"{base}/{path}"
    information = (
        report.to_operation_outcome()
        if report is not None and report.issues
        else outcome("information", "informational", f"{path}: {HTTPStatus(status).phrase}")
    )
    mode = prefs.return_mode or "representation"
    if mode == "minimal":
        body = None
    elif mode == "OperationOutcome":
        body = information
    else:
        body = served
    return Answer(status, body, headers, path, served, information)


def bundle(
    kind: str,
    entries: list[dict[str, Any]],
    *,
    links: list[tuple[str, str]] | None = None,
    total: int | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant(datetime.now(UTC))},
        "type": kind,
    }
    if total is not None:
        result["total"] = total
    if links:
        result["link"] = [{"relation": rel, "url": url} for rel, url in links]
    if entries:
        result["entry"] = entries
    return result
