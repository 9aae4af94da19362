"""Whether an extension may be used where it is: its definition's element, extension and
FHIRPath contexts, and the FHIRPath evaluation its context invariants need."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from fhirpathpy.engine.nodes import ResourceNode as FhirpathNode
from fhirpathpy.models import models

from hie.validators.conformance import CANONICAL_TYPES
from hie.validators.fhir_rules.extensions.hosts import Host

# fhirpathpy keeps per-evaluation state in module globals: one lock for every rule family.
from hie.validators.fhir_rules.fhirpath import LOCK, compile_r4
from hie.validators.fhir_rules.tree import ResourceNode

# Extensions are allowed anywhere in example, fixed and pattern values of element definitions.
_ANYWHERE = ("ElementDefinition.example.value", "ElementDefinition.pattern",
             "ElementDefinition.fixed")  # fmt: skip


@cache
def _ancestors(type_name: str) -> tuple[str, ...]:
    parents: dict[str, str] = models["r4"]["type2Parent"]
    chain = [type_name]
    while chain[-1] in parents and len(chain) < 10:
        chain.append(parents[chain[-1]])
    return tuple(chain)


def _element_context(expression: str, host: Host) -> bool:
    if "#" in expression:
        return True  # a context within a profile: not checked here
    if expression in ("Element", "Any", "Base"):
        return True
    if expression == "Resource":
        return host.resource is not None
    if expression in ("CanonicalResource", "MetadataResource"):
        return host.resource is not None and host.resource.type in CANONICAL_TYPES
    for name in host.names:
        head, dot, tail = name.partition(".")
        if any(f"{ancestor}{dot}{tail}" == expression for ancestor in _ancestors(head)):
            return True
    return False


@cache
def _compiled(expression: str) -> Callable[..., Any] | None:
    try:
        evaluate: Callable[..., Any] = compile_r4(expression)
    except Exception:  # an expression fhirpathpy cannot read is not checked
        return None
    return evaluate


def evaluate_fhirpath(
    expression: str, focus: Any, focus_type: str, resource: ResourceNode
) -> list[Any] | None:
    evaluate = _compiled(expression)
    if evaluate is None:
        return None
    try:
        # Typed nodes: fhirpathpy needs the types for is(), ofType() and choice elements.
        typed = FhirpathNode.create_node(resource.data, resource.type)  # type: ignore[no-untyped-call]
        variables = {"resource": typed, "rootResource": typed}
        with LOCK:
            # A resource is given as is: fhirpathpy reads its type from resourceType.
            node = (
                focus if focus is resource.data else FhirpathNode.create_node(focus, focus_type)  # type: ignore[no-untyped-call]
            )
            result: list[Any] = evaluate(node, variables)
    except Exception:  # fhirpathpy's gaps never reject a resource
        return None
    return result


def _fhirpath_context(expression: str, host: Host, resource: ResourceNode) -> bool:
    found = evaluate_fhirpath(expression, resource.data, resource.type, resource)
    if found is None:
        return True
    if not isinstance(host.value, dict):
        # fhirpathpy returns copies, and primitives in its own types: a primitive host is only
        # known to be outside the context when the expression selects no primitives at all.
        return not all(isinstance(item, dict) for item in found)
    return any(item == host.value for item in found)


def allowed_here(record: dict[str, Any], host: Host, resource: ResourceNode) -> bool:
    contexts = record.get("context")
    if not contexts:
        return True
    if any(name.startswith(_ANYWHERE) for name in host.names):
        return True
    for context in contexts:
        kind, _, expression = context.partition(":")
        if kind == "e" and _element_context(expression, host):
            return True
        if kind == "x" and expression == host.extension_url:
            return True
        if kind == "f" and _fhirpath_context(expression, host, resource):
            return True
    return False
