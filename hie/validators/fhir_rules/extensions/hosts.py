"""The element an extension is on, named as HL7's validator names it for contexts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hie.validators.fhir_rules.elements import children
from hie.validators.fhir_rules.tree import Node, ResourceNode


@dataclass(frozen=True)
class Host:
    """The element an extension is on."""

    path: str  # where it is, as issues name it
    names: frozenset[str]  # its definition paths and types: Patient.name, HumanName
    resource: ResourceNode | None  # when it is a resource
    value: Any
    extension_url: str | None  # when it is an extension, or an extension's value
    type: str  # its type, or the path of a backbone element, for FHIRPath


def _strip(segment: str) -> str:
    return segment.split("[", 1)[0].removeprefix("_")


def find_host(path: str, resources: dict[str, ResourceNode], nodes: dict[str, Node]) -> Host | None:
    if path in resources:
        resource = resources[path]
        return Host(path, frozenset({resource.type}), resource, resource.data, None, resource.type)
    head, _, last = path.rpartition(".")
    if last.startswith("_"):
        path = f"{head}.{last[1:]}"
    owner_path = path
    while owner_path not in resources:
        if "." not in owner_path:
            return None
        owner_path = owner_path.rsplit(".", 1)[0]
    owner = resources[owner_path]
    segments = path[len(owner_path) + 1 :].split(".")
    # As HL7's validator: the element's path from each enclosing type (HumanName.family,
    # Patient.name.family) and its type; a backbone element is named by the path it is defined
    # at (Questionnaire.item for item.item) and matches the BackboneElement context.
    logical = [owner.type]
    definition = owner.type
    for segment in segments:
        name = _strip(segment)
        element = children(definition).get(name)
        if element is None:
            return None
        following = [f"{p}.{name}" for p in logical]
        if element.choice:
            following += [f"{p}.{element.choice}" for p in logical]
        following.append(element.type or element.definition)
        logical = following
        definition = element.definition
    literal = f"{owner.type}.{'.'.join(_strip(s) for s in segments)}"
    backbone = {"BackboneElement"} if definition == literal or "." in definition else set()
    node = nodes.get(path)
    value = node.value if node is not None else None
    extension_url = None
    if isinstance(value, dict) and definition == "Extension":
        extension_url = value.get("url")
    elif _strip(segments[-1]).startswith("value"):
        parent = nodes.get(path.rsplit(".", 1)[0])
        if parent is not None and parent.type == "Extension" and isinstance(parent.value, dict):
            extension_url = parent.value.get("url")
    url = extension_url if isinstance(extension_url, str) else None
    return Host(path, frozenset({*logical, literal, *backbone}), None, value, url, definition)
