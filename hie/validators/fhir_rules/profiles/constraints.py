"""A profile's constraints (FHIRPath, run with fhirpathpy), with memberOf() for value sets
that can be expanded offline."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from functools import cache
from typing import Any, cast

from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.engine.nodes import ResourceNode as FhirPathNode
from fhirpathpy.models import models

from hie.validators.conformance import Conformance
from hie.validators.fhir_rules.fhirpath import LOCK, OPTIONS
from hie.validators.fhir_rules.invariants import invariants
from hie.validators.fhir_rules.profiles.codes import codes_of, expansion, in_codes
from hie.validators.fhir_rules.profiles.values import Value


@cache
def _base_keys() -> frozenset[str]:
    """Constraint keys of R4 itself, which the invariants layer already checks."""
    return frozenset(i.key for i in invariants()) | {"ele-1", "ext-1"}


# FHIRPath functions fhirpathpy lacks or gets wrong (type() names every type "object"):
# a constraint using one is not evaluated.
_UNSUPPORTED = ("type()", "conformsTo(", "resolve()", "htmlChecks", "%ucum",
                "subsumes", "checkModifiers(")  # fmt: skip


_EXPRESSIONS: dict[str, Callable[..., Any] | None] = {}


# The conformance resources of the evaluation under way, for memberOf().
_VALUE_SETS: ContextVar[Conformance | None] = ContextVar("value_sets", default=None)


def _member_of(inputs: list[Any], canonical: Any) -> list[bool]:
    """FHIRPath memberOf() for a value set that can be expanded offline; empty (unknown) for
    any other, so that the constraint is not judged."""
    conformance = _VALUE_SETS.get()
    if conformance is None or not isinstance(canonical, str) or len(inputs) != 1:
        return []
    codes = expansion(canonical, conformance)
    data = getattr(inputs[0], "data", inputs[0])
    if isinstance(data, str):
        kind = "code"
    else:
        kind = "CodeableConcept" if isinstance(data, dict) and "coding" in data else "Coding"
    found = codes_of(Value("", data, kind, kind, kind))
    if codes is None or found is None:
        return []
    return [any(in_codes(codes, system, code) for system, code in found)]


_OPTIONS = {
    **OPTIONS,
    "userInvocationTable": {
        **cast(dict[str, Any], OPTIONS["userInvocationTable"]),
        "memberOf": {"fn": _member_of, "arity": {1: ["String"]}},
    },
}


def _compiled(expression: str) -> Callable[..., Any] | None:
    if expression not in _EXPRESSIONS:
        try:
            compiled = compile_fhirpath(expression, models["r4"], _OPTIONS)
        # An expression fhirpathpy cannot parse is not evaluated.
        except Exception:
            compiled = None
        _EXPRESSIONS[expression] = compiled
    return _EXPRESSIONS[expression]


def violated(constraint: Any, value: Value, root: Any, conformance: Conformance) -> str | None:
    """ "key: text" of an error constraint ``value`` does not meet; None when it is met, is one
    of R4's own (checked by the invariants layer) or cannot be evaluated here."""
    if not isinstance(constraint, dict) or constraint.get("severity") != "error":
        return None
    key, expression = constraint.get("key"), constraint.get("expression")
    if not isinstance(expression, str) or key in _base_keys():
        return None
    if any(unsupported in expression for unsupported in _UNSUPPORTED):
        return None
    evaluate = _compiled(expression)
    if evaluate is None:
        return None
    target: Any = value.value
    if not (isinstance(target, dict) and "resourceType" in target):
        target = FhirPathNode.create_node(target, value.element)  # type: ignore[no-untyped-call]
    holder = value.holder if value.holder is not None else value.value
    variables = {"resource": holder, "rootResource": root}
    token = _VALUE_SETS.set(conformance)
    try:
        with LOCK:
            result = evaluate(target, variables)
    # fhirpathpy raises plain Exceptions on shapes it does not expect: not evaluated.
    except Exception:
        return None
    finally:
        _VALUE_SETS.reset(token)
    if result == [False]:
        return f"{key}: {constraint.get('human') or expression}"
    return None
