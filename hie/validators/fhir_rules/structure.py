"""Structure and types: the R4B pydantic models of fhir.resources, reconciled with R4.

fhir.resources 8 has no R4 package, only R4B (and R5, STU3). R4B keeps R4's data types and, for
the resources the platform ingests, R4's elements, so its models check what R4's element tree in
:mod:`~hie.validators.fhir_rules.elements` cannot: cardinality (required elements, arrays) and
primitive formats (dates, ids, codes, decimals). Where R4B and R4 differ, R4 wins:

- pydantic's "extra element" errors are dropped: the walk already reported every element that
  R4 does not define, and an element R4 defines but R4B dropped is valid R4;
- a "required element missing" error for an element R4 does not have (R4B-only) is dropped;
- resources of the 13 R4 types that R4B removed (MedicinalProduct*, SubstanceSpecification,
  EffectEvidenceSynthesis, RiskEvidenceSynthesis) get no model check, only the R4 element walk,
  and an information issue says so.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from hie.validators.fhir_rules.elements import children
from hie.validators.fhir_rules.tree import CHOICE
from hie.validators.report import Report, Severity
from hie.validators.rules import register

CARDINALITY = register(
    "fhir.structure.cardinality",
    summary="Required elements are present and repeating elements are arrays (FHIR R4 "
    "cardinality).",
    fix="Add the element the message names (it is 1..1 or 1..* in the R4 definition), and "
    "write repeating elements (0..*) as JSON arrays even when there is one value.",
)
FORMAT = register(
    "fhir.structure.format",
    summary="Primitive values match their FHIR R4 format (date, dateTime, instant, id, code, "
    "decimal, uri, ...).",
    fix="Write dates as YYYY, YYYY-MM or YYYY-MM-DD, dateTime with a time zone when it has a "
    "time (2019-07-01T08:30:00+08:00), ids with letters, digits, '-' and '.' only (up to 64).",
)
MODEL = register(
    "fhir.structure.model",
    summary="The resource matches the FHIR R4 model of its type.",
    fix="Correct the element the message names; compare it with the resource's R4 definition.",
)
NOT_MODELLED = register(
    "fhir.structure.not-modelled",
    summary="R4 resource types without an R4B model are checked against the R4 element tree "
    "only (no cardinality or format check).",
    fix="Nothing to fix; the resource is accepted with a shallower structure check.",
)

# Most errors one resource reports from the model; the rest are summarised in one issue.
MAX_MODEL_ISSUES = 100
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@cache
def model_class(resource_type: str) -> Any:
    """The R4B model of an R4 resource type, or None when R4B has none (cached)."""
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError):
        return None


def _json_name(segment: str) -> str:
    if segment.endswith("__ext"):
        return "_" + segment[: -len("__ext")]
    if segment == "class_fhir":
        return "class"
    return segment


def _locate(resource: dict[str, Any], base: str, loc: tuple[Any, ...]) -> tuple[str, str | None]:
    """The FHIRPath of a pydantic location, and why to drop its error (or None to keep it)."""
    path = base
    definition: str | None = str(resource.get("resourceType"))
    data: Any = resource
    for index, segment in enumerate(loc):
        if isinstance(segment, int):
            path += f"[{segment}]"
            data = data[segment] if isinstance(data, list) and segment < len(data) else None
        elif isinstance(segment, str) and _NAME.fullmatch(segment):
            name = _json_name(segment)
            path += f".{name}"
            if definition is None:
                continue
            element = children(definition).get(name.lstrip("_"))
            if element is None:
                return path, "not an R4 element"
            data = data.get(name) if isinstance(data, dict) else None
            definition = "Element" if name.startswith("_") else element.definition
            if element.resource:
                definition = None
        else:
            continue  # pydantic's union and validator tags name no element
        if definition is None and isinstance(data, dict) and index + 1 < len(loc):
            rtype = data.get("resourceType")
            if isinstance(rtype, str) and model_class(rtype) is None:
                return path, "inside a resource without an R4B model"
            definition = rtype if isinstance(rtype, str) else None
    return path, None


def _within(path: str, reported: set[str]) -> bool:
    """Whether ``path`` is at or below a path already reported."""
    return any(path == r or path.startswith((r + ".", r + "[")) for r in reported)


def _issue(error: Any, path: str) -> tuple[str, str, str]:
    """Rule, message and IssueType of one pydantic error."""
    kind = str(error.get("type", ""))
    message = str(error.get("msg", ""))
    if kind in ("missing", "model_field_validation.missing") or kind.endswith(".missing"):
        return CARDINALITY.id, "a required element is missing", "required"
    if kind == "list_type":
        return CARDINALITY.id, "the element repeats: write it as a JSON array", "structure"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return MODEL.id, "the element is written as a JSON object", "structure"
    if "Expect any of field value" in message:
        choices = message.split("[", 1)[-1].rstrip("].").replace("'", "")
        return CHOICE.id, f"one of {choices} is required", "required"
    if (
        "regex" in message
        or kind.endswith("_parsing")
        or kind
        in ("string_type", "int_type", "string_pattern_mismatch", "date_from_datetime_parsing")
        or kind.startswith(("date", "time", "decimal", "greater_than", "less_than", "string_too"))
    ):
        value = error.get("input")
        shown = f" ({type(value).__name__})" if not isinstance(value, str) else ""
        return FORMAT.id, f"not a valid value{shown}: {message}", "value"
    if "one_of_many" in message or "choice" in message.lower() or "Any of one field" in message:
        return CHOICE.id, message, "structure"
    return MODEL.id, message, "structure"


def check_structure(resource: dict[str, Any], base: str, report: Report, reported: set[str]) -> Any:
    """Validate ``resource`` with its R4B model; return the model, or None when it fails.

    ``reported`` are the paths the R4 walk already found wrong: a second issue there from the
    model would only repeat it.
    """
    cls = model_class(str(resource.get("resourceType")))
    if cls is None:
        report.add(
            Severity.INFORMATION,
            NOT_MODELLED.id,
            f"{base}: {resource.get('resourceType')} has no R4B model; checked against the R4 "
            "element tree only",
            code="informational",
            expression=base,
        )
        return None
    try:
        return cls.model_validate(resource)
    except (KeyError, TypeError, AttributeError) as exc:
        # fhir_core raises these, not a ValidationError, on a nested resource of a type R4B
        # lacks (KeyError 'R4.MedicinalProductType'); the R4 walk has checked its elements.
        report.add(
            Severity.INFORMATION,
            NOT_MODELLED.id,
            f"{base}: the model check was skipped ({type(exc).__name__}): the resource holds a "
            "resource type without an R4B model; checked against the R4 element tree only",
            code="informational",
            expression=base,
        )
        return None
    except ValidationError as exc:
        kept = 0
        for error in exc.errors():
            loc = tuple(error.get("loc", ()))
            kind = str(error.get("type", ""))
            if kind == "extra_forbidden":
                continue  # the R4 walk decides which elements exist
            path, dropped = _locate(resource, base, loc)
            if dropped is not None or _within(path, reported):
                continue
            rule, message, code = _issue(error, path)
            if kept < MAX_MODEL_ISSUES:
                report.add(Severity.ERROR, rule, f"{path}: {message}", code=code, expression=path)
            kept += 1
        if kept > MAX_MODEL_ISSUES:
            report.add(
                Severity.ERROR,
                MODEL.id,
                f"{base}: {kept - MAX_MODEL_ISSUES} more structure errors not listed",
                code="too-costly",
                expression=base,
            )
        return None if kept else _lenient(cls, resource)


def _lenient(cls: Any, resource: dict[str, Any]) -> Any:
    """The model of a resource whose only model errors are R4/R4B differences: built without
    validation, so that callers still get an object (its R4-only parts stay as plain data)."""
    return cls.model_construct(**{k: v for k, v in resource.items() if k != "resourceType"})
