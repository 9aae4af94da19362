"""One walk over a resource's JSON, guided by the R4 element definitions.

The walk does the checks that need R4's own element tree and that pydantic's lax mode lets
through (``"active": "yes"`` would become ``True``): unknown elements, JSON types of primitives,
nulls, empty strings, arrays and objects (ele-1). It also indexes what the later rule families
look at, so that none of them walks the JSON again: every element by its definition path
(``Patient.gender``, ``Identifier.use``) and every complex value by its type (``Period``,
``Reference``), and every resource met on the way (contained, Bundle entries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hie.validators.fhir_rules.elements import (
    PRIMITIVE_JSON,
    R4B_ONLY_TYPES,
    Element,
    children,
    is_resource_type,
    repeats,
)
from hie.validators.report import Report, Severity
from hie.validators.rules import register

UNKNOWN_ELEMENT = register(
    "fhir.structure.element",
    summary="Every property is an element the FHIR R4 definition of its type has.",
    fix="Remove or rename the property: check the spelling and case against the R4 resource "
    "page (choice elements carry their type, e.g. valueQuantity); data the standard has no "
    "element for goes in an extension.",
)
JSON_TYPE = register(
    "fhir.structure.json-type",
    summary="Primitive values have the JSON type FHIR R4 gives them: booleans true/false, "
    "integers and decimals as JSON numbers, everything else as strings; objects and arrays "
    "where the element is complex or repeats.",
    fix='Write booleans as true/false without quotes, numbers without quotes ("age": 42), '
    "dates and codes as strings.",
)
EMPTY = register(
    "fhir.invariant.ele-1",
    summary="ele-1: every element has a value or children; FHIR JSON has no nulls, empty "
    "strings, empty arrays or empty objects.",
    fix='Leave out an element that has no value instead of sending null, "", [] or {}.',
)
RESOURCE_TYPE = register(
    "fhir.structure.resource-type",
    summary="Every resource (also contained ones and Bundle entries) names an R4 resource type "
    "in resourceType.",
    fix="Set resourceType to an R4 (4.0.1) resource type with that exact spelling; R4B/R5 "
    "types (e.g. MedicinalProductDefinition, SubscriptionTopic) are not accepted.",
)

CHOICE = register(
    "fhir.structure.choice",
    summary="A choice element ([x]) appears once, with one type.",
    fix="Keep one of the alternatives (e.g. deceasedBoolean or deceasedDateTime, not both).",
)

_RESOURCE_KEYS = ("resourceType",)


@dataclass
class ResourceNode:
    """A resource met in the walk: the root, a contained resource or one inside a Bundle."""

    path: str
    data: dict[str, Any]
    type: str
    parent: ResourceNode | None = None
    role: str = "root"  # "root", "contained", "entry" (Bundle.entry.resource) or "nested"


@dataclass(frozen=True)
class Node:
    path: str  # FHIRPath-like location, e.g. Bundle.entry[2].resource.identifier[0]
    definition: str  # where the element is defined, e.g. Patient.identifier, Identifier.use
    type: str  # R4 type code ("" for backbone elements)
    value: Any
    owner: ResourceNode


@dataclass
class Tree:
    """What the walk found in one resource (and everything nested in it)."""

    root: ResourceNode
    resources: list[ResourceNode] = field(default_factory=list)
    by_type: dict[str, list[Node]] = field(default_factory=dict)
    by_definition: dict[str, list[Node]] = field(default_factory=dict)
    # False when the walk left contained resources out (HL7's validateContains IGNORE).
    contained: bool = True

    def of_type(self, type_code: str) -> list[Node]:
        return self.by_type.get(type_code, [])

    def at(self, definition: str) -> list[Node]:
        return self.by_definition.get(definition, [])


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _expected(type_code: str) -> str:
    expected = PRIMITIVE_JSON[type_code]
    if expected is bool:
        return "true or false"
    if expected is int:
        return "a JSON integer"
    if expected is str:
        return "a JSON string"
    return "a JSON number"


class _Walker:
    def __init__(self, report: Report, tree: Tree, *, entries: bool, contained: bool) -> None:
        self.report = report
        self.tree = tree
        self.entries = entries
        self.contained = contained

    def _index(self, node: Node) -> None:
        self.tree.by_definition.setdefault(node.definition, []).append(node)
        if node.type:
            self.tree.by_type.setdefault(node.type, []).append(node)

    def error(self, rule: str, path: str, message: str, code: str = "structure") -> None:
        self.report.add(Severity.ERROR, rule, f"{path}: {message}", code=code, expression=path)

    def resource(
        self, data: Any, path: str, parent: ResourceNode | None, role: str
    ) -> ResourceNode | None:
        if not isinstance(data, dict):
            self.error(JSON_TYPE.id, path, f"a resource is a JSON object, not {_describe(data)}")
            return None
        rtype = data.get("resourceType")
        if not isinstance(rtype, str) or not is_resource_type(rtype):
            if isinstance(rtype, str) and rtype in R4B_ONLY_TYPES:
                message = f"{rtype} is an R4B resource type, not an R4 (4.0.1) one"
            elif rtype is None:
                message = "resourceType is missing"
            else:
                message = f"resourceType {rtype!r} is not an R4 resource type"
            self.error(RESOURCE_TYPE.id, path, message, code="structure")
            return None
        node = ResourceNode(path, data, rtype, parent, role)
        self.tree.resources.append(node)
        self.complex(data, path, rtype, node, resource=True)
        return node

    def complex(
        self,
        data: dict[str, Any],
        path: str,
        definition: str,
        owner: ResourceNode,
        *,
        resource: bool = False,
    ) -> None:
        elements = children(definition)
        meaningful = False
        chosen: dict[str, str] = {}
        for key, value in data.items():
            if resource and key in _RESOURCE_KEYS:
                continue
            if key.startswith("_"):
                self.primitive_extension(data, key, value, path, definition, elements, owner)
                meaningful = True
                continue
            element = elements.get(key)
            if element is None:
                self.unknown(key, path, definition)
                continue
            if key not in ("id",):
                meaningful = True
            if element.choice:
                other = chosen.setdefault(element.choice, key)
                if other != key:
                    self.error(
                        CHOICE.id,
                        f"{path}.{key}",
                        f"{element.choice}[x] appears twice ({other} and {key}); keep one",
                    )
            self.element(element, value, f"{path}.{key}", f"{definition}.{key}", owner, data)
        if not meaningful and not resource:
            self.error(
                EMPTY.id, path, "the element has no value and no children (ele-1)", "invariant"
            )

    def unknown(self, key: str, path: str, definition: str) -> None:
        if key == "fhir_comments":
            self.error(
                UNKNOWN_ELEMENT.id,
                f"{path}.fhir_comments",
                "unrecognized property 'fhir_comments': JSON comments were dropped from FHIR "
                "in STU3; remove it",
            )
            return
        self.error(
            UNKNOWN_ELEMENT.id,
            f"{path}.{key}",
            f"{definition} has no element {key!r} in FHIR R4",
        )

    def element(
        self,
        element: Element,
        value: Any,
        path: str,
        definition: str,
        owner: ResourceNode,
        parent: dict[str, Any],
    ) -> None:
        if isinstance(value, list):
            if not value:
                self.error(EMPTY.id, path, "an empty array is not allowed; leave it out")
                return
            if not repeats(definition.rsplit(".", 1)[0], element.name):
                # R4B's models take [x] for a single x; R4 does not (HL7: "This property must
                # be an Object, not an Array"). Nothing below is walked: its paths would lie.
                what = "a simple value" if element.primitive else "a JSON object"
                self.error(
                    JSON_TYPE.id,
                    path,
                    f"single-valued in R4 (max 1): write it as {what}, not an array",
                )
                return
            ext = parent.get(f"_{element.name}") if element.primitive else None
            for index, item in enumerate(value):
                item_path = f"{path}[{index}]"
                if item is None:
                    aligned = isinstance(ext, list) and index < len(ext) and ext[index] is not None
                    if not aligned:
                        self.error(
                            EMPTY.id,
                            item_path,
                            "null is only allowed in an array of primitives "
                            "whose _ array has an extension at that position",
                        )
                    continue
                self.value(element, item, item_path, definition, owner)
            return
        if value is None:
            self.error(EMPTY.id, path, "null is not allowed; leave the element out")
            return
        self.value(element, value, path, definition, owner)

    def value(
        self, element: Element, value: Any, path: str, definition: str, owner: ResourceNode
    ) -> None:
        type_code = element.type
        if element.primitive:
            expected = PRIMITIVE_JSON[type_code]
            # bool is an int in Python: an integer or decimal may never be true/false.
            if not isinstance(value, expected) or (
                isinstance(value, bool) and expected is not bool
            ):
                self.error(
                    JSON_TYPE.id,
                    path,
                    f"{type_code} is written as {_expected(type_code)}, not {_describe(value)}",
                )
                return
            if isinstance(value, str) and not value.strip() and type_code != "xhtml":
                self.error(EMPTY.id, path, "an empty string is not a value; leave it out")
                return
            self._index(Node(path, definition, type_code, value, owner))
            return
        if element.resource:
            role = _role(definition)
            if (self.entries or role != "entry") and (self.contained or role != "contained"):
                self.resource(value, path, owner, role)
            return
        if not isinstance(value, dict):
            what = element.type or "a backbone element"
            self.error(
                JSON_TYPE.id, path, f"{what} is written as a JSON object, not {_describe(value)}"
            )
            return
        self._index(Node(path, definition, type_code, value, owner))
        self.complex(value, path, element.definition, owner)

    def primitive_extension(
        self,
        parent: dict[str, Any],
        key: str,
        value: Any,
        path: str,
        definition: str,
        elements: dict[str, Element],
        owner: ResourceNode,
    ) -> None:
        name = key[1:]
        element = elements.get(name)
        if element is None or not element.primitive:
            self.error(
                UNKNOWN_ELEMENT.id,
                f"{path}.{key}",
                f"{key} extends {name!r}, which is not a primitive element of {definition}",
            )
            return
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) != isinstance(parent.get(name, value), list):
            self.error(
                JSON_TYPE.id, f"{path}.{key}", f"{key} and {name} must both be arrays or neither"
            )
            return
        for index, item in enumerate(values):
            item_path = f"{path}.{key}[{index}]" if isinstance(value, list) else f"{path}.{key}"
            if item is None:
                continue
            if not isinstance(item, dict):
                self.error(JSON_TYPE.id, item_path, f"{key} holds objects with id and extension")
                continue
            self.complex(item, item_path, "Element", owner)


def _role(definition: str) -> str:
    if definition.endswith(".contained"):
        return "contained"
    if definition == "Bundle.entry.resource":
        return "entry"
    return "nested"  # Parameters.parameter.resource, Bundle.entry.response.outcome, ...


def walk(
    resource: dict[str, Any],
    base: str,
    report: Report,
    *,
    entries: bool = True,
    contained: bool = True,
) -> Tree | None:
    """Walk ``resource`` (validated as located at ``base``); None when it is not a resource.

    ``entries=False`` leaves out the resources of Bundle.entry (validated one by one instead);
    ``contained=False`` leaves out contained resources (not validated at all).
    """
    placeholder = ResourceNode(base, resource, str(resource.get("resourceType")))
    tree = Tree(placeholder, contained=contained)
    walker = _Walker(report, tree, entries=entries, contained=contained)
    root = walker.resource(resource, base, None, "root")
    if root is None:
        return None
    tree.root = root
    return tree
