"""What goes upstream for an event (pure: no I/O).

Each request is written so that sending it twice changes nothing upstream:

- a FHIR resource is a conditional update by its first identifier
  (``PUT [base]/Type?identifier=system|value``), or ``PUT [base]/Type/id`` when it has none;
  a deleted version is ``DELETE [base]/Type/id``;
- a CDA document is an MHD-style transaction Bundle: a DocumentReference (masterIdentifier = the
  document id, attachment size and SHA-1 hash) created with ``ifNoneExist`` on that identifier,
  and, in ``mhd`` mode, a Binary with the original bytes under an id made from the document id
  (``PUT Binary/<id>``); in ``inline`` mode the bytes are the attachment's ``data`` instead, as
  hie's own MHD endpoint takes them.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

CDA_MEDIA_TYPE = "application/hl7-cda+xml"
# WS/T 500 document type codes (the catalog's CDA codes).
DOCUMENT_TYPE_SYSTEM = "urn:oid:2.16.156.10011.2.4"
# fullUrls of the Bundle's entries: the same for the same document on every resend.
_FULL_URLS = uuid.UUID("0d7c8f0e-2b1a-5e4f-8c3d-666f72776172")
_SEARCH_SYNTAX = set(",|$\\")


@dataclass(frozen=True)
class UpstreamRequest:
    """One HTTP request to the destination, relative to its base URL."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


def identifier_condition(resource: dict[str, Any]) -> str | None:
    """``system|value`` of the resource's first identifier with a value (``value`` alone when it
    has no system); None when it has none."""
    identifiers = resource.get("identifier")
    for identifier in identifiers if isinstance(identifiers, list) else []:
        if not isinstance(identifier, dict):
            continue
        value, system = identifier.get("value"), identifier.get("system")
        # A value with search syntax in it (``,`` ``|`` ``$`` ``\``) would need escaping that
        # not every server reads the same way: such a resource goes by id instead.
        if isinstance(value, str) and value and not _SEARCH_SYNTAX & set(value):
            if isinstance(system, str) and system and not _SEARCH_SYNTAX & set(system):
                return f"{system}|{value}"
            if system is None:
                return value
    return None


def fhir_request(
    resource_type: str, resource_id: str, resource: dict[str, Any] | None, *, deleted: bool
) -> UpstreamRequest:
    """The request for one FHIR version: conditional update by identifier, else by id."""
    if deleted or resource is None:
        return UpstreamRequest("DELETE", f"{resource_type}/{resource_id}")
    # The version and time are this platform's; upstream keeps its own.
    body = {k: v for k, v in resource.items() if k != "meta"}
    meta = {
        k: v
        for k, v in (resource.get("meta") or {}).items()
        if k not in ("versionId", "lastUpdated")
    }
    if meta:
        body["meta"] = meta
    condition = identifier_condition(resource)
    if condition is None:
        return UpstreamRequest("PUT", f"{resource_type}/{resource_id}", body=body)
    return UpstreamRequest("PUT", resource_type, {"identifier": condition}, body)


def document_identifier(document_id: str) -> dict[str, str]:
    """``root^extension`` of ClinicalDocument/id as a FHIR Identifier (the root as urn:oid:);
    a document id without extension is its root alone."""
    root, _, extension = document_id.partition("^")
    if extension:
        return {"system": f"urn:oid:{root}", "value": extension}
    return {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{root}"}


def binary_id(document_id: str) -> str:
    """The upstream Binary's id: the same for the same document (a FHIR id: 64 characters)."""
    return hashlib.sha256(document_id.encode()).hexdigest()


def document_bundle(
    document_id: str,
    xml: bytes,
    *,
    table_code: str | None,
    replaces: str | None = None,
    mode: str = "mhd",
) -> dict[str, Any]:
    """The transaction Bundle that publishes one CDA document upstream, harmless to resend."""
    identifier = document_identifier(document_id)
    attachment: dict[str, Any] = {
        "contentType": CDA_MEDIA_TYPE,
        "size": len(xml),
        # R4 Attachment.hash is the base64 SHA-1 of the data.
        "hash": base64.b64encode(hashlib.sha1(xml, usedforsecurity=False).digest()).decode(),
    }
    entries: list[dict[str, Any]] = []
    if mode == "inline":
        attachment["data"] = base64.b64encode(xml).decode()
    else:
        binary = binary_id(document_id)
        attachment["url"] = f"Binary/{binary}"
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(_FULL_URLS, 'Binary/' + document_id)}",
                "resource": {
                    "resourceType": "Binary",
                    "id": binary,
                    "contentType": CDA_MEDIA_TYPE,
                    "data": base64.b64encode(xml).decode(),
                },
                "request": {"method": "PUT", "url": f"Binary/{binary}"},
            }
        )
    reference: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "masterIdentifier": identifier,
        # No ``date``: an upstream (hie among them) reads it as the record's clinical time,
        # and the document's own time is inside it.
        "status": "current",
        "content": [{"attachment": attachment}],
    }
    if table_code:
        reference["type"] = {"coding": [{"system": DOCUMENT_TYPE_SYSTEM, "code": table_code}]}
    if replaces:
        reference["relatesTo"] = [
            {"code": "replaces", "target": {"identifier": document_identifier(replaces)}}
        ]
    condition = f"identifier={identifier['system']}|{identifier['value']}"
    entries.insert(
        0,
        {
            "fullUrl": f"urn:uuid:{uuid.uuid5(_FULL_URLS, 'DocumentReference/' + document_id)}",
            "resource": reference,
            "request": {"method": "POST", "url": "DocumentReference", "ifNoneExist": condition},
        },
    )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def document_request(bundle: dict[str, Any]) -> UpstreamRequest:
    return UpstreamRequest("POST", "", body=bundle)
