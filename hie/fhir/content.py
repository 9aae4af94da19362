"""A resource's stored form, its content hash, and the meta the server adds when serving it.

The server owns ``meta.versionId`` and ``meta.lastUpdated``: they are dropped before storing and
hashing (so re-sending a resource as it was read is recognised as unchanged) and put back, from
the stored version, whenever a resource is served.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import simplejson

SERVER_META = ("versionId", "lastUpdated")


def stored_form(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` without the server-owned meta elements (a shallow copy when it had them)."""
    meta = resource.get("meta")
    if not isinstance(meta, dict) or not any(k in meta for k in SERVER_META):
        return resource
    kept = {k: v for k, v in meta.items() if k not in SERVER_META}
    result = {k: v for k, v in resource.items() if k != "meta"}
    if kept:
        result["meta"] = kept
    return result


def content_hash(resource: dict[str, Any]) -> bytes:
    """SHA-256 of the canonical JSON (sorted keys, no spaces): equal content, equal hash."""
    # simplejson writes a Decimal as its digits (1.50), as the resource is stored.
    text = simplejson.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).digest()


def instant(moment: datetime) -> str:
    """A FHIR instant in UTC with milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def served_form(resource: dict[str, Any], version: int, last_updated: datetime) -> dict[str, Any]:
    """The stored resource as served: with its version and receipt time in meta."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = instant(last_updated)
    served = {"resourceType": resource["resourceType"]}
    if "id" in resource:
        served["id"] = resource["id"]
    served["meta"] = meta
    served.update((k, v) for k, v in resource.items() if k not in ("meta", "resourceType", "id"))
    return served


def etag(version: int) -> str:
    return f'W/"{version}"'


def parse_etag(value: str | None) -> int | None:
    """The version of an ``If-Match`` value (``W/"3"``, ``"3"`` or ``3``); None if unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    return int(text) if text.isascii() and text.isdigit() else None


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)
