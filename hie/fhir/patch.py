"""PATCH bodies applied to a resource (pure, no I/O): JSON Patch (RFC 6902, the ``jsonpatch``
library) and FHIRPath Patch (a ``Parameters`` resource, FHIR R4 fhirpatch.html: add, insert,
delete, replace, move; paths evaluated with fhirpathpy on R4's model).

Either applies to the resource as served (with ``meta.versionId``), on a deep copy, and raises
:class:`PatchError` naming the operation that could not be applied, as HAPI's 400 does.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass
from typing import Any

import jsonpatch
from fhirpathpy import evaluate
from fhirpathpy.models import models

from hie.validators.fhir_rules.elements import children, repeats
from hie.validators.fhir_rules.fhirpath import LOCK, OPTIONS

JSON_PATCH = "application/json-patch+json"
OPERATIONS = ("add", "insert", "delete", "replace", "move")

# One step of a location fhirpathpy reports: "name[0]" or "name".
_STEP = re.compile(r"([A-Za-z][A-Za-z0-9_]*)(?:\[(\d+)\])?")


class PatchError(ValueError):
    """A patch that cannot be applied; ``expression`` locates the operation in the body."""

    def __init__(self, message: str, expression: str | None = None) -> None:
        super().__init__(message)
        self.expression = expression


@dataclass(frozen=True)
class Patch:
    """A parsed patch body: ``kind`` is ``json`` (RFC 6902 operations) or ``fhirpath``."""

    kind: str
    operations: list[Any]


def parse_patch(content_type: str | None, body: dict[str, Any] | list[Any] | None) -> Patch:
    """The patch a body holds: a JSON array under ``application/json-patch+json``, a
    ``Parameters`` resource (FHIRPath Patch) otherwise."""
    if content_type == JSON_PATCH or isinstance(body, list):
        if not isinstance(body, list) or not all(isinstance(op, dict) for op in body):
            raise PatchError("a JSON Patch is a JSON array of operation objects")
        return Patch("json", body)
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise PatchError(
            f"PATCH takes a JSON Patch ({JSON_PATCH}) or a FHIRPath Patch (a Parameters "
            "resource, application/fhir+json)"
        )
    operations = [p for p in body.get("parameter") or [] if isinstance(p, dict)]
    for i, operation in enumerate(operations):
        if operation.get("name") != "operation":
            raise PatchError(
                "a FHIRPath Patch holds only 'operation' parameters", f"Parameters.parameter[{i}]"
            )
    return Patch("fhirpath", operations)


def apply_patch(patch: Patch, resource: dict[str, Any]) -> dict[str, Any]:
    """The patched copy of ``resource``; raises :class:`PatchError`."""
    if patch.kind == "json":
        return _apply_json(patch.operations, resource)
    patched = copy.deepcopy(resource)
    for i, operation in enumerate(patch.operations):
        _apply_fhirpath(patched, operation, f"Parameters.parameter[{i}]")
    return patched


def _apply_json(operations: list[Any], resource: dict[str, Any]) -> dict[str, Any]:
    try:
        patched = jsonpatch.apply_patch(resource, operations, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise PatchError(f"JSON Patch failed: {exc}") from exc
    except (TypeError, KeyError, IndexError, ValueError) as exc:  # malformed operations
        raise PatchError(f"JSON Patch failed: {exc!r}") from exc
    if not isinstance(patched, dict):
        raise PatchError("JSON Patch failed: the result is not a resource")
    return patched


# -- FHIRPath Patch ---------------------------------------------------------------------------


def _parts(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(p.get("name")): p for p in operation.get("part") or [] if isinstance(p, dict)}


def _primitive(parts: dict[str, dict[str, Any]], name: str, where: str) -> Any:
    part = parts.get(name)
    if part is None:
        return None
    values = [v for k, v in part.items() if k.startswith("value")]
    if len(values) != 1:
        raise PatchError(f"the '{name}' part has no value", where)
    return values[0]


def _value(part: dict[str, Any]) -> Any:
    """A ``value`` part's content: its ``value[x]``, or an element built from its parts."""
    for key, item in part.items():
        if key.startswith("value"):
            return copy.deepcopy(item)
    if "resource" in part:
        return copy.deepcopy(part["resource"])
    built: dict[str, Any] = {}
    for child in part.get("part") or []:
        if not isinstance(child, dict) or not isinstance(child.get("name"), str):
            continue
        item = _value(child)
        name = child["name"]
        if name in built:
            existing = built[name]
            built[name] = [*existing, item] if isinstance(existing, list) else [existing, item]
        else:
            built[name] = item
    return built


def _locate(resource: dict[str, Any], path: str, where: str) -> list[str]:
    """The locations (``Patient.name[0].given[1]``) an expression selects."""
    with LOCK:
        try:
            nodes = evaluate(resource, path, {}, models["r4"], {**OPTIONS, "returnRawData": True})
        except Exception as exc:  # fhirpathpy raises many kinds on a bad expression
            raise PatchError(f"the path {path!r} is not a usable FHIRPath: {exc}", where) from exc
    found = []
    for node in nodes:
        location = getattr(node, "propName", None) or getattr(node, "path", None)
        if not isinstance(location, str):
            raise PatchError(f"the path {path!r} selects something that is not an element", where)
        found.append(location)
    return found


def _steps(location: str) -> list[tuple[str, int | None]]:
    steps = []
    for text in location.split(".")[1:]:
        match = _STEP.fullmatch(text)
        if match is None:
            raise PatchError(f"cannot patch at {location!r}")
        steps.append((match[1], int(match[2]) if match[2] is not None else None))
    return steps


