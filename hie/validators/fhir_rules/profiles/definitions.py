"""Profiles compiled into trees of element rules.

Profiles usually carry only a differential. The differentials of a profile and of the profiles
it derives from (``baseDefinition``) are merged by element id into a tree of rules, one per
element and slice. An element whose type names an element of another profile (the
profile-element extension, e.g. a library of Composition sections) takes that element's rules.
A profile is resolved from the loaded conformance resources (``url`` or ``url|version``) or
from R4's own profiles (``schemas/fhir/profiles.json``), and compiled once per set of
conformance resources.
"""

from __future__ import annotations

import copy
import json
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hie.resources import schemas_dir
from hie.validators.conformance import Conformance, split_canonical
from hie.validators.fhir_rules.elements import is_fhir_type

CORE = "http://hl7.org/fhir/StructureDefinition/"


_PROFILE_ELEMENT = CORE + "elementdefinition-profile-element"


@dataclass
class ElementRule:
    """One element of a profile, with the rules for its children and its slices."""

    id: str
    name: str  # JSON name ("code", "valueQuantity") or a choice ("value[x]"); type at the root
    data: dict[str, Any] = field(default_factory=dict)  # the merged ElementDefinition
    children: dict[str, ElementRule] = field(default_factory=dict)
    slices: list[ElementRule] = field(default_factory=list)
    slice_name: str | None = None


@dataclass
class Profile:
    url: str  # as the messages name it: url|version
    type: str
    root: ElementRule


def _segment(segment: str) -> str:
    """``value[x]:valueQuantity`` (a type slice) is the element ``valueQuantity``."""
    name, _, slice_name = segment.partition(":")
    if name.endswith("[x]") and slice_name.startswith(name[:-3]) and slice_name != name[:-3]:
        rest = slice_name[len(name) - 3 :]
        if rest[:1].isupper():
            return slice_name
    return segment


