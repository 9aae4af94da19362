"""ITI-67 Find Document References: ``GET /fhir/DocumentReference`` across institutions.

The resident is found through the person index (``patient`` names a Patient of the caller's
institution, ``patient.identifier`` any identifier the index knows), so one search finds their
documents at every institution; :func:`hie.documents.service.readable` then keeps what the
caller may see. MHD makes ``patient`` (or ``patient.identifier``) and ``status`` required.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hie.auth import Principal
from hie.documents.service import readable, require_searcher
from hie.fhir.dates import date_range
from hie.fhir.responses import Answer, bundle, error
from hie.persons.service import find_persons
from hie.storage import Connection
from hie.storage.documents import DocumentQuery, DocumentRow, search_documents
from hie.storage.persons import get_link

STATUSES = ("current", "superseded", "entered-in-error")
# Token parameters and the registry column each searches.
TOKEN_PARAMETERS = {
    "type": "types",
    "category": "categories",
    "facility": "facilities",
    "setting": "settings",
    "format": "formats",
    "identifier": "identifiers",
    "related": "related",
    "author": "authors",
}
DATE_PARAMETERS = ("date", "period")
PATIENT_PARAMETERS = ("patient", "patient.identifier")
# Shape the answer only.
IGNORED = frozenset({"_format", "_pretty", "_count"})
SUPPORTED = sorted({*TOKEN_PARAMETERS, *DATE_PARAMETERS, *PATIENT_PARAMETERS, "status"})
MAX_COUNT = 1000
_PREFIXES = ("eq", "ge", "gt", "le", "lt")


class SearchRefused(ValueError):
    """A search MHD does not allow (HTTP 400)."""


@dataclass
class Found:
    """A search's answer and what its audit entry names."""

    answer: Answer
    persons: list[int] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)


def _split(value: str) -> list[str]:
    return [v for v in (part.strip() for part in value.split(",")) if v]


def _bounds(name: str, value: str, zone: ZoneInfo) -> list[tuple[str, str, datetime]]:
    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    text = value[2:] if value[:2] in _PREFIXES else value
    found = date_range(text, zone)
    if found is None:
        raise SearchRefused(f"{name}={value!r}: not a FHIR date")
    low, high = found
    if name == "date":
        return {
            "eq": [("date", ">=", low), ("date", "<", high)],
            "ge": [("date", ">=", low)],
            "gt": [("date", ">=", high)],
            "le": [("date", "<", high)],
            "lt": [("date", "<", low)],
        }[prefix]
    # period: the document's period [period_low, period_high] against the value's range.
    return {
        "eq": [("period_low", "<", high), ("period_high", ">=", low)],
        "ge": [("period_high", ">=", low)],
        "gt": [("period_high", ">=", high)],
        "le": [("period_low", "<", high)],
        "lt": [("period_low", "<", low)],
    }[prefix]


def _subjects(
    conn: Connection, principal: Principal, institution: str | None, pairs: list[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[int]]:
    """The resident's persons, and the (institution, record) pairs named directly."""
    persons: set[int] = set()
    records: set[tuple[str, str]] = set()
    for name, value in pairs:
        if name == "patient.identifier":
            system, bar, code = value.partition("|")
            if not bar or not system or not code:
                raise SearchRefused("patient.identifier must be system|value")
            persons.update(find_persons(conn, system, code, institution or ""))
        elif name == "patient":
            reference = value.strip()
            if "Patient/" in reference:
                reference = "Patient/" + reference.rsplit("Patient/", 1)[1]
            elif "/" not in reference:
                reference = f"Patient/{reference}"
            else:
                raise SearchRefused(f"patient={value!r} is not a Patient reference")
            if institution is None:
                raise SearchRefused(
                    "patient= names a Patient of one institution: send X-HIE-Institution, or "
                    "search by patient.identifier"
                )
            records.add((institution, reference))
            link = get_link(conn, institution, reference)
            if link is not None:
                persons.add(link.person_id)
    del principal  # the caller's scope is applied by readable(), after the search
    return sorted(records), sorted(persons)


def find_documents(
    conn: Connection,
    principal: Principal,
    institution: str | None,
    pairs: list[tuple[str, str]],
    *,
    zone: ZoneInfo,
    base: str,
    self_url: str,
) -> Found:
    """Answer an ITI-67 search (400 for what MHD refuses)."""
    require_searcher(principal)
    try:
        query, count = _query(conn, principal, institution, pairs, zone)
    except SearchRefused as exc:
        return Found(error(400, "invalid", str(exc)))
    rows = readable(conn, principal, search_documents(conn, query[0]))
    page = rows[:count]
    entries = [
        {
            "fullUrl": f"{base}/DocumentReference/{row.id}",
            "resource": served(row, base),
            "search": {"mode": "match"},
        }
        for row in page
    ]
    body = bundle("searchset", entries, links=[("self", self_url)], total=len(rows))
    return Found(Answer(200, body), query[1], [row.id for row in page])


def _query(
    conn: Connection,
    principal: Principal,
    institution: str | None,
    pairs: list[tuple[str, str]],
    zone: ZoneInfo,
) -> tuple[tuple[DocumentQuery, list[int]], int]:
    names = {name for name, _ in pairs}
    for name in names:
        base_name = name.split(":", 1)[0]
        if base_name in IGNORED:
            continue
        if ":" in name:
            raise SearchRefused(f"modifier {name!r} is not supported on DocumentReference")
        if name not in SUPPORTED:
            raise SearchRefused(
                f"Unknown search parameter {name!r} for resource type DocumentReference. "
                f"Valid search parameters for this search are: {SUPPORTED}"
            )
    if not names & set(PATIENT_PARAMETERS):
        raise SearchRefused("MHD ITI-67: the patient or patient.identifier parameter is required")
    if "status" not in names:
        raise SearchRefused("MHD ITI-67: the status parameter is required")
    statuses: list[str] = []
    for name, value in pairs:
        if name == "status":
            for status in _split(value):
                if status not in STATUSES:
                    raise SearchRefused(f"status={status!r} is not one of {', '.join(STATUSES)}")
                statuses.append(status)
    token_filters = [
        (TOKEN_PARAMETERS[name], _split(value)) for name, value in pairs if name in TOKEN_PARAMETERS
    ]
    bounds = [
        b for name, value in pairs if name in DATE_PARAMETERS for b in _bounds(name, value, zone)
    ]
    count = MAX_COUNT
    for name, value in pairs:
        if name == "_count":
            if not value.isascii() or not value.isdigit():
                raise SearchRefused(f"_count={value!r} is not a whole number")
            count = min(int(value), MAX_COUNT)
    records, persons = _subjects(conn, principal, institution, pairs)
    query = DocumentQuery(persons, records, statuses, token_filters, bounds, limit=MAX_COUNT)
    return (query, persons), count


def served(row: DocumentRow, base: str) -> dict[str, Any]:
    """The stored DocumentReference as served: its retrieval URL absolute."""
    resource = dict(row.resource)
    contents: Iterable[Any] = resource.get("content") or []
    fixed = []
    for content in contents:
        content = dict(content)
        attachment = dict(content.get("attachment") or {})
        url = attachment.get("url")
        if isinstance(url, str) and url.startswith("/"):
            attachment["url"] = base.removesuffix("/fhir") + url
        content["attachment"] = attachment
        fixed.append(content)
    resource["content"] = fixed
    return resource
