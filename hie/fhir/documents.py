"""IHE MHD-style submissions: a DocumentReference whose attachment is a CDA document.

Boundary with the CDA pipeline (hie/cda). Today such a DocumentReference is validated and stored
as a FHIR resource only, with a warning naming this rule; its CDA attachment is not yet checked
against the WS/T rules nor counted as a document.

TODO(cda): route the attachment through the CDA pipeline in the same database transaction as the
DocumentReference. That needs from hie/cda a submission function that takes the caller's
connection and Arrival (``submit_cda`` opens its own transaction and upload row today), so that a
FHIR transaction stays atomic; ``cda_attachment`` below is where the document comes from.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from hie.validators import Report, Severity
from hie.validators.rules import register

CDA_MEDIA_TYPES = ("application/hl7-cda+xml", "application/cda+xml")

MHD_CDA = register(
    "fhir.mhd.cda",
    summary="A DocumentReference carrying a CDA document is stored as FHIR; the CDA document "
    "itself is not yet validated as a shared document (POST /cda does that).",
    fix="Submit the CDA document to POST /cda as well, until MHD submissions go through the "
    "CDA pipeline.",
)


def cda_attachment(resource: dict[str, Any]) -> bytes | None:
    """The CDA document inlined in a DocumentReference (``content.attachment.data``), if any."""
    if resource.get("resourceType") != "DocumentReference":
        return None
    for content in resource.get("content") or []:
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if not isinstance(attachment, dict):
            continue
        if attachment.get("contentType") in CDA_MEDIA_TYPES and attachment.get("data"):
            try:
                return base64.b64decode(str(attachment["data"]), validate=True)
            except (binascii.Error, ValueError):
                return None
    return None


def note_cda_attachment(resource: dict[str, Any], report: Report, path: str = "") -> None:
    """Warn that a CDA attachment was not validated as CDA (see the module's TODO)."""
    if cda_attachment(resource) is not None:
        report.add(
            Severity.WARNING,
            MHD_CDA.id,
            "the CDA document in this DocumentReference was stored but not validated as a "
            "WS/T shared document; submit it to POST /cda as well",
            code="informational",
            expression=f"{path or 'DocumentReference'}.content.attachment",
        )
