"""Codes and value sets: the bindings a profile requires, and value sets expanded offline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hie.validators.conformance import Conformance, split_canonical
from hie.validators.fhir_rules.profiles.definitions import ElementRule, core_data
from hie.validators.fhir_rules.profiles.values import Value

_ADDITIONAL_BINDING = frozenset({
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-ElementDefinition.binding.additional",
    "http://hl7.org/fhir/tools/StructureDefinition/additional-binding",
})  # fmt: skip


def expansion(canonical: str, conformance: Conformance) -> dict[str, frozenset[str]] | None:
    """{system: codes} of a value set that can be expanded offline, else None."""
    url = split_canonical(canonical)[0]
    value_set = conformance.resolve(canonical, "ValueSet")
    if value_set is None:
        core = core_data()["valueSets"].get(url)
        return None if core is None else {s: frozenset(c) for s, c in core.items()}
    compose = value_set.get("compose")
    if not isinstance(compose, dict) or compose.get("exclude"):
        return None
    result: dict[str, set[str]] = {}
    for include in compose.get("include") or []:
        if not isinstance(include, dict) or include.get("filter") or include.get("valueSet"):
            return None
        system = include.get("system")
        if not isinstance(system, str):
            return None
        concepts = include.get("concept")
        if isinstance(concepts, list):
            codes = {c.get("code") for c in concepts if isinstance(c, dict)}
        else:
            code_system = conformance.resolve(system, "CodeSystem")
            if code_system is None or code_system.get("content") != "complete":
                return None
            codes = set(_all_codes(code_system.get("concept")))
        result.setdefault(system, set()).update(c for c in codes if isinstance(c, str))
    return {s: frozenset(c) for s, c in result.items()} if result else None


def _all_codes(concepts: Any) -> Iterator[str]:
    for concept in concepts if isinstance(concepts, list) else []:
        if isinstance(concept, dict):
            if isinstance(concept.get("code"), str):
                yield concept["code"]
            yield from _all_codes(concept.get("concept"))


def codes_of(value: Value) -> list[tuple[str | None, str]] | None:
    """(system, code) pairs a coded value carries; None when the type is not coded."""
    data = value.value
    if value.type == "code" and isinstance(data, str):
        return [(None, data)]
    if value.type in ("Coding", "Quantity") and isinstance(data, dict):
        code = data.get("code")
        if not isinstance(code, str):
            return None
        system = data.get("system")
        pair: tuple[str | None, str] = (system if isinstance(system, str) else "", code)
        return [pair]
    if value.type == "CodeableConcept" and isinstance(data, dict):
        codings = data.get("coding")
        found: list[tuple[str | None, str]] = [
            (str(c.get("system") or ""), str(c["code"]))
            for c in (codings if isinstance(codings, list) else [])
            if isinstance(c, dict) and isinstance(c.get("code"), str)
        ]
        return found or None  # text alone: not judged
    return None


def in_codes(codes: dict[str, frozenset[str]], system: str | None, code: str) -> bool:
    if system is None:
        return any(code in c for c in codes.values())
    return code in codes.get(system, frozenset())


def required_value_sets(rule: ElementRule) -> list[str]:
    """The value sets a value must come from: a required binding's, and those of additional
    bindings (R5's, through its cross-version extension) with purpose "required"."""
    binding = rule.data.get("binding")
    if not isinstance(binding, dict):
        return []
    found = []
    if binding.get("strength") == "required" and isinstance(binding.get("valueSet"), str):
        found.append(binding["valueSet"])
    extensions = binding.get("extension")
    for extension in extensions if isinstance(extensions, list) else []:
        if not isinstance(extension, dict) or extension.get("url") not in _ADDITIONAL_BINDING:
            continue
        parts = extension.get("extension")
        named = (
            {p.get("url"): p for p in parts if isinstance(p, dict)}
            if isinstance(parts, list)
            else {}
        )
        purpose = named.get("purpose", {}).get("valueCode")
        value_set = named.get("valueSet", {}).get("valueCanonical")
        if purpose == "required" and isinstance(value_set, str):
            found.append(value_set)
    return found
