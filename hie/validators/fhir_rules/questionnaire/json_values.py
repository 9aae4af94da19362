"""Values read from Questionnaires and responses as they arrive: JSON of any shape, so every
reader skips what is not the shape it expects instead of raising."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from hie.validators.fhir_rules.shapes import objects

# Where the core and SDC extensions a Questionnaire item carries are defined.
CORE = "http://hl7.org/fhir/StructureDefinition/"
SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"


def extension_values(element: dict[str, Any], url: str, key: str) -> list[Any]:
    return [e[key] for e in objects(element.get("extension")) if e.get("url") == url and key in e]


def extension_value(element: dict[str, Any], url: str) -> tuple[str, Any] | None:
    """(value key, value) of the first ``url`` extension of ``element``."""
    for extension in objects(element.get("extension")):
        if extension.get("url") == url:
            for key, value in extension.items():
                if key.startswith("value"):
                    return key, value
    return None


def number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        return None
