"""Value sets that can be read offline: which codings an answer value set or unit value set
holds, when it is enumerated in a contained or loaded ValueSet (or, for a core value set of
whole external code systems, which systems it draws on). Anything that would need a
terminology server is "unknown", never "not a member": it would reject valid answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hie.validators.conformance import Context
from hie.validators.fhir_rules.bindings import value_set_systems
from hie.validators.fhir_rules.shapes import objects


@dataclass
class Membership:
    """Which codings a value set holds, as far as it can be told without a terminology server."""

    codes: set[tuple[str, str]] = field(default_factory=set)
    excluded: set[tuple[str, str]] = field(default_factory=set)
    open_systems: set[str] = field(default_factory=set)  # whole systems or filtered ones
    closed: bool = True  # False when it imports other value sets: membership unknown

    def holds(self, system: Any, code: Any) -> bool | None:
        if not isinstance(system, str) or not isinstance(code, str):
            return None
        if (system, code) in self.excluded:
            return False
        if (system, code) in self.codes:
            return True
        if system in self.open_systems or not self.closed:
            return None
        return False


@dataclass(frozen=True)
class ValueSets:
    """The value sets a response's answers can be checked against: those contained in its
    Questionnaire and those given to the validation (``--ig``)."""

    context: Context
    contained: dict[str, dict[str, Any]]

    def membership(self, reference: str) -> Membership | None:
        """What the value set ``reference`` holds, when it is contained or loaded and
        enumerable; None otherwise (no terminology server here)."""
        if reference.startswith("#"):
            found = self.contained.get(reference[1:])
            if found is None or found.get("resourceType") != "ValueSet":
                return None
            return _membership(found)
        resolved = self.context.conformance.resolve(reference, "ValueSet")
        if resolved is not None:
            return _membership(resolved)
        # A core value set of whole external code systems (jurisdiction: ISO 3166, UN M49):
        # its codes need a terminology server, but another system's code is not in it.
        systems = value_set_systems().get(reference.partition("|")[0])
        return Membership(open_systems=set(systems)) if systems is not None else None


def _expansion_codes(contains: Any, into: set[tuple[str, str]]) -> None:
    pending = objects(contains)
    while pending:
        entry = pending.pop()
        if isinstance(entry.get("system"), str) and isinstance(entry.get("code"), str):
            into.add((entry["system"], entry["code"]))
        pending.extend(objects(entry.get("contains")))


def _membership(value_set: dict[str, Any]) -> Membership | None:
    membership = Membership()
    expansion = value_set.get("expansion")
    if isinstance(expansion, dict) and isinstance(expansion.get("contains"), list):
        if "offset" in expansion:
            return None  # a page of the expansion, not all of it
        _expansion_codes(expansion["contains"], membership.codes)
        return membership
    compose = value_set.get("compose")
    if not isinstance(compose, dict) or not objects(compose.get("include")):
        return None
    for include in objects(compose.get("include")):
        system = include.get("system")
        if include.get("valueSet") or not isinstance(system, str):
            membership.closed = False
            continue
        concepts = objects(include.get("concept"))
        if include.get("filter") or not concepts:
            membership.open_systems.add(system)
        for concept in concepts:
            if isinstance(concept.get("code"), str):
                membership.codes.add((system, concept["code"]))
    for exclude in objects(compose.get("exclude")):
        system = exclude.get("system")
        for concept in objects(exclude.get("concept")):
            if isinstance(system, str) and isinstance(concept.get("code"), str):
                membership.excluded.add((system, concept["code"]))
    return membership
