"""One answer against its Questionnaire item: its value type, the item's answer options or answer
value set, and, by type, the limits, attachment, reference and quantity rules."""

from __future__ import annotations

import re
from typing import Any

from hie.validators.fhir_rules.elements import is_resource_type
from hie.validators.fhir_rules.questionnaire.attachments import check_attachment
from hie.validators.fhir_rules.questionnaire.comparisons import equal
from hie.validators.fhir_rules.questionnaire.issues import item_text, report_error, shown
from hie.validators.fhir_rules.questionnaire.json_values import CORE, extension_values
from hie.validators.fhir_rules.questionnaire.limits import (
    check_decimal_places,
    check_limits,
    check_text,
    check_uri,
)
from hie.validators.fhir_rules.questionnaire.quantities import check_quantity
from hie.validators.fhir_rules.questionnaire.rules import (
    ANSWER_OPTION,
    ANSWER_TYPE,
    REFERENCE_ANSWER,
)
from hie.validators.fhir_rules.questionnaire.value_sets import ValueSets
from hie.validators.fhir_rules.shapes import objects
from hie.validators.report import Report

# The answer value[x] each item type allows (HL7: choice/open-choice also take date, time,
# integer and string; text answers are strings).
ANSWER_TYPES: dict[str, tuple[str, ...]] = {
    "boolean": ("valueBoolean",),
    "decimal": ("valueDecimal",),
    "integer": ("valueInteger",),
    "date": ("valueDate",),
    "dateTime": ("valueDateTime",),
    "time": ("valueTime",),
    "string": ("valueString",),
    "text": ("valueString",),
    "url": ("valueUri",),
    "attachment": ("valueAttachment",),
    "reference": ("valueReference",),
    "quantity": ("valueQuantity",),
    "choice": ("valueCoding", "valueDate", "valueTime", "valueInteger", "valueString"),
    "open-choice": ("valueCoding", "valueDate", "valueTime", "valueInteger", "valueString"),
}
_ANSWER_KEYS = frozenset(
    {
        "valueBoolean", "valueDecimal", "valueInteger", "valueDate", "valueDateTime",
        "valueTime", "valueString", "valueUri", "valueAttachment", "valueCoding",
        "valueQuantity", "valueReference",
    }
)  # fmt: skip
_OPTION_KEYS = ("valueCoding", "valueString", "valueInteger", "valueDate", "valueTime")
_EXCLUSIVE = CORE + "questionnaire-optionExclusive"
_REST_TAIL = re.compile(r"(?:^|/)([A-Za-z][A-Za-z0-9]*)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")


def answer_value(answer: dict[str, Any]) -> tuple[str, Any] | None:
    """(value[x] key, value) of a response answer."""
    for key, value in answer.items():
        if key in _ANSWER_KEYS:
            return key, value
    return None


def check_answer(
    report: Report,
    value_sets: ValueSets,
    q_item: dict[str, Any],
    answer: dict[str, Any],
    path: str,
    count: int,
) -> None:
    """Check ``answer``, one of ``count`` answers to an item of the answerable ``q_item``."""
    found = answer_value(answer)
    if found is None:
        return
    key, value = found
    value_path = f"{path}.{key}"
    item_type = str(q_item.get("type"))
    allowed = ANSWER_TYPES[item_type]
    if key not in allowed:
        expected = " or ".join(allowed)
        report_error(
            report,
            ANSWER_TYPE.id,
            value_path,
            f"item '{q_item.get('linkId')}' has type {item_type}: its answers are {expected}, "
            f"not {key}",
            "structure",
        )
        return
    _check_options(report, value_sets, q_item, key, value, value_path, item_type, count)
    if key in ("valueInteger", "valueDecimal", "valueDate", "valueDateTime", "valueTime"):
        check_limits(report, q_item, key, value, value_path)
    if key == "valueDecimal":
        check_decimal_places(report, q_item, value, value_path)
    elif key == "valueString":
        check_text(report, q_item, value, value_path)
    elif key == "valueUri":
        check_uri(report, value, value_path)
    elif key == "valueAttachment":
        check_attachment(report, q_item, value, value_path)
    elif key == "valueReference":
        _check_reference(report, q_item, value, value_path)
    elif key == "valueQuantity":
        check_quantity(report, value_sets, q_item, value, value_path)


def _check_options(
    report: Report,
    value_sets: ValueSets,
    q_item: dict[str, Any],
    key: str,
    value: Any,
    path: str,
    item_type: str,
    count: int,
) -> None:
    options = objects(q_item.get("answerOption"))
    open_choice = item_type == "open-choice"
    if options and key in _OPTION_KEYS:
        typed = [o for o in options if key in o]
        matching = [o for o in typed if equal(key, value, o[key]) is not False]
        if not typed:
            if not open_choice:
                kind = key.removeprefix("value")
                report_error(
                    report,
                    ANSWER_OPTION.id,
                    path,
                    f"the item's answer options have no {kind} values, so a {kind} answer "
                    "is not one of them",
                    "code-invalid",
                )
        elif not matching:
            if not open_choice:
                report_error(
                    report,
                    ANSWER_OPTION.id,
                    path,
                    f"{shown(value)} is not one of the answer options of {item_text(q_item)}",
                    "code-invalid",
                )
        elif count > 1 and any(
            extension_values(o, _EXCLUSIVE, "valueBoolean") == [True] for o in matching
        ):
            report_error(
                report,
                ANSWER_OPTION.id,
                path,
                f"{shown(value)} is an exclusive option: it must be the only answer",
                "business-rule",
            )
        return
    value_set = q_item.get("answerValueSet")
    if key == "valueCoding" and isinstance(value_set, str) and isinstance(value, dict):
        membership = value_sets.membership(value_set)
        if membership is None:
            return
        if open_choice and not value.get("code") and not value.get("system"):
            return  # free text carried as a display-only Coding
        if membership.holds(value.get("system"), value.get("code")) is False:
            report_error(
                report,
                ANSWER_OPTION.id,
                path,
                f"{shown(value)} is not in the answer value set {value_set}",
                "code-invalid",
            )


def _check_reference(report: Report, q_item: dict[str, Any], value: Any, path: str) -> None:
    if not isinstance(value, dict):
        return
    reference = value.get("reference")
    target = value.get("type") if isinstance(value.get("type"), str) else None
    if isinstance(reference, str):
        if re.search(r"\s", reference):
            report_error(
                report,
                REFERENCE_ANSWER.id,
                f"{path}.reference",
                f"{reference!r} is not a valid reference (it contains white space)",
                "value",
            )
        tail = _REST_TAIL.search(reference)
        if tail is not None and not reference.startswith(("#", "urn:")):
            named = tail.group(1)
            if named[0].isupper() and not is_resource_type(named):
                report_error(
                    report,
                    REFERENCE_ANSWER.id,
                    f"{path}.reference",
                    f"{reference!r} refers to a {named}, which is not an R4 resource type",
                    "value",
                )
                return
            target = target or named
    allowed = [
        t
        for t in extension_values(q_item, CORE + "questionnaire-referenceResource", "valueCode")
        if isinstance(t, str)
    ]
    if target and allowed and "Resource" not in allowed and target not in allowed:
        report_error(
            report,
            REFERENCE_ANSWER.id,
            path,
            f"the answer refers to a {target}; the item allows {', '.join(allowed)}",
            "value",
        )
