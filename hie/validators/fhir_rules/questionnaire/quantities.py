"""Quantity answers: the item's unit options or unit value set, and its minimum and maximum
quantities (SDC)."""

from __future__ import annotations

from typing import Any

from hie.validators.fhir_rules.questionnaire.comparisons import quantity_order
from hie.validators.fhir_rules.questionnaire.issues import report_error, shown
from hie.validators.fhir_rules.questionnaire.json_values import CORE, SDC, extension_values
from hie.validators.fhir_rules.questionnaire.rules import QUANTITY
from hie.validators.fhir_rules.questionnaire.value_sets import ValueSets
from hie.validators.fhir_rules.shapes import objects
from hie.validators.report import Report

_BOUNDS = ((SDC + "sdc-questionnaire-minQuantity", -1), (SDC + "sdc-questionnaire-maxQuantity", 1))


def check_quantity(
    report: Report, value_sets: ValueSets, q_item: dict[str, Any], value: Any, path: str
) -> None:
    if not isinstance(value, dict):
        return
    units = objects(extension_values(q_item, CORE + "questionnaire-unitOption", "valueCoding"))
    unit = (value.get("system"), value.get("code"))
    if units and not any((u.get("system"), u.get("code")) == unit for u in units):
        listed = ", ".join(str(u.get("code")) for u in units)
        report_error(
            report,
            QUANTITY.id,
            path,
            f"the unit {shown(unit[1] or value.get('unit'))} is not one of the item's unit "
            f"options ({listed})",
            "code-invalid",
        )
    unit_sets = extension_values(q_item, CORE + "questionnaire-unitValueSet", "valueCanonical")
    if unit_sets and isinstance(unit_sets[0], str):
        membership = value_sets.membership(unit_sets[0])
        if membership is not None and (unit[1] is None or membership.holds(*unit) is False):
            report_error(
                report,
                QUANTITY.id,
                path,
                f"the unit {shown(unit[1] or value.get('unit'))} is not in the item's "
                f"unit value set {unit_sets[0]}",
                "code-invalid",
            )
    for url, sign in _BOUNDS:
        limits = objects(extension_values(q_item, url, "valueQuantity"))
        if not limits:
            continue
        bound = "minimum" if sign < 0 else "maximum"
        order = quantity_order(value, limits[0])
        if order == "no-units":
            message = (
                f"{shown(value)} cannot be compared with the {bound} {shown(limits[0])}: "
                "both need a UCUM system and code"
            )
        elif order == "incompatible":
            message = (
                f"{shown(value)} cannot be compared with the {bound} {shown(limits[0])}: "
                "the units measure different things"
            )
        elif order == sign:
            word = "less" if sign < 0 else "more"
            message = f"{shown(value)} is {word} than the {bound} {shown(limits[0])}"
        else:
            continue
        report_error(report, QUANTITY.id, path, message, "value")
