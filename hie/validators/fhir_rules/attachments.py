"""IHE MHD submissions: a DocumentReference whose attachment is a CDA document.

The attachment is validated as a WS/T shared document along with the DocumentReference (its issues
join the resource's); the FHIR write path then stores it as a CDA record in the same transaction.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from hie.catalog import Catalog
from hie.validators import Issue, Report, Severity
from hie.validators.cda import validate_cda
from hie.validators.rules import register

CDA_MEDIA_TYPES = ("application/hl7-cda+xml", "application/cda+xml")

MHD_ATTACHMENT = register(
    "fhir.mhd.attachment",
    summary="A DocumentReference attachment marked as CDA holds a base64-encoded CDA document.",
    fix="Put the document's bytes, base64-encoded, in content.attachment.data with contentType "
    "application/hl7-cda+xml.",
)


def cda_attachment(resource: dict[str, Any]) -> bytes | None:
    """The CDA document inlined in a DocumentReference (``content.attachment.data``), if any."""
    if resource.get("resourceType") != "DocumentReference":
        return None
    contents = resource.get("content")
    for content in contents if isinstance(contents, list) else []:
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if not isinstance(attachment, dict):
            continue
        if attachment.get("contentType") in CDA_MEDIA_TYPES and attachment.get("data"):
            try:
                return base64.b64decode(str(attachment["data"]), validate=True)
            except (binascii.Error, ValueError):
                return b""
    return None


def check_cda_attachment(
    resource: dict[str, Any],
    report: Report,
    path: str = "",
    *,
    catalog: Catalog,
    declared: list[str] | None,
) -> None:
    """Validate a CDA attachment as the CDA endpoint would; its issues join ``report``."""
    data = cda_attachment(resource)
    if data is None:
        return
    where = f"{path or 'DocumentReference'}.content.attachment.data"
    if not data:
        report.add(
            Severity.ERROR,
            MHD_ATTACHMENT.id,
            "the CDA attachment is not valid base64",
            code="value",
            expression=where,
        )
        return
    for issue in validate_cda(data, catalog=catalog, declared=declared).report.issues:
        inside = f" (at {issue.expression})" if issue.expression else ""
        report.issues.append(
            Issue(
                issue.severity,
                issue.rule,
                f"attached CDA document: {issue.message}{inside}",
                issue.code,
                issue.line,
                issue.column,
                where,
            )
        )
