"""A profile's differential names elements its type has, and keeps its base profile's fixed
values.

A StructureDefinition that constrains an R4 type (``derivation = constraint``) lists the elements
it changes by path. A path R4 does not define (``Observation.valueBla``, a misspelt
``Patient.nmae``) constrains nothing, and HL7's snapshot generator refuses the profile; slice
names belong in ``id`` (``Observation.component:systolic``), never in ``path``.

A profile derived from another profile may constrain further but not contradict it: an element
its base fixes to a value (``fixedUri`` of ``Extension.url``, say) cannot be fixed to another
(HL7's snapshot generator: "Value is ... but is fixed to ... in the profile"). Checked when the
base is among the loaded conformance resources (``--ig``).
"""

from __future__ import annotations

from typing import Any

from hie.validators.conformance import SERVER, Context
from hie.validators.fhir_rules.elements import children, is_fhir_type, is_resource_type
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
TYPE_PROFILE = register(
    "fhir.profile.type-profile",
    summary="A profile named on an element's type (type.profile) is a profile of that type "
    "(Count is a type of its own, not a profile of Quantity; SimpleQuantity is one).",
    fix="Name the type the profile is for as the element's type code (Count for Count), or a "
    "profile of the element's type.",
)
# R4's profiles of Quantity, whose StructureDefinitions hie's type list names as types.
_QUANTITY_PROFILES = {"SimpleQuantity": "Quantity", "MoneyQuantity": "Quantity"}
FIXED = register(
    "fhir.profile.fixed",
    summary="A profile does not fix an element to another value than its base profile fixes it "
    "to (a derived profile only narrows its base).",
    fix="Remove the fixed value, or derive the profile from the base's own base; a derived "
    "extension keeps its base's URL (give it a new URL by deriving from Extension instead).",
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


def _fixed(element: dict[str, Any]) -> tuple[str, Any] | None:
    for key, value in element.items():
        if key.startswith("fixed"):
            return key, value
    return None


def _base_fixed(base: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """The fixed value of each element of ``base`` by element id (its snapshot, then its
    differential, which a profile written by hand often has alone)."""
    found: dict[str, tuple[str, Any]] = {}
    for part in ("snapshot", "differential"):
        holder = base.get(part)
        elements = holder.get("element") if isinstance(holder, dict) else None
        for element in elements if isinstance(elements, list) else []:
            if not isinstance(element, dict):
                continue
            key = element.get("id") or element.get("path")
            fixed = _fixed(element)
            if isinstance(key, str) and fixed is not None:
                found.setdefault(key, fixed)
    return found


def _check_fixed(where: str, data: dict[str, Any], context: Context, report: Report) -> None:
    base_url = data.get("baseDefinition")
    if not isinstance(base_url, str) or base_url == data.get("url"):
        return
    base = context.conformance.resolve(base_url, "StructureDefinition")
    if base is None:
        return  # a core definition, or one not loaded: nothing here to compare with
    fixed_in_base = _base_fixed(base)
    differential = data.get("differential")
    elements: Any = differential.get("element") if isinstance(differential, dict) else None
    for index, element in enumerate(elements if isinstance(elements, list) else []):
        if not isinstance(element, dict):
            continue
        key = element.get("id") or element.get("path")
        fixed, wanted = _fixed(element), fixed_in_base.get(str(key))
        if fixed is None or wanted is None or fixed[1] == wanted[1]:
            continue
        at = f"{where}.differential.element[{index}].{fixed[0]}"
        report.add(
            Severity.ERROR,
            FIXED.id,
            f"{at}: {key} is fixed to {fixed[1]!r}, but its base profile {base_url} fixes it "
            f"to {wanted[1]!r}",
            code="business-rule",
            expression=at,
        )


def _check_type_profiles(where: str, elements: list[Any], context: Context, report: Report) -> None:
    from hie.validators.fhir_rules.profiles.definitions import profile_type

    for index, element in enumerate(elements):
        for position, type_ in enumerate(element.get("type") or []):
            code = type_.get("code") if isinstance(type_, dict) else None
            profiles = type_.get("profile") if isinstance(type_, dict) else None
            if not isinstance(code, str) or not isinstance(profiles, list):
                continue
            for number, canonical in enumerate(profiles):
                if not isinstance(canonical, str):
                    continue
                found = profile_type(canonical, context.conformance)
                found = _QUANTITY_PROFILES.get(found or "", found)
                if found is None or found == code or code == "Element":
                    continue
                if code in ("Resource", "DomainResource") and is_resource_type(found):
                    continue
                at = f"{where}.differential.element[{index}].type[{position}].profile[{number}]"
                report.add(
                    Severity.ERROR,
                    TYPE_PROFILE.id,
                    f"{at}: {canonical} is a profile of {found}, but the element's type is {code}",
                    code="structure",
                    expression=at,
                )


def check_differentials(tree: Tree, report: Report, context: Context = SERVER) -> None:
    for resource in tree.resources:
        data = resource.data
        if resource.type != "StructureDefinition" or data.get("derivation") != "constraint":
            continue
        _check_fixed(resource.path, data, context, report)
        root = data.get("type")
        if not is_fhir_type(root) or not isinstance(root, str):
            continue
        differential = data.get("differential")
        elements: Any = differential.get("element") if isinstance(differential, dict) else None
        listed = [e for e in elements if isinstance(e, dict)] if isinstance(elements, list) else []
        if len(listed) == len(elements or []):
            _check_type_profiles(resource.path, listed, context, report)
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
