"""Attachment answers: the item's MIME types (questionnaire mimeType) and maximum size."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from hie.validators.fhir_rules.questionnaire.issues import report_error
from hie.validators.fhir_rules.questionnaire.json_values import CORE, extension_values, number
from hie.validators.fhir_rules.questionnaire.rules import ATTACHMENT
from hie.validators.report import Report


def check_attachment(report: Report, q_item: dict[str, Any], value: Any, path: str) -> None:
    if not isinstance(value, dict):
        return
    mime_types = extension_values(q_item, CORE + "mimeType", "valueCode")
    allowed = [t for t in mime_types if isinstance(t, str)]
    content_type = value.get("contentType")
    if allowed and isinstance(content_type, str):
        media = content_type.split(";", 1)[0].strip().lower()
        if not any(_media_matches(media, t.lower()) for t in allowed):
            report_error(
                report,
                ATTACHMENT.id,
                f"{path}.contentType",
                f"the attachment is {content_type}; the item allows {', '.join(allowed)}",
                "value",
            )
    limits = extension_values(q_item, CORE + "maxSize", "valueDecimal")
    limit = number(limits[0]) if limits else None
    size = _attachment_size(value)
    if limit is not None and size is not None and size > limit:
        report_error(
            report,
            ATTACHMENT.id,
            path,
            f"the attachment is {size} bytes; the item allows at most {limit}",
            "value",
        )


def _media_matches(media: str, allowed: str) -> bool:
    if allowed.endswith("/*"):
        return media.startswith(allowed[:-1])
    return media == allowed


def _attachment_size(value: dict[str, Any]) -> int | None:
    size = value.get("size")
    if isinstance(size, int) and not isinstance(size, bool):
        return size
    data = value.get("data")
    if isinstance(data, str):
        try:
            return len(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError):
            return None
    return None