def _ids(elements: list[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(normalised id, element) of each differential element; ids are made from paths and
    slice names (the slice in force for the paths below it) when a differential has none."""
    open_slices: dict[str, str] = {}  # path of a sliced element -> id of its current slice
    for element in elements:
        if not isinstance(element, dict):
            continue
        path = element.get("path")
        given = element.get("id")
        if isinstance(given, str) and given:
            raw = given
        elif isinstance(path, str) and path:
            raw = path
            for sliced, slice_id in sorted(open_slices.items(), key=lambda i: -len(i[0])):
                if path.startswith(sliced + "."):
                    raw = slice_id + path[len(sliced) :]
                    break
            slice_name = element.get("sliceName")
            if isinstance(slice_name, str) and slice_name:
                raw = f"{raw}:{slice_name}"
                open_slices[path] = raw
            else:
                open_slices.pop(path, None)
        else:
            continue
        yield ".".join(_segment(s) for s in split_id(raw)), element


def split_id(element_id: str) -> list[str]:
    """An id's segments; a slice name may hold dots (extension URLs), a path never does."""
    segments: list[str] = []
    for part in element_id.split("."):
        if segments and ":" in segments[-1] and "/" in segments[-1]:
            segments[-1] += "." + part  # still inside a URL-like slice name
        else:
            segments.append(part)
    return segments


_LISTS = frozenset({"type", "constraint", "extension"})


def _merge(chain: list[list[Any]]) -> dict[str, dict[str, Any]]:
    """The differentials of a profile chain (base first) merged by element id."""
    merged: dict[str, dict[str, Any]] = {}
    for elements in chain:
        for element_id, given in _ids(elements):
            # Properties that repeat are lists from here on, whatever the JSON held.
            element = {k: v for k, v in given.items() if k not in _LISTS or isinstance(v, list)}
            if "type" in element:
                element["type"] = [_type_entry(t) for t in element["type"] if isinstance(t, dict)]
            before = merged.get(element_id, {})
            combined = {**before, **element}
            constraints = [c for c in before.get("constraint", []) if isinstance(c, dict)]
            keys = {c.get("key") for c in constraints}
            for constraint in element.get("constraint") or []:
                if isinstance(constraint, dict) and constraint.get("key") not in keys:
                    constraints.append(constraint)
            if constraints:
                combined["constraint"] = constraints
            merged[element_id] = combined
    return merged


def _type_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in entry.items()
        if k not in ("profile", "targetProfile", "_profile") or isinstance(v, list)
    }


def _build(type_name: str, merged: dict[str, dict[str, Any]]) -> ElementRule:
    root = ElementRule(type_name, type_name)
    for element_id, data in merged.items():
        segments = split_id(element_id)
        if segments[0] != type_name:
            continue
        rule = root
        for depth, segment in enumerate(segments[1:], start=1):
            name, _, slice_name = segment.partition(":")
            if "/" in slice_name and not slice_name.startswith(("http:", "https:")):
                break  # re-slicing: left unchecked
            base = rule.children.get(name)
            if base is None:
                base = rule.children[name] = ElementRule(".".join([*segments[:depth], name]), name)
            if slice_name:
                found = next((s for s in base.slices if s.slice_name == slice_name), None)
                if found is None:
                    found = ElementRule(
                        ".".join(segments[: depth + 1]), name, slice_name=slice_name
                    )
                    base.slices.append(found)
                rule = found
            else:
                rule = base
        else:
            rule.data = data
    if type_name in merged:
        root.data = merged[type_name]
    return root


@cache
def core_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((schemas_dir() / "fhir" / "profiles.json").read_text("utf-8"))
    return data


def _definition(canonical: str, conformance: Conformance) -> dict[str, Any] | None:
    """The StructureDefinition ``canonical`` names: loaded, or one of R4's own profiles."""
    found = conformance.resolve(canonical, "StructureDefinition")
    if found is not None:
        return found
    url, version = split_canonical(canonical)
    core = core_data()["profiles"].get(url)
    if core is None or (version is not None and not "4.0.1".startswith(version)):
        return None
    return {
        "url": url,
        "version": "4.0.1",
        "type": core["type"],
        "baseDefinition": core["baseDefinition"],
        "derivation": "constraint",
        "differential": {"element": core["elements"]},
    }


def is_base_type(canonical: str) -> bool:
    return is_fhir_type(base_type(canonical))


def base_type(canonical: str) -> str:
    """``Patient`` for R4's own definition of Patient, else ""."""
    url = split_canonical(canonical)[0]
    return url[len(CORE) :] if url.startswith(CORE) else ""


_COMPILED: weakref.WeakKeyDictionary[Conformance, dict[str, Profile | None]] = (
    weakref.WeakKeyDictionary()
)


_COMPILED_LOCK = threading.Lock()


_COMPILING = threading.local()  # canonicals being compiled by this thread: cycles end there


def compiled_profile(canonical: str, conformance: Conformance) -> Profile | None:
    """The profile ``canonical`` names, compiled once per set of conformance resources."""
    with _COMPILED_LOCK:
        cached = _COMPILED.setdefault(conformance, {})
        if canonical in cached:
            return cached[canonical]
    compiling: set[str] = getattr(_COMPILING, "canonicals", set())
    if canonical in compiling:
        return None  # a profile whose elements refer back to itself
    _COMPILING.canonicals = compiling | {canonical}
    try:
        compiled = _compile(canonical, conformance)
    finally:
        _COMPILING.canonicals = compiling
    with _COMPILED_LOCK:
        cached[canonical] = compiled
    return compiled


def _compile(canonical: str, conformance: Conformance) -> Profile | None:
    definition = _definition(canonical, conformance)
    if definition is None or definition.get("derivation") == "specialization":
        return None
    type_name = definition.get("type")
    if not isinstance(type_name, str) or not is_fhir_type(type_name):
        return None
    chain: list[list[Any]] = []
    seen: set[str] = set()
    current: dict[str, Any] | None = definition
    while current is not None and len(chain) < 20:
        chain.append(_elements(current))
        base = current.get("baseDefinition")
        if not isinstance(base, str) or base in seen or is_base_type(base):
            break
        seen.add(base)
        current = _definition(base, conformance)
        if current is not None and current.get("type") != type_name:
            break
    chain.reverse()
    url = str(definition.get("url") or canonical)
    version = definition.get("version")
    label = f"{url}|{version}" if isinstance(version, str) and version else url
    root = _build(type_name, _merge(chain))
    _graft(root, conformance)
    return Profile(label, type_name, root)


def _graft(rule: ElementRule, conformance: Conformance) -> None:
    """Elements whose type names an element of another profile (the profile-element extension:
    a library of Composition sections) take that element's rules as their own."""
    for entry in rule.data.get("type") or []:
        if not isinstance(entry, dict):
            continue
        profiles, extras = entry.get("profile"), entry.get("_profile")
        if not isinstance(profiles, list) or not isinstance(extras, list):
            continue
        for canonical, extra in zip(profiles, extras, strict=False):
            element_id = profile_element(extra)
            library = (
                compiled_profile(canonical, conformance) if isinstance(canonical, str) else None
            )
            source = _find(library.root, element_id) if library and element_id else None
            if source is not None:
                _adopt(rule, source)
    for child in rule.children.values():
        _graft(child, conformance)
        for slice_rule in child.slices:
            _graft(slice_rule, conformance)


def profile_element(extra: Any) -> str | None:
    extensions = extra.get("extension") if isinstance(extra, dict) else None
    for extension in extensions if isinstance(extensions, list) else []:
        if isinstance(extension, dict) and extension.get("url") == _PROFILE_ELEMENT:
            value = extension.get("valueString")
            return value if isinstance(value, str) else None
    return None


def _find(root: ElementRule, element_id: str) -> ElementRule | None:
    segments = split_id(".".join(_segment(s) for s in split_id(element_id)))
    if not segments or segments[0] != root.name:
        return None
    rule = root
    for segment in segments[1:]:
        name, _, slice_name = segment.partition(":")
        found = rule.children.get(name)
        if found is not None and slice_name:
            found = next((s for s in found.slices if s.slice_name == slice_name), None)
        if found is None:
            return None
        rule = found
    return rule


def _adopt(rule: ElementRule, source: ElementRule) -> None:
    """What ``source`` says and ``rule`` does not."""
    for key, value in source.data.items():
        if key not in ("id", "path", "sliceName", "min", "max", "type"):
            rule.data.setdefault(key, value)
    for name, child in source.children.items():
        if name in rule.children:
            _adopt(rule.children[name], child)
        else:
            rule.children[name] = copy.deepcopy(child)  # the library's own rule stays as it is


def _elements(definition: dict[str, Any]) -> list[Any]:
    for view in ("differential", "snapshot"):
        part = definition.get(view)
        elements = part.get("element") if isinstance(part, dict) else None
        if isinstance(elements, list) and elements:
            return elements
    return []


def profile_type(canonical: str, conformance: Conformance) -> str | None:
    """The resource or data type the profile ``canonical`` is for; None when it is unknown."""
    if is_base_type(canonical):
        return split_canonical(canonical)[0][len(CORE) :]
    profile = compiled_profile(canonical, conformance)
    return profile.type if profile is not None else None