def _holder(resource: dict[str, Any], location: str) -> tuple[Any, str | int]:
    """The container (a dict or list) holding the element at ``location``, and its key."""
    steps = _steps(location)
    if not steps:
        raise PatchError("the path selects the whole resource")
    node: Any = resource
    for name, index in steps[:-1]:
        node = node[name]
        if index is not None:
            node = node[index]
    name, index = steps[-1]
    if index is not None:
        return node[name], index
    return node, name


def _element(resource: dict[str, Any], location: str) -> Any:
    holder, key = _holder(resource, location)
    return holder[key]


def _definition(resource: dict[str, Any], location: str) -> str:
    """The R4 definition (type or backbone path) of the element at ``location``."""
    definition = str(resource["resourceType"])
    for name, _ in _steps(location):
        element = children(definition).get(name)
        if element is None:
            return ""
        definition = element.definition
    return definition


def _single(locations: list[str], path: str, where: str) -> str:
    if len(locations) != 1:
        raise PatchError(
            f"the path {path!r} selects {len(locations)} elements; this operation needs one", where
        )
    return locations[0]


def _index(parts: dict[str, dict[str, Any]], name: str, where: str) -> int:
    value = _primitive(parts, name, where)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PatchError(f"the '{name}' part must be a non-negative integer", where)
    return value


def _list_at(resource: dict[str, Any], path: str, where: str) -> list[Any]:
    """The list a path names (``Patient.identifier``), made when still absent."""
    locations = _locate(resource, path, where)
    if locations:
        holder, key = _holder(resource, locations[0])
        if isinstance(holder, list):
            return holder
        value = holder[key]
        if isinstance(value, list):
            return value
        raise PatchError(f"{path!r} is not a list", where)
    parent, _, name = path.rpartition(".")
    owners = _locate(resource, parent, where) if "." in parent else [resource["resourceType"]]
    owner_location = _single(owners, parent, where)
    owner = resource if owner_location == resource["resourceType"] else None
    if owner is None:
        owner = _element(resource, owner_location)
    if not isinstance(owner, dict) or not _STEP.fullmatch(name):
        raise PatchError(f"cannot make the list {path!r}", where)
    created: list[Any] = owner.setdefault(name, [])
    return created


def _apply_fhirpath(resource: dict[str, Any], operation: dict[str, Any], where: str) -> None:
    """One operation, every failure located at it."""
    try:
        _apply_one(resource, operation, where)
    except PatchError as exc:
        if exc.expression is None:
            raise PatchError(str(exc), where) from exc
        raise
    except (KeyError, IndexError, TypeError) as exc:
        raise PatchError(f"the operation does not fit the resource ({exc!r})", where) from exc


def _apply_one(resource: dict[str, Any], operation: dict[str, Any], where: str) -> None:
    parts = _parts(operation)
    kind = _primitive(parts, "type", where)
    path = _primitive(parts, "path", where)
    if kind not in OPERATIONS:
        raise PatchError(f"unknown operation type {kind!r} (one of {', '.join(OPERATIONS)})", where)
    if not isinstance(path, str) or not path:
        raise PatchError("the operation has no path", where)
    value = _value(parts["value"]) if "value" in parts else None
    if kind in ("add", "insert", "replace") and "value" not in parts:
        raise PatchError(f"a {kind} operation needs a value", where)
    if kind == "add":
        name = _primitive(parts, "name", where)
        if not isinstance(name, str) or not _STEP.fullmatch(name):
            raise PatchError("an add operation needs a name", where)
        location = _single(_locate(resource, path, where), path, where)
        owner = resource if location == resource["resourceType"] else _element(resource, location)
        if not isinstance(owner, dict):
            raise PatchError(f"cannot add {name!r} to a primitive at {path!r}", where)
        current = owner.get(name)
        if isinstance(current, list):
            current.append(value)
        elif current is None and repeats(_definition(resource, location), name):
            owner[name] = [value]
        elif current is None:
            owner[name] = value
        else:
            raise PatchError(f"{path}.{name} already has a value; use replace", where)
    elif kind == "insert":
        items = _list_at(resource, path, where)
        index = _index(parts, "index", where)
        if index > len(items):
            raise PatchError(f"index {index} is past the end of {path!r} ({len(items)})", where)
        items.insert(index, value)
    elif kind == "delete":
        locations = _locate(resource, path, where)
        if not locations:
            return  # deleting what is not there changes nothing (fhirpatch.html)
        holder, key = _holder(resource, _single(locations, path, where))
        del holder[key]
        _prune(resource)
    elif kind == "replace":
        location = _single(_locate(resource, path, where), path, where)
        holder, key = _holder(resource, location)
        holder[key] = value
    else:  # move
        items = _list_at(resource, path, where)
        source, destination = _index(parts, "source", where), _index(parts, "destination", where)
        if source >= len(items) or destination >= len(items):
            raise PatchError(f"source or destination is past the end of {path!r}", where)
        items.insert(destination, items.pop(source))


def _prune(value: Any) -> Any:
    """Drop the empty lists and objects a delete left behind (FHIR allows no empty elements)."""
    if isinstance(value, dict):
        for key in list(value):
            if _prune(value[key]) in ({}, []):
                del value[key]
    elif isinstance(value, list):
        value[:] = [v for v in value if _prune(v) not in ({}, [])]
    return value


def patch_from_binary(resource: dict[str, Any]) -> list[Any]:
    """The JSON Patch a ``Binary`` Bundle entry carries (base64 ``data``, as HAPI accepts)."""
    try:
        data = json.loads(base64.b64decode(resource.get("data") or "", validate=True))
    except ValueError as exc:
        raise PatchError(f"the Binary's data is not a base64 JSON Patch: {exc}") from exc
    if not isinstance(data, list):
        raise PatchError("the Binary's data is not a JSON Patch array")
    return data
