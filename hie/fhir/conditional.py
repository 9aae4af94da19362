"""Conditional reads (FHIR R4 http.html#cread), as HAPI answers them: ``If-None-Match`` naming
the current version, or ``If-Modified-Since`` not before the last change, is ``304 Not
Modified`` without a body (the ETag and Last-Modified headers kept)."""

from __future__ import annotations

from datetime import UTC
from email.utils import parsedate_to_datetime

from hie.fhir.content import parse_etag
from hie.fhir.responses import Answer


def not_modified(
    answer: Answer, if_none_match: str | None, if_modified_since: str | None
) -> Answer | None:
    """The 304 a successful read turns into under these headers, or None (answer as read)."""
    if answer.status != 200 or answer.resource is None:
        return None
    meta = answer.resource.get("meta") or {}
    headers = {k: v for k, v in answer.headers.items() if k in ("ETag", "Last-Modified")}
    if if_none_match is not None:
        # If-None-Match wins over If-Modified-Since when both are sent (RFC 9110 13.1.3).
        wanted = {parse_etag(tag) for tag in if_none_match.split(",")}
        if if_none_match.strip() == "*" or str(meta.get("versionId")) in {str(v) for v in wanted}:
            return Answer(304, None, headers)
        return None
    if if_modified_since is not None and "Last-Modified" in answer.headers:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return None  # an unreadable date is ignored (RFC 9110 13.1.3)
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        changed = parsedate_to_datetime(answer.headers["Last-Modified"])
        if changed <= since:
            return Answer(304, None, headers)
    return None
