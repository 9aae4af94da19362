"""FHIR R4 (4.0.1) element definitions: which elements each type has, and of which type.

The platform speaks R4, but fhir.resources 8 ships R4B models only (R4B shares R4's data types and
almost every resource). So the element tree of R4 itself decides what an element is: it comes
from fhirpathpy's R4 model (``path2Type``, ``choiceTypePaths``, ``pathsDefinedElsewhere``,
``type2Parent``), which is generated from the R4 4.0.1 StructureDefinitions; which elements
repeat, and in which order they come, from R4 itself too (``schemas/fhir/repeating-elements.json``
and ``element-order.json``). The R4B pydantic models add what that tree lacks (cardinality,
primitive formats); see :mod:`hie.validators.fhir_rules.structure` for how the two are combined.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from fhirpathpy.models import models

from hie.resources import schemas_dir

# JSON representation of each R4 primitive type (FHIR JSON, "Primitive types").
PRIMITIVE_JSON: dict[str, type | tuple[type, ...]] = {
    "boolean": bool,
    "integer": int,
    "positiveInt": int,
    "unsignedInt": int,
    "decimal": (int, float, Decimal),
    **dict.fromkeys(
        (
            "string",
            "code",
            "id",
            "markdown",
            "uri",
            "url",
            "canonical",
            "oid",
            "uuid",
            "date",
            "dateTime",
            "instant",
            "time",
            "base64Binary",
            "xhtml",
            "System.String",
        ),
        str,
    ),
}

# Resource types that exist in R4B but not in R4: refused as not R4.
R4B_ONLY_TYPES = frozenset(
    {
        "AdministrableProductDefinition",
        "Citation",
        "ClinicalUseDefinition",
        "EvidenceReport",
        "Ingredient",
        "ManufacturedItemDefinition",
        "MedicinalProductDefinition",
        "NutritionProduct",
        "PackagedProductDefinition",
        "RegulatedAuthorization",
        "SubscriptionStatus",
        "SubscriptionTopic",
        "SubstanceDefinition",
    }
)


@dataclass(frozen=True)
class Element:
    """One element of a type: its JSON name, R4 type code and where its own children are defined."""

    name: str
    type: str  # "boolean", "HumanName", "Resource", or "" for a backbone element
    definition: str  # the path its children are listed under: a type name or a backbone path
    choice: str = ""  # the choice element it is one type of: "deceased" for deceasedBoolean

    @property
    def primitive(self) -> bool:
        return self.type in PRIMITIVE_JSON

    @property
    def resource(self) -> bool:
        return self.type == "Resource"


def _model() -> dict[str, Any]:
    model: dict[str, Any] = models["r4"]
    return model


@cache
def _children_index() -> dict[str, dict[str, Element]]:
    """Every element of R4, grouped by the path of its parent (built once)."""
    path2type: dict[str, str] = _model()["path2Type"]
    index: dict[str, dict[str, Element]] = {}
    parents = {path.rsplit(".", 1)[0] for path in path2type}
    for path, type_code in path2type.items():
        parent, name = path.rsplit(".", 1)
        if type_code in ("BackboneElement", "Element") and path in parents:
            type_code = ""
        definition = path if type_code == "" else type_code
        index.setdefault(parent, {})[name] = Element(name, type_code, definition)
    # Backbone elements have no entry of their own in path2Type, only their children do.
    for parent in parents:
        if parent not in path2type and "." in parent:
            grand, name = parent.rsplit(".", 1)
            index.setdefault(grand, {}).setdefault(name, Element(name, "", parent))
    # Choice elements: each typed name (deceasedBoolean) knows its choice (deceased).
    choices: dict[str, list[str]] = _model()["choiceTypePaths"]
    for path, types in choices.items():
        parent, base = path.rsplit(".", 1)
        siblings = index.get(parent, {})
        for type_name in types:
            name = base + type_name[0].upper() + type_name[1:]
            if name in siblings:
                found = siblings[name]
                siblings[name] = Element(found.name, found.type, found.definition, base)
    # contentReference elements (Questionnaire.item.item) repeat the definition they name.
    elsewhere: dict[str, str] = _model()["pathsDefinedElsewhere"]
    for path, target in elsewhere.items():
        parent, name = path.rsplit(".", 1)
        index.setdefault(parent, {})[name] = Element(name, "", target)
    return index


@cache
def children(definition: str) -> dict[str, Element]:
    """The elements of a type or backbone element, inherited ones included (cached)."""
    index = _children_index()
    parents: dict[str, str] = _model()["type2Parent"]
    result: dict[str, Element] = {}
    chain = [definition]
    while chain[-1] in parents:
        chain.append(parents[chain[-1]])
    for name in reversed(chain):
        result.update(index.get(name, {}))
    return result


@cache
def resource_types() -> frozenset[str]:
    """The R4 resource types (every type that derives from Resource)."""
    parents: dict[str, str] = _model()["type2Parent"]

    def is_resource(name: str) -> bool:
        while name in parents:
            name = parents[name]
            if name == "Resource":
                return True
        return False

    return frozenset(
        name for name in parents if is_resource(name) and name not in ("DomainResource",)
    )


@cache
def _repeating() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """R4's cardinality, which fhirpathpy's model lacks (scripts/build_elements.py)."""
    data = json.loads((schemas_dir() / "fhir" / "repeating-elements.json").read_text("utf-8"))
    by_parent = {parent: frozenset(names) for parent, names in data["repeating"].items()}
    return frozenset(data["always"]), by_parent


def repeats(definition: str, name: str) -> bool:
    """Whether element ``name`` of ``definition`` (a type or backbone path) may occur more than
    once (max cardinality other than 1), inherited elements included."""
    always, by_parent = _repeating()
    if name in always:
        return True
    parents: dict[str, str] = _model()["type2Parent"]
    while True:
        if name in by_parent.get(definition, ()):
            return True
        if definition not in parents:
            return False
        definition = parents[definition]


@cache
def _orders() -> dict[str, list[str]]:
    data = json.loads((schemas_dir() / "fhir" / "element-order.json").read_text("utf-8"))
    orders: dict[str, list[str]] = data["order"]
    return orders


@cache
def order(definition: str) -> dict[str, int]:
    """The rank of each child of ``definition`` (a type or backbone path) in R4's element order,
    inherited elements first, a choice under its base name (``value``); empty when unknown. FHIR
    XML must follow this order (scripts/build_elements.py)."""
    return {name: rank for rank, name in enumerate(_orders().get(definition, ()))}


def is_resource_type(name: object) -> bool:
    return isinstance(name, str) and name in resource_types()


def is_fhir_type(name: object) -> bool:
    """A type R4 defines: a resource, a data type or a primitive."""
    return isinstance(name, str) and (
        name in _model()["type2Parent"] or name in PRIMITIVE_JSON or name in _ROOT_TYPES
    )


_ROOT_TYPES = frozenset({"Base", "Element", "Resource"})  # the roots have no parent entry
