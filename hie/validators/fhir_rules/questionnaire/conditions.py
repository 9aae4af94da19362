"""enableWhen: whether a Questionnaire item is enabled at a place in a response, from the answers
its conditions name (True, False, or None when hie cannot tell)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from hie.validators.fhir_rules.fhirpath import LOCK, compile_r4
from hie.validators.fhir_rules.questionnaire.answers import answer_value
from hie.validators.fhir_rules.questionnaire.comparisons import compare, equal, ordered
from hie.validators.fhir_rules.questionnaire.json_values import SDC, extension_value
from hie.validators.fhir_rules.shapes import objects

# FHIRPath enableWhen extensions HL7's validator honours: SDC's (an Expression, possibly in a
# language other than FHIRPath or with variables, which hie does not evaluate) and Kanta's (a
# FHIRPath string over the response). The item is enabled when the expression is true.
_SDC_EXPRESSION = SDC + "sdc-questionnaire-enableWhenExpression"
_KANTA_EXPRESSION = "http://phr.kanta.fi/StructureDefinition/fiphr-ext-questionnaire-enablewhen"


@cache
def _compiled(expression: str) -> Callable[..., Any] | None:
    try:
        return compile_r4(expression)
    except Exception:  # fhirpathpy raises plain Exceptions on what it cannot parse
        return None


def _expression_enabled(expression: str, response: dict[str, Any]) -> bool | None:
    """Whether a FHIRPath enableWhen expression holds on ``response`` (HL7's validator: true
    enables, false or empty does not); None when it cannot be evaluated here."""
    evaluate = _compiled(expression)
    if evaluate is None:
        return None
    try:
        with LOCK:
            result = evaluate(response, {"resource": response, "rootResource": response})
    except Exception:  # an expression fhirpathpy cannot evaluate: undecided, never a crash
        return None
    if result in ([], [False]):
        return False
    return True if result == [True] else None


class Conditions:
    """The enableWhen conditions of one response's items, evaluated against its answers."""

    def __init__(self) -> None:
        # linkId -> items beneath a response element, built once per element (by identity)
        self.beneath: dict[int, dict[str, list[dict[str, Any]]]] = {}

    def enabled(self, q_item: dict[str, Any], scope: list[dict[str, Any]]) -> bool | None:
        """Whether ``q_item`` is enabled where ``scope`` ends; None when hie cannot tell."""
        if extension_value(q_item, _SDC_EXPRESSION) is not None:
            return None
        kanta = extension_value(q_item, _KANTA_EXPRESSION)
        if kanta is not None:
            key, expression = kanta
            if key != "valueString" or not isinstance(expression, str) or not scope:
                return None
            return _expression_enabled(expression, scope[0])
        conditions = objects(q_item.get("enableWhen"))
        if not conditions:
            return True
        results = [self.condition(c, scope) for c in conditions]
        if q_item.get("enableBehavior") == "any":
            if True in results:
                return True
            return False if all(r is False for r in results) else None
        if False in results:
            return False
        return True if all(r is True for r in results) else None

    def answers_to(self, link: str, scope: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        """The answer values of the question ``link`` nearest to where ``scope`` ends: in the
        same repetition of a group first, then further out (HL7's rule for repeating groups)."""
        for container in reversed(scope):
            index = self.beneath.get(id(container))
            if index is None:
                index = self.beneath[id(container)] = _items_beneath(container)
            items = index.get(link)
            if items:
                values = []
                for item in items:
                    for answer in objects(item.get("answer")):
                        found = answer_value(answer)
                        if found is not None:
                            values.append(found)
                return values
        return []

    def condition(self, condition: dict[str, Any], scope: list[dict[str, Any]]) -> bool | None:
        question = condition.get("question")
        operator = condition.get("operator")
        expected = next(
            ((k, v) for k, v in condition.items() if k.startswith("answer") and k != "answer"),
            None,
        )
        if not isinstance(question, str) or expected is None:
            return None
        answers = self.answers_to(question, scope)
        if operator == "exists":
            wanted = expected[1]
            return (bool(answers) == wanted) if isinstance(wanted, bool) else None
        if not answers:
            return None if operator == "!=" else False
        key = "value" + expected[0].removeprefix("answer")
        verdicts: list[bool | None] = []
        for answer_key, value in answers:
            if answer_key != key and not {answer_key, key} <= {"valueInteger", "valueDecimal"}:
                verdicts.append(None)
            elif operator in ("=", "!="):
                same = equal(key, value, expected[1])
                verdicts.append(None if same is None else same == (operator == "="))
            else:
                verdicts.append(ordered(operator, compare(key, value, expected[1])))
        if True in verdicts:
            return True
        return False if all(v is False for v in verdicts) else None


def _items_beneath(container: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    pending = objects(container.get("item"))
    while pending:
        item = pending.pop()
        link = item.get("linkId")
        if isinstance(link, str):
            found.setdefault(link, []).append(item)
        pending.extend(objects(item.get("item")))
        for answer in objects(item.get("answer")):
            pending.extend(objects(answer.get("item")))
    return found
