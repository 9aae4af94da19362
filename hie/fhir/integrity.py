"""Referential integrity as HAPI FHIR JPA enforces it by default (pure; the look-ups are in
hie/storage/references.py and run at the end of a write session, hie/fhir/session.py):

- a create, update or patch whose relative literal reference (``Patient/123``) names a resource
  the institution does not have is refused, 400, naming the element path;
- deleting a resource that live resources still reference is refused, 409, naming them.

Within one transaction everything it writes counts (``urn:uuid:`` and conditional references
are rewritten to ``<Type>/<id>`` before), and resources deleted together may refer to each other.
Contained (``#id``), ``urn:`` and absolute references are not checked: they do not name a
resource of this server's institution scope; nor are the references inside a stored document
Bundle, which resolve against its own entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hie.fhir.parameters import parameters_of
from hie.validators.fhir_rules.elements import is_resource_type

_RELATIVE = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?")

# At most this many referrers are named in a delete's 409.
NAMED_REFERRERS = 20


@dataclass(frozen=True)
class Reference:
    """A relative literal reference of a resource: the element path and ``<Type>/<id>``."""

    path: str
    target: str


def references_of(resource: dict[str, Any]) -> list[Reference]:
    """Every relative literal reference in ``resource`` with its element path
    (``Observation.subject``; contained resources' references included)."""
    found: list[Reference] = []
    if resource.get("resourceType") == "Bundle":
        return found  # a stored document Bundle's references resolve inside it (fullUrl)
    _walk(resource, str(resource.get("resourceType") or ""), found)
    return found


def _walk(value: Any, path: str, found: list[Reference]) -> None:
    if isinstance(value, list):
        for item in value:
            _walk(item, path, found)
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        if key == "reference" and isinstance(item, str):
            match = _RELATIVE.fullmatch(item)
            if match and is_resource_type(match[1]):
                found.append(Reference(path, f"{match[1]}/{match[2]}"))
        elif isinstance(item, dict | list):
            _walk(item, f"{path}.{key}", found)


def referring_path(resource_type: str, param: str) -> str:
    """The element path of a reference search parameter (``Encounter.subject``), as HAPI names
    the referrer of a refused delete; the parameter's name when its path is unknown."""
    parameter = parameters_of(resource_type).get(param)
    if parameter is None:
        return f"{resource_type}.{param}"
    # The first of the expression's own paths, without its filters or casts:
    # "Encounter.subject.where(resolve() is Patient)" names Encounter.subject.
    for part in parameter.expression.split("|"):
        path = part.strip().lstrip("(").split(".where(")[0].split(" as ")[0].rstrip(")")
        if path.startswith(f"{resource_type}."):
            return path.removesuffix("[x]")
    return f"{resource_type}.{param}"
