"""StructureDefinitions that define a new type (``derivation = specialization``).

A specialization names the type it defines: a FHIR type, or for a logical model an absolute URL
(a bare name would pass for a FHIR type it is not). It cannot define the type of the structure
it specialises again, and each element path starts with the name of the type it defines.
"""

from __future__ import annotations

from typing import Any

from hie.validators.conformance import Context
from hie.validators.fhir_rules.elements import is_fhir_type
from hie.validators.fhir_rules.tree import Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

TYPE = register(
    "fhir.specialization.type",
    summary="A StructureDefinition that specialises defines a type of its own: a FHIR type, or "
    "for a logical model an absolute URL, and never the type of the structure it specialises.",
    fix="Give a logical model's type as its URL (e.g. the StructureDefinition's url), not a bare "
    "name, and a type different from its baseDefinition's type.",
)
PATH = register(
    "fhir.specialization.path",
    summary="Each element path of a specialization starts with the name of the type it defines.",
    fix="Start every element path with the type's name (the last segment of a URL type), e.g. "
    "Boo, Boo.a for type http://example.org/StructureDefinition/Boo.",
)


def check_specializations(tree: Tree, report: Report, context: Context) -> None:
    for resource in tree.resources:
        data = resource.data
        if resource.type != "StructureDefinition" or data.get("derivation") != "specialization":
            continue
        defined = data.get("type")
        if not isinstance(defined, str) or not defined:
            continue
        path = resource.path
        absolute = "://" in defined or defined.startswith("urn:")
        if not absolute and not is_fhir_type(defined):
            report.add(
                Severity.ERROR,
                TYPE.id,
                f"{path}.type: {defined!r} is not a FHIR type; a type of your own is named by "
                "an absolute URL",
                code="invalid",
                expression=f"{path}.type",
            )
            continue
        base = data.get("baseDefinition")
        parent = (
            context.conformance.resolve(base, "StructureDefinition")
            if isinstance(base, str)
            else None
        )
        if parent is not None and parent.get("type") == defined:
            report.add(
                Severity.ERROR,
                TYPE.id,
                f"{path}.type: {defined} is already the type of {base}, which this "
                "StructureDefinition specialises",
                code="invalid",
                expression=f"{path}.type",
            )
        name = defined.rstrip("/").rsplit("/", 1)[-1]
        for part in ("differential", "snapshot"):
            _paths(data.get(part), name, f"{path}.{part}", report)


def _paths(view: Any, name: str, where: str, report: Report) -> None:
    elements = view.get("element") if isinstance(view, dict) else None
    for index, element in enumerate(elements if isinstance(elements, list) else []):
        element_path = element.get("path") if isinstance(element, dict) else None
        if isinstance(element_path, str) and element_path.split(".", 1)[0] != name:
            report.add(
                Severity.ERROR,
                PATH.id,
                f"{where}.element[{index}]: the path {element_path} does not start with {name}, "
                "the type this StructureDefinition defines",
                code="invalid",
                expression=f"{where}.element[{index}]",
            )
