"""Required value-set bindings of the core resources (fhir.resources does not check codes).

The value sets are data: ``schemas/fhir/value-sets.json``, copied from FHIR R4 4.0.1. A ``code``
element must hold one of the codes; a Coding or CodeableConcept must carry a coding of the bound
code system with one of the codes (required bindings allow no other coding to stand alone).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from hie.resources import schemas_dir
from hie.validators.fhir_rules.tree import Node, Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

REQUIRED = register(
    "fhir.binding.required",
    summary="Coded elements with a required binding in FHIR R4 hold a code of the bound value "
    "set (Patient.gender, Encounter.status, Observation.status, Identifier.use, ...).",
    fix="Use one of the codes the message lists, exactly as written there (lower case, with "
    "hyphens); map local codes (e.g. GB/T 2261.1 gender 1/2) to the FHIR codes before sending.",
)
ENCOUNTER_CLASS = register(
    "fhir.binding.encounter-class",
    summary="Encounter.class is a v3 ActEncounterCode (AMB, EMER, IMP, ...): the platform counts "
    "outpatient visits and discharges by it.",
    fix='Send class {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": '
    '"AMB"} (outpatient), "EMER" (emergency) or "IMP" (inpatient); map CV09.00.404 patient '
    "types 1/2/3 to AMB/EMER/IMP.",
)


@dataclass(frozen=True)
class Binding:
    element: str  # definition path, e.g. Patient.gender, Identifier.use
    value_set: str
    strength: str  # "required", or "platform" for the platform's policy on an extensible one
    system: str
    codes: frozenset[str]


@cache
def bindings() -> dict[str, Binding]:
    """The bindings by element definition path (read once)."""
    data = json.loads((schemas_dir() / "fhir" / "value-sets.json").read_text("utf-8"))
    result: dict[str, Binding] = {}
    for entry in data["bindings"]:
        for element in entry["elements"]:
            result[element] = Binding(
                element,
                entry["valueSet"],
                entry["strength"],
                entry["system"],
                frozenset(entry["codes"]),
            )
    return result


def _listing(binding: Binding) -> str:
    codes = sorted(binding.codes)
    shown = ", ".join(codes[:12]) + (", ..." if len(codes) > 12 else "")
    return f"{shown} (value set {binding.value_set})"


def _codings(node: Node) -> list[dict[str, Any]]:
    value = node.value
    if node.type == "Coding":
        return [value]
    codings = value.get("coding")
    return [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []


def _check_coded(node: Node, binding: Binding, report: Report) -> None:
    codings = _codings(node)
    of_system = [c for c in codings if c.get("system") == binding.system]
    for index, coding in enumerate(codings):
        if coding.get("system") != binding.system or coding.get("code") in binding.codes:
            continue
        where = node.path if node.type == "Coding" else f"{node.path}.coding[{index}]"
        rule = ENCOUNTER_CLASS.id if binding.strength == "platform" else REQUIRED.id
        report.add(
            Severity.ERROR,
            rule,
            f"{where}.code: {coding.get('code')!r} is not in {binding.system}; use one of "
            f"{_listing(binding)}",
            code="code-invalid",
            expression=f"{where}.code",
        )
    if of_system:
        return
    if binding.strength == "platform":
        report.add(
            Severity.WARNING,
            ENCOUNTER_CLASS.id,
            f"{node.path}: the class is not coded in {binding.system}; the encounter counts as "
            "no outpatient visit or discharge",
            code="code-invalid",
            expression=node.path,
        )
        return
    report.add(
        Severity.ERROR,
        REQUIRED.id,
        f"{node.path}: no coding from {binding.system}; add one with a code from "
        f"{_listing(binding)}",
        code="code-invalid",
        expression=node.path,
    )


def check_bindings(tree: Tree, report: Report) -> None:
    for element, binding in bindings().items():
        for node in tree.at(element):
            if node.type == "code":
                if node.value not in binding.codes:
                    report.add(
                        Severity.ERROR,
                        REQUIRED.id,
                        f"{node.path}: {node.value!r} is not a code of {binding.element}; use "
                        f"one of {_listing(binding)}",
                        code="code-invalid",
                        expression=node.path,
                    )
            elif node.type in ("Coding", "CodeableConcept"):
                _check_coded(node, binding, report)
