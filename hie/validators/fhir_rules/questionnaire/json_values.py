"""Values read from Questionnaires and responses as they arrive: JSON of any shape, so every
reader skips what is not the shape it expects instead of raising."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

# Where the core and SDC extensions a Questionnaire item carries are defined.
CORE = "http://hl7.org/fhir/StructureDefinition/"
SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"


def dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def indexed(value: Any) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)]


def extension_values(element: dict[str, Any], url: str, key: str) -> list[Any]:
    return [e[key] for e in dicts(element.get("extension")) if e.get("url") == url and key in e]


def extension_value(element: dict[str, Any], url: str) -> tuple[str, Any] | None:
    """(value key, value) of the first ``url`` extension of ``element``."""
    for extension in dicts(element.get("extension")):
        if extension.get("url") == url:
            for key, value in extension.items():
                if key.startswith("value"):
                    return key, value
    return None


def number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        return None
