"""FHIR resources in XML: parsed safely, then read into the JSON form every FHIR rule works on.

The XML is first parsed with the hardened parser (no DTD, no entities, bounded size and depth);
fhir.resources then reads it into a model, whose JSON form goes through the same validation as
JSON input. Elements the models do not know, and values they cannot read, are errors here.
"""

from __future__ import annotations

import json
from typing import Any

from hie.validators.report import Report, Severity
from hie.validators.rules import register
from hie.validators.xml import parse_xml

FHIR_NS = "http://hl7.org/fhir"

XML_FORM = register(
    "fhir.xml",
    summary="A FHIR resource in XML follows the FHIR XML format: the resource element in the "
    "http://hl7.org/fhir namespace, each element known, each value in a value attribute.",
    fix="Check the element named in the message against the resource's definition in FHIR R4; "
    "or send the resource as JSON.",
)


def parse_fhir_xml(data: bytes, *, max_bytes: int) -> tuple[dict[str, Any] | None, Report]:
    """The resource as a JSON-form dict, or None with the reasons in the report."""
    from fhir.resources.R4B import get_fhir_model_class

    parsed = parse_xml(data, max_bytes=max_bytes)
    report = parsed.report
    if parsed.tree is None:
        return None, report
    root = parsed.tree.getroot()
    namespace, _, name = root.tag.rpartition("}")
    if namespace.lstrip("{") != FHIR_NS:
        report.add(
            Severity.ERROR,
            XML_FORM.id,
            f"the root element {name} is not in the FHIR namespace {FHIR_NS}",
            code="structure",
            line=root.sourceline,
        )
        return None, report
    try:
        model_class = get_fhir_model_class(name)
    except (KeyError, ValueError, AttributeError):
        report.add(
            Severity.ERROR,
            XML_FORM.id,
            f"{name} is not a FHIR resource type",
            code="structure",
            line=root.sourceline,
        )
        return None, report
    try:
        model = model_class.model_validate_xml(data)
    except Exception as exc:
        detail = f"unknown element {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
        report.add(
            Severity.ERROR,
            XML_FORM.id,
            f"not a valid {name}: {detail.splitlines()[0] if detail else type(exc).__name__}",
            code="structure",
            line=root.sourceline,
        )
        return None, report
    resource: dict[str, Any] = json.loads(model.model_dump_json())
    return resource, report
