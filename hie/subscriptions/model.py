"""A FHIR R4 Subscription read into what the platform delivers (pure, no I/O).

Only the rest-hook channel is served: the subscriber's endpoint receives a POST for every
accepted version of a resource its criteria (a search, ``Observation?code=...``) match, with no
body (``channel.payload`` absent: a notification) or the resource (``application/fhir+json``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SUBSCRIPTION = "Subscription"
CHANNEL_TYPES = ("rest-hook",)
PAYLOADS = ("application/fhir+json",)
# What a client may write; `error` is set by the server only, `active` is taken as a request
# (the deliverer activates it).
CLIENT_STATUSES = ("requested", "active", "off")
# A transient answer of the subscriber: tried again with backoff.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_HEADER = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*)")
_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")


@dataclass(frozen=True)
class Problem:
    message: str
    expression: str
    code: str = "invalid"


@dataclass(frozen=True)
class Spec:
    """What a valid Subscription asks for."""

    status: str
    resource_type: str
    query: list[tuple[str, str]]
    criteria: str
    endpoint: str
    payload: str | None
    headers: list[str]


def split_criteria(criteria: str) -> tuple[str, list[tuple[str, str]]]:
    """``Observation?code=x|y`` into the type and the query's pairs (ValueError if no type)."""
    resource_type, _, query = criteria.strip().partition("?")
    if not _TYPE.fullmatch(resource_type):
        raise ValueError(f"{criteria!r} does not start with a resource type (Observation?...)")
    return resource_type, parse_qsl(query, keep_blank_values=True)


def read_spec(resource: dict[str, Any]) -> tuple[Spec | None, list[Problem]]:
    """The spec of a Subscription, or every problem that keeps it from being served."""
    problems: list[Problem] = []
    status = resource.get("status")
    if status not in CLIENT_STATUSES:
        problems.append(
            Problem(
                f"status must be {', '.join(CLIENT_STATUSES)} ('error' is set by the server)",
                "Subscription.status",
            )
        )
    found = resource.get("channel")
    channel: dict[str, Any] = found if isinstance(found, dict) else {}
    kind = channel.get("type")
    if kind not in CHANNEL_TYPES:
        problems.append(
            Problem(
                f"channel.type {kind!r} is not served; use {' or '.join(CHANNEL_TYPES)}",
                "Subscription.channel.type",
                "not-supported",
            )
        )
    endpoint = channel.get("endpoint")
    parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(
            Problem(
                "channel.endpoint must be an http or https URL", "Subscription.channel.endpoint"
            )
        )
    payload = channel.get("payload")
    if payload is not None and payload.split(";")[0].strip() not in PAYLOADS:
        problems.append(
            Problem(
                f"channel.payload {payload!r} is not served: leave it out (notification only) "
                f"or use {' or '.join(PAYLOADS)}",
                "Subscription.channel.payload",
                "not-supported",
            )
        )
    headers = channel.get("header") or []
    for i, header in enumerate(headers):
        if not isinstance(header, str) or not _HEADER.fullmatch(header):
            problems.append(
                Problem("a header is written 'Name: value'", f"Subscription.channel.header[{i}]")
            )
    criteria = resource.get("criteria")
    resource_type, query = "", list[tuple[str, str]]()
    try:
        resource_type, query = split_criteria(criteria if isinstance(criteria, str) else "")
    except ValueError as exc:
        problems.append(Problem(str(exc), "Subscription.criteria"))
    if problems or not isinstance(endpoint, str) or not isinstance(criteria, str):
        return None, problems
    return (
        Spec(
            status="requested" if status == "active" else str(status),
            resource_type=resource_type,
            query=query,
            criteria=criteria.strip(),
            endpoint=endpoint,
            payload=None if payload is None else PAYLOADS[0],
            headers=list(headers),
        ),
        [],
    )


def header_pairs(headers: list[str]) -> dict[str, str]:
    """``channel.header`` strings as HTTP headers."""
    out: dict[str, str] = {}
    for header in headers:
        name, _, value = header.partition(":")
        out[name.strip()] = value.strip()
    return out


def backoff(attempts: int, base: float, most: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling from ``base``."""
    return float(min(most, base * 2 ** max(0, attempts - 1)))


def capability_entry() -> dict[str, Any]:
    """Subscription in the CapabilityStatement: rest-hook, criteria a search of a served type."""
    return {
        "type": SUBSCRIPTION,
        "interaction": [
            {"code": code} for code in ("read", "create", "update", "delete", "search-type")
        ],
        "documentation": "R4 Subscriptions with the rest-hook channel (channel.type rest-hook; "
        "channel.payload absent for a notification without body, or application/fhir+json for "
        "the resource; channel.header sent with each POST). criteria is a search of a served "
        "type (Observation?code=http://loinc.org|8867-4), checked on create. A subscription sees "
        "what its owner token may read. Status requested becomes active once `hie worker` "
        "takes it, and error after repeated failed deliveries.",
        "searchParam": [
            {"name": "_id", "type": "token"},
            {"name": "status", "type": "token"},
        ],
    }
