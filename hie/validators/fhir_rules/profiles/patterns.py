"""Matching values against what a profile sets: fixed[x] and pattern[x], min/maxValue[x]."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import simplejson

from hie.validators.fhir_rules.profiles.definitions import ElementRule


def _equal_primitive(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float | Decimal) and isinstance(actual, int | float | Decimal):
        try:
            return Decimal(str(expected)) == Decimal(str(actual))
        except InvalidOperation:
            return False
    return bool(expected == actual)


def contains(pattern: Any, actual: Any) -> bool:
    """pattern[x] semantics: every property (and array item) of the pattern is in the value."""
    if isinstance(pattern, dict):
        if not isinstance(actual, dict):
            return False
        return all(contains(v, actual.get(k)) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = actual if isinstance(actual, list) else [actual]
        return all(any(contains(p, a) for a in items) for p in pattern)
    return actual is not None and _equal_primitive(pattern, actual)


def fixed_value(rule: ElementRule) -> tuple[str, Any] | None:
    """("fixed" or "pattern", value) the element sets."""
    for key, value in rule.data.items():
        if key.startswith("fixed") and key[5:6].isupper():
            return "fixed", value
        if key.startswith("pattern") and key[7:8].isupper():
            return "pattern", value
    return None


def show(value: Any) -> str:
    text = simplejson.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 160 else text[:157] + "..."


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def out_of_range(actual: Any, limit: Any, *, below: bool) -> bool:
    if isinstance(actual, int | float | Decimal) and not isinstance(actual, bool):
        number, bound = _number(actual), _number(limit)
        if number is None or bound is None or isinstance(limit, str):
            return False
        return number < bound if below else number > bound
    if isinstance(actual, str) and isinstance(limit, str) and len(actual) == len(limit):
        return actual < limit if below else actual > limit  # dates of the same precision
    return False
