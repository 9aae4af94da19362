"""The instance side: the occurrences of a profile's elements in a resource, and the
resources its references point at (contained, or in the Bundle being validated)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hie.validators.fhir_rules.elements import PRIMITIVE_JSON, children, resource_types
from hie.validators.fhir_rules.references import restful_url


@dataclass(frozen=True)
class Value:
    path: str  # where it is, as issues name it
    value: Any  # None for a primitive that has only an extension
    type: str  # R4 type code, the resource type for a resource, "" for a backbone element
    definition: str  # where its children are defined (a type or a backbone path)
    element: str  # its R4 element path, for FHIRPath (Observation.component)
    holder: Any = None  # the resource the element is in (FHIRPath's %resource)
    shadow: Any = None  # a primitive's id and extensions (JSON's ``_name``)


def values_of(parent: Value, name: str) -> list[Value]:
    """The occurrences of element ``name`` (``value[x]`` names every ``value*``) in ``parent``."""
    data = parent.value
    if not isinstance(data, dict):
        return []
    elements = children(parent.definition)
    if name not in elements and any(e.choice == name for e in elements.values()):
        name += "[x]"  # a discriminator path names a choice without its type ("content")
    if name.endswith("[x]"):
        keys = [k for k, e in elements.items() if e.choice == name[:-3] and _present(data, k)]
    else:
        keys = [name] if name in elements and _present(data, name) else []
    found: list[Value] = []
    holder = data if "resourceType" in data else parent.holder
    for key in keys:
        element = elements[key]
        raw = data.get(key)
        items = raw if isinstance(raw, list) else [raw]
        extras = data.get(f"_{key}")
        extra_items = extras if isinstance(extras, list) else [extras]
        many = isinstance(raw, list) or isinstance(extras, list)
        type_code = element.type
        if element.choice:
            type_code = key[len(element.choice) :]
            if type_code[:1].lower() + type_code[1:] in PRIMITIVE_JSON:
                type_code = type_code[:1].lower() + type_code[1:]
        for index in range(max(len(items), len(extra_items))):
            item = items[index] if index < len(items) else None
            extra = extra_items[index] if index < len(extra_items) else None
            if item is None and extra is None:
                continue
            path = f"{parent.path}.{key}[{index}]" if many else f"{parent.path}.{key}"
            if element.resource and isinstance(item, dict):
                rtype = item.get("resourceType")
                rtype = rtype if isinstance(rtype, str) else ""
                found.append(Value(path, item, rtype, rtype, rtype, holder))
            else:
                definition = element.definition if not element.primitive else type_code
                element_path = f"{parent.definition}.{key}"
                found.append(Value(path, item, type_code, definition, element_path, holder, extra))
    return found


def defined(definition: str, name: str) -> bool:
    elements = children(definition)
    if name in elements:
        return True
    choice = name[:-3] if name.endswith("[x]") else name
    return any(e.choice == choice for e in elements.values())


def _present(data: dict[str, Any], key: str) -> bool:
    return data.get(key) is not None or data.get(f"_{key}") is not None


Resolver = Callable[[Value], "Value | None"]


def descend(value: Value, path: str, resolve: Resolver | None = None) -> list[Value] | None:
    """The values at a discriminator path (``coding.code``, ``$this``, ``resource``,
    ``item.resolve()`` with a resolver)."""
    current = [value]
    for segment in path.split("."):
        if segment == "$this":
            continue
        if segment == "resolve()" and resolve is not None:
            current = [r for c in current if (r := resolve(c)) is not None]
            continue
        match = re.fullmatch(r"extension\('([^']+)'\)", segment)
        if match:
            current = [
                v
                for c in current
                for v in values_of(c, "extension")
                if isinstance(v.value, dict) and v.value.get("url") == match[1]
            ]
            continue
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(\[x\])?", segment):
            return None  # resolve(), ofType(), ...: not evaluated
        current = [v for c in current for v in values_of(c, segment)]
    return current


_RELATIVE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


def in_bundle(bundle: dict[str, Any], reference: str) -> dict[str, Any] | None:
    """The resource of a Bundle entry a reference names (by fullUrl, or Type/id), if exactly
    one."""
    if bundle.get("resourceType") != "Bundle" or not isinstance(bundle.get("entry"), list):
        return None
    found = []
    relative = _RELATIVE.fullmatch(reference) is not None
    for entry in bundle["entry"]:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        full_url = entry.get("fullUrl")
        if full_url == reference or (
            relative and f"{resource.get('resourceType')}/{resource.get('id')}" == reference
        ):
            found.append(resource)
    return found[0] if len(found) == 1 else None


def contained_resource(container: Any, local_id: str) -> dict[str, Any] | None:
    contained = container.get("contained") if isinstance(container, dict) else None
    for resource in contained if isinstance(contained, list) else []:
        if isinstance(resource, dict) and resource.get("id") == local_id:
            return resource
    return None


def implied_type(reference: str) -> str | None:
    """The resource type a RESTful reference URL names (``Group/1`` → Group)."""
    match = restful_url().fullmatch(reference)
    return match[1] if match else None


def extensions_of(value: Value) -> list[dict[str, Any]]:
    """The extensions of a value: a primitive's are in its shadow (``_name``)."""
    holder = value.shadow if value.type in PRIMITIVE_JSON else value.value
    found = holder.get("extension") if isinstance(holder, dict) else None
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def resource_of(value: Value) -> Any:
    """The resource FHIRPath's %resource names for a value: a resource is its own."""
    return value.value if value.type in resource_types() else value.holder


def resolve_reference(value: Value, containers: tuple[Any, ...], top: Any) -> Value | None:
    """The resource a Reference points at: a resource contained in one of ``containers``, or
    an entry of the Bundle ``top``; else, for a RESTful URL (``Patient/1``), a stand-in of the
    type it names, which only a type discriminator looks at."""
    data = value.value
    reference = data.get("reference") if isinstance(data, dict) else None
    if not isinstance(reference, str):
        return None
    target: dict[str, Any] | None = None
    if reference.startswith("#"):
        for container in containers:
            target = contained_resource(container, reference[1:])
            if target is not None:
                break
    elif isinstance(top, dict):
        target = in_bundle(top, reference)
    if target is None:
        implied = implied_type(reference)
        return None if implied is None else Value(value.path, None, implied, implied, implied)
    rtype = str(target.get("resourceType"))
    return Value(value.path, target, rtype, rtype, rtype, target)
