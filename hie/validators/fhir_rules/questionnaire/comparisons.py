"""Comparing answer values with limits, answer options and enableWhen answers: numbers, (partial)
dates, times and strings, codings, and quantities in UCUM units of the same kind. Every
comparison answers None when hie cannot tell, so that no valid answer is rejected."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from hie.validators.fhir_rules.questionnaire.json_values import number

_UCUM = "http://unitsofmeasure.org"
_DATE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:\d{2})?)?)?)?"
)

# UCUM units hie can convert between, by kind and factor to the kind's base unit.
_UCUM_UNITS: dict[str, tuple[str, Decimal]] = {
    "m": ("length", Decimal(1)),
    "km": ("length", Decimal(1000)),
    "cm": ("length", Decimal("0.01")),
    "mm": ("length", Decimal("0.001")),
    "um": ("length", Decimal("0.000001")),
    "[in_i]": ("length", Decimal("0.0254")),
    "[ft_i]": ("length", Decimal("0.3048")),
    "[yd_i]": ("length", Decimal("0.9144")),
    "[mi_i]": ("length", Decimal("1609.344")),
    "g": ("mass", Decimal(1)),
    "kg": ("mass", Decimal(1000)),
    "mg": ("mass", Decimal("0.001")),
    "ug": ("mass", Decimal("0.000001")),
    "[lb_av]": ("mass", Decimal("453.59237")),
    "[oz_av]": ("mass", Decimal("28.349523125")),
    "L": ("volume", Decimal(1)),
    "dL": ("volume", Decimal("0.1")),
    "mL": ("volume", Decimal("0.001")),
    "uL": ("volume", Decimal("0.000001")),
    "s": ("time", Decimal(1)),
    "min": ("time", Decimal(60)),
    "h": ("time", Decimal(3600)),
    "d": ("time", Decimal(86400)),
    "wk": ("time", Decimal(604800)),
}


def _date_key(value: Any) -> tuple[tuple[int, int, int, str], str | None] | None:
    """A date or dateTime as its earliest moment (missing month/day count as the first), with
    its time zone; HL7 compares partial dates that way (2022-06-30 is after 2022-06)."""
    if not isinstance(value, str):
        return None
    match = _DATE.fullmatch(value)
    if match is None:
        return None
    year, month, day, time, zone = match.groups()
    return (int(year), int(month or 1), int(day or 1), time or ""), zone


def _compare_dates(left: Any, right: Any) -> int | None:
    a, b = _date_key(left), _date_key(right)
    if a is None or b is None:
        return None
    (a_key, a_zone), (b_key, b_zone) = a, b
    if a_key[3] and b_key[3] and a_zone != b_zone:
        a_key, b_key = (*a_key[:3], ""), (*b_key[:3], "")  # zones differ: compare the days
        if a_key == b_key:
            return None
    return (a_key > b_key) - (a_key < b_key)


def compare(key: str, left: Any, right: Any) -> int | None:
    """-1, 0 or 1 for two answer values of the kind ``key`` names; None when not comparable."""
    if key in ("valueInteger", "valueDecimal"):
        a, b = number(left), number(right)
        return None if a is None or b is None else (a > b) - (a < b)
    if key in ("valueDate", "valueDateTime"):
        return _compare_dates(left, right)
    if key in ("valueTime", "valueString", "valueUri"):
        if not isinstance(left, str) or not isinstance(right, str):
            return None
        return (left > right) - (left < right)
    return None


def ordered(operator: Any, order: int | None) -> bool | None:
    """Whether ``order`` (from :func:`compare`) satisfies an enableWhen ``operator``."""
    if order is None:
        return None
    if operator == ">":
        return order > 0
    if operator == "<":
        return order < 0
    if operator == ">=":
        return order >= 0
    if operator == "<=":
        return order <= 0
    return None


def _same_coding(answer: Any, option: Any) -> bool | None:
    if not isinstance(answer, dict) or not isinstance(option, dict):
        return None
    if answer.get("code") != option.get("code"):
        return False
    systems = answer.get("system"), option.get("system")
    return None in systems or systems[0] == systems[1]


def equal(key: str, left: Any, right: Any) -> bool | None:
    if key == "valueCoding":
        return _same_coding(left, right)
    if key == "valueBoolean":
        return left is right if isinstance(left, bool) and isinstance(right, bool) else None
    if key == "valueReference":
        if isinstance(left, dict) and isinstance(right, dict):
            return left.get("reference") == right.get("reference")
        return None
    if key == "valueQuantity":
        if not isinstance(left, dict) or not isinstance(right, dict):
            return None
        if (left.get("system"), left.get("code")) != (right.get("system"), right.get("code")):
            return None
        order = compare("valueDecimal", left.get("value"), right.get("value"))
        return None if order is None else order == 0
    order = compare(key, left, right)
    return None if order is None else order == 0


def quantity_order(answer: dict[str, Any], limit: dict[str, Any]) -> int | str | None:
    """How the answer compares to a limit: -1/0/1, 'no-units' or 'incompatible', or None when
    hie cannot tell (units it does not know)."""
    a_value, l_value = number(answer.get("value")), number(limit.get("value"))
    if a_value is None or l_value is None:
        return None
    a_unit = (answer.get("system"), answer.get("code"))
    l_unit = (limit.get("system"), limit.get("code"))
    if not all(isinstance(part, str) for part in (*a_unit, *l_unit)):
        return "no-units"
    if a_unit != l_unit:
        if a_unit[0] != _UCUM or l_unit[0] != _UCUM:
            return None
        a_kind, l_kind = _UCUM_UNITS.get(str(a_unit[1])), _UCUM_UNITS.get(str(l_unit[1]))
        if a_kind is None or l_kind is None:
            return None
        if a_kind[0] != l_kind[0]:
            return "incompatible"
        a_value, l_value = a_value * a_kind[1], l_value * l_kind[1]
    return (a_value > l_value) - (a_value < l_value)
