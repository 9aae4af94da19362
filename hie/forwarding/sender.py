"""One event to one destination over HTTP: the stored version read from the database, the
request built (``messages``), the bearer token read from the environment at that moment, and
the answer sorted into sent, a transient failure (retried) or a permanent one (recorded)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx

from hie.audit import mask
from hie.forwarding.messages import (
    UpstreamRequest,
    document_bundle,
    document_request,
    fhir_request,
)
from hie.storage import Connection
from hie.storage.forwarding import Delivery, Destination, stored_version

# The headers an hie upstream reads to store the record for its institution and month (an admin
# token's backfill); other FHIR servers ignore them.
INSTITUTION_HEADER = "X-HIE-Institution"
RECEIVED_AT_HEADER = "X-HIE-Received-At"
FHIR_JSON = "application/fhir+json"

# Retried with backoff, the message kept: the upstream may answer later. 401 too: a token
# refused is the configuration's fault, not the record's (fixed, the forwarder goes on where it
# stopped). Everything else the upstream says no to is this record's fault, recorded as failed
# (`hie forward retry` sends those again).
TRANSIENT_STATUS = frozenset({401, 408, 429})  # and every 5xx


class Transient(Exception):
    """Try again later: connection refused or cut, timeout, 5xx, 429, 408, 401 (the token
    refused), no token in the environment. The message says what, never the URL, the token or
    content."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


class Permanent(Exception):
    """The upstream refused the record (4xx), or it cannot be built: recorded failed."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Sent:
    status: int
    location: str | None


def delivery_of(event: dict[str, Any]) -> Delivery | None:
    """The delivery an accepted record's event asks for; None for anything else."""
    record = event.get("record")
    if event.get("type") != "record.accepted" or not isinstance(record, dict):
        return None
    if record.get("kind") == "fhir":
        logical_id = f"{record['resource_type']}/{record['id']}"
    else:
        logical_id = str(record["document_id"])
    return Delivery(
        UUID(str(event["event_id"])),
        str(event["institution"]["code"]),
        event.get("table"),
        logical_id,
        record.get("version"),
    )


def build_request(
    conn: Connection, destination: Destination, event: dict[str, Any], delivery: Delivery
) -> UpstreamRequest:
    """The request for the event's stored version; Permanent when it cannot be found."""
    record = event["record"]
    stored = stored_version(
        conn, delivery.institution_code, delivery.logical_id, int(delivery.version or 0)
    )
    if stored is None:
        raise Permanent(f"version {delivery.version} of the record is not stored")
    if record["kind"] == "fhir":
        return fhir_request(
            record["resource_type"],
            record["id"],
            stored["resource"],
            deleted=bool(stored["deleted"]),
        )
    if stored["raw_xml"] is None:
        raise Permanent("the document's bytes are not stored")
    bundle = document_bundle(
        delivery.logical_id,
        bytes(stored["raw_xml"]),
        table_code=delivery.table_code,
        replaces=record.get("replaces"),
        mode=destination.documents,
    )
    return document_request(bundle)


def _location(response: httpx.Response) -> str | None:
    header = response.headers.get("Location") or response.headers.get("Content-Location")
    if header:
        return str(header)[:500]
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        for entry in body.get("entry") or []:
            where = (entry.get("response") or {}).get("location")
            if isinstance(where, str):
                return where[:500]
    return None


def _diagnostics(response: httpx.Response) -> str:
    """The first issue of an OperationOutcome answer, in the upstream's words: logged and stored,
    so anything in it that looks like a resident ID number or a token is masked (another server
    may quote the values it refused)."""
    try:
        body = response.json()
        issue = body["issue"][0]
        text = issue.get("diagnostics") or issue.get("details", {}).get("text") or ""
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
        text = ""
    return f"HTTP {response.status_code}" + (f": {mask(str(text)[:300])}" if text else "")


def send(
    client: httpx.Client,
    destination: Destination,
    request: UpstreamRequest,
    *,
    institution_code: str,
    received_at: datetime | str | None,
) -> Sent:
    """Send one request; raises Transient or Permanent."""
    token = os.environ.get(destination.token_env)
    if not token:
        raise Transient(f"the environment variable {destination.token_env} is not set")
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": FHIR_JSON,
        INSTITUTION_HEADER: institution_code,
        "Prefer": "return=minimal",
    }
    if received_at is not None:
        headers[RECEIVED_AT_HEADER] = (
            received_at if isinstance(received_at, str) else received_at.isoformat()
        )
    content = None
    if request.body is not None:
        headers["Content-Type"] = FHIR_JSON
        content = json.dumps(request.body, ensure_ascii=False).encode()
    url = destination.base_url.rstrip("/") + ("/" + request.path if request.path else "")
    try:
        response = client.request(
            request.method, url, params=request.params or None, content=content, headers=headers
        )
    except httpx.TransportError as exc:  # refused, reset, timed out: the upstream is away
        raise Transient(type(exc).__name__) from None
    status = response.status_code
    if 200 <= status < 300:
        return Sent(status, _location(response))
    if status >= 500 or status in TRANSIENT_STATUS:
        raise Transient(_diagnostics(response), status)
    raise Permanent(_diagnostics(response), status)
