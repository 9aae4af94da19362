"""The limits a Questionnaire item sets on its answers: minValue/maxValue, maxDecimalPlaces,
minLength/maxLength, regex, and urn:uuid URIs."""

from __future__ import annotations

import functools
import re
from typing import Any

from hie.validators.fhir_rules.questionnaire.comparisons import compare
from hie.validators.fhir_rules.questionnaire.issues import report_error, shown
from hie.validators.fhir_rules.questionnaire.json_values import (
    CORE,
    extension_value,
    extension_values,
    number,
)
from hie.validators.fhir_rules.questionnaire.rules import ANSWER_LIMITS
from hie.validators.report import Report

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A quantified group that itself holds a quantifier: the shape of regexes whose matching time
# explodes (ReDoS). Such a Questionnaire regex is not run on the server.
_NESTED_QUANTIFIER = re.compile(r"\([^)]*[+*}][^)]*\)[+*{]")
_MAX_REGEX_INPUT = 10_000


def check_limits(report: Report, q_item: dict[str, Any], key: str, value: Any, path: str) -> None:
    for url, sign, word in ((CORE + "minValue", -1, "less"), (CORE + "maxValue", 1, "more")):
        limit = extension_value(q_item, url)
        if limit is None:
            continue
        limit_key, limit_value = limit
        numeric = ("valueInteger", "valueDecimal")
        if limit_key != key and not (limit_key in numeric and key in numeric):
            continue
        if compare(key, value, limit_value) == sign:
            bound = "minimum" if sign < 0 else "maximum"
            report_error(
                report,
                ANSWER_LIMITS.id,
                path,
                f"{shown(value)} is {word} than the allowed {bound} of {shown(limit_value)}",
                "value",
            )


def check_decimal_places(report: Report, q_item: dict[str, Any], value: Any, path: str) -> None:
    places = extension_values(q_item, CORE + "maxDecimalPlaces", "valueInteger")
    amount = number(value)
    if not places or not isinstance(places[0], int) or amount is None:
        return
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places[0]:
        report_error(
            report,
            ANSWER_LIMITS.id,
            path,
            f"{value} has {-exponent} decimal places; the item allows {places[0]}",
            "value",
        )


def check_text(report: Report, q_item: dict[str, Any], value: Any, path: str) -> None:
    if not isinstance(value, str):
        return
    minimum = extension_values(q_item, CORE + "minLength", "valueInteger")
    maximum = q_item.get("maxLength")
    if minimum and isinstance(minimum[0], int) and len(value) < minimum[0]:
        report_error(
            report,
            ANSWER_LIMITS.id,
            path,
            f"the answer has {len(value)} characters; the item needs at least {minimum[0]}",
            "value",
        )
    if isinstance(maximum, int) and not isinstance(maximum, bool) and len(value) > maximum:
        report_error(
            report,
            ANSWER_LIMITS.id,
            path,
            f"the answer has {len(value)} characters; the item allows at most {maximum}",
            "value",
        )
    for pattern in extension_values(q_item, CORE + "regex", "valueString"):
        compiled = _regex(pattern)
        if compiled is None or len(value) > _MAX_REGEX_INPUT:
            continue
        if compiled.fullmatch(value) is None:
            formats = extension_values(q_item, CORE + "entryFormat", "valueString")
            hint = f" (expected like {formats[0]!r})" if formats else ""
            report_error(
                report,
                ANSWER_LIMITS.id,
                path,
                f"{shown(value)!r} does not match the item's pattern {pattern!r}{hint}",
                "value",
            )


def check_uri(report: Report, value: Any, path: str) -> None:
    if not isinstance(value, str) or not value.startswith("urn:uuid:"):
        return
    if _UUID.fullmatch(value.removeprefix("urn:uuid:")) is None:
        report_error(
            report,
            ANSWER_LIMITS.id,
            path,
            f"{shown(value)} is not a urn:uuid: a UUID is 36 lowercase hexadecimal digits "
            "and hyphens",
            "value",
        )


def _regex(pattern: Any) -> re.Pattern[str] | None:
    if not isinstance(pattern, str) or len(pattern) > 1000 or _NESTED_QUANTIFIER.search(pattern):
        return None
    return _compile(pattern)


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
