"""Finding the Questionnaire a response answers: contained (``#id``), loaded (``--ig``) or
elsewhere in the same upload (a Bundle entry)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hie.validators.conformance import Context, split_canonical
from hie.validators.fhir_rules.elements import is_resource_type
from hie.validators.fhir_rules.shapes import objects
from hie.validators.fhir_rules.tree import ResourceNode, Tree

_CORE_CANONICAL = re.compile(r"http://hl7\.org/fhir/([A-Z][A-Za-z]+)/[^/]+")


@dataclass
class Source:
    """The Questionnaire a response answers, and the resources its '#id' references reach."""

    questionnaire: dict[str, Any]
    contained: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_link: dict[str, dict[str, Any]] = field(default_factory=dict)


def _contained_by_id(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in objects(resource.get("contained")) if isinstance(c.get("id"), str)}


def _matches(resource: dict[str, Any], url: str, version: str | None) -> bool:
    return resource.get("url") == url and (version is None or resource.get("version") == version)


def find_questionnaire(
    tree: Tree, response: ResourceNode, canonical: str, context: Context
) -> Source | None:
    if canonical.startswith("#"):
        contained = _contained_by_id(response.data)
        found = contained.get(canonical[1:])
        if found is not None and found.get("resourceType") == "Questionnaire":
            return Source(found, contained)
        return None
    resolved = context.conformance.resolve(canonical, "Questionnaire")
    if resolved is None:
        url, version = split_canonical(canonical)
        for other in tree.resources:
            if other.type == "Questionnaire" and _matches(other.data, url, version):
                resolved = other.data
                break
    if resolved is None:
        return None
    return Source(resolved, _contained_by_id(resolved))


def wrong_type(canonical: str, context: Context) -> str | None:
    """The resource type ``canonical`` names when it is known not to be a Questionnaire."""
    other = context.conformance.resolve(canonical)
    if other is not None:
        rtype = other.get("resourceType")
        return str(rtype) if rtype != "Questionnaire" else None
    core = _CORE_CANONICAL.fullmatch(split_canonical(canonical)[0])
    if core and core.group(1) != "Questionnaire" and is_resource_type(core.group(1)):
        return core.group(1)
    return None


def index_links(items: Any, into: dict[str, dict[str, Any]]) -> None:
    """Add every Questionnaire item under ``items``, nested ones too, to ``into`` by linkId (the
    first item wins)."""
    pending = list(reversed(objects(items)))
    while pending:
        item = pending.pop()
        link = item.get("linkId")
        if isinstance(link, str):
            into.setdefault(link, item)
        pending.extend(reversed(objects(item.get("item"))))
