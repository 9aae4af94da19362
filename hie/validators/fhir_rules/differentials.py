"""A profile's differential names elements its type has.

A StructureDefinition that constrains an R4 type (``derivation = constraint``) lists the elements
it changes by path. A path R4 does not define (``Observation.valueBla``, a misspelt
``Patient.nmae``) constrains nothing, and HL7's snapshot generator refuses the profile; slice
names belong in ``id`` (``Observation.component:systolic``), never in ``path``.
"""

from __future__ import annotations

from typing import Any

from hie.validators.fhir_rules.elements import children, is_fhir_type
from hie.validators.fhir_rules.tree import Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

PATH = register(
    "fhir.profile.path",
    summary="Each element path of a profile's differential is an element of the type the "
    "profile constrains (choice elements as value[x] or one of their typed names).",
    fix="Correct the path against the type's definition in R4 (e.g. Observation.value[x] or "
    "Observation.valueQuantity); put slice names in the element's id, not in its path.",
)


def _known(path: str, root: str) -> bool | None:
    """Whether R4 defines ``path`` under type ``root``; None when it cannot tell (below a choice
    element or an element of an unknown type)."""
    parts = path.split(".")
    if parts[0] != root:
        return False
    definition = root
    for name in parts[1:]:
        elements = children(definition)
        if name.endswith("[x]"):
            base = name[:-3]
            if not any(e.choice == base for e in elements.values()) and base not in elements:
                return False
            return None  # what lies below a choice depends on the type chosen
        element = elements.get(name)
        if element is None:
            return False
        definition = element.definition
        if not definition or element.type in ("Resource", "DomainResource"):
            return None  # below a resource element, the profile's own type choice decides
    return True


def check_differentials(tree: Tree, report: Report) -> None:
    for resource in tree.resources:
        data = resource.data
        if resource.type != "StructureDefinition" or data.get("derivation") != "constraint":
            continue
        root = data.get("type")
        if not is_fhir_type(root) or not isinstance(root, str):
            continue
        differential = data.get("differential")
        elements: Any = differential.get("element") if isinstance(differential, dict) else None
        for index, element in enumerate(elements if isinstance(elements, list) else []):
            path = element.get("path") if isinstance(element, dict) else None
            if isinstance(path, str) and _known(path, root) is False:
                where = f"{resource.path}.differential.element[{index}]"
                report.add(
                    Severity.ERROR,
                    PATH.id,
                    f"{where}: {path} is not an element of {root}",
                    code="structure",
                    expression=where,
                )
