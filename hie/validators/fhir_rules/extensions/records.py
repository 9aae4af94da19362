"""Compiling an extension's StructureDefinition into its record (the form of
``schemas/fhir/extensions.json``): contexts, invariants, modifier, max and shape."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

_CONTEXT_TYPES = {"element": "e", "extension": "x", "fhirpath": "f"}
_CORE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/Extension"


def _type_codes(element: dict[str, Any]) -> list[str]:
    types = element.get("type")
    if not isinstance(types, list):
        return []
    return [t["code"] for t in types if isinstance(t, dict) and isinstance(t.get("code"), str)]


def _segments(element: dict[str, Any], slices: list[str]) -> list[str] | None:
    """The element's id as segments (``extension:species``), built from its path and the
    slices met so far when it has no id (old differentials)."""
    element_id = element.get("id")
    if isinstance(element_id, str) and element_id.startswith("Extension"):
        return element_id.split(".")
    path = element.get("path")
    if not isinstance(path, str) or not path.startswith("Extension"):
        return None
    parts = path.split(".")
    depth = parts.count("extension")
    slice_name = element.get("sliceName")
    if parts[-1] == "extension" and isinstance(slice_name, str):
        del slices[depth - 1 :]
        slices.extend([""] * (depth - 1 - len(slices)))
        slices.append(slice_name)
    segments, seen = [], 0
    for part in parts:
        if part == "extension" and seen < len(slices) and slices[seen]:
            part = f"extension:{slices[seen]}"
        if part == "extension" or part.startswith("extension:"):
            seen += 1
        segments.append(part)
    return segments


def _shapes(elements: Iterable[Any]) -> dict[tuple[str, ...], dict[str, Any]]:
    """What each (sub-)extension of a definition says, by its slice names from the root."""
    nodes: dict[tuple[str, ...], dict[str, Any]] = {(): {}}
    slices: list[str] = []
    for element in elements:
        if not isinstance(element, dict):
            continue
        segments = _segments(element, slices)
        if not segments:
            continue
        key: list[str] = []
        unsliced = False
        for segment in segments[1:-1]:
            name, _, slice_name = segment.partition(":")
            if name != "extension":
                unsliced = True  # inside a value: not the extension's own shape
                break
            if not slice_name:
                unsliced = True
                break
            key.append(slice_name)
        if unsliced:
            continue
        last, _, slice_name = segments[-1].partition(":")
        facts = nodes.setdefault(tuple(key), {})
        maximum = element.get("max")
        if len(segments) == 1:
            facts["root"] = element
        elif last == "extension" and slice_name:
            nodes.setdefault((*key, slice_name), {})["root"] = element
        elif last == "extension":
            if maximum == "0":
                facts["noSubs"] = True
        elif last == "url":
            fixed = element.get("fixedUri", element.get("fixedString"))
            if isinstance(fixed, str):
                facts["url"] = fixed
        elif last.startswith("value"):
            if maximum == "0":
                facts["value"] = []
            else:
                codes = _type_codes(element)
                if not codes and last != "value[x]":
                    codes = [last[5:]]
                if codes:
                    known = facts.get("value")
                    facts["value"] = sorted(set(codes) | set(known or []))
    return nodes


def _record(nodes: dict[tuple[str, ...], dict[str, Any]], key: tuple[str, ...]) -> dict[str, Any]:
    facts = nodes.get(key, {})
    record: dict[str, Any] = {}
    root = facts.get("root")
    if key and isinstance(root, dict):
        if isinstance(root.get("min"), int):
            record["min"] = root["min"]
        if isinstance(root.get("max"), str):
            record["max"] = root["max"]
    if "value" in facts:
        record["value"] = facts["value"]
    if facts.get("noSubs"):
        record["noSubs"] = True
    subs = {}
    for sub in nodes:
        if len(sub) == len(key) + 1 and sub[: len(key)] == key:
            url = nodes[sub].get("url", sub[-1])
            subs[url] = _record(nodes, sub)
    if subs:
        record["subs"] = subs
    return record


def compile_definition(
    definition: dict[str, Any], base: Callable[[str], dict[str, Any] | None] | None = None
) -> dict[str, Any] | None:
    """The record of an extension's StructureDefinition (snapshot, else differential), None when
    it is not one. ``base`` finds the record of the extension it derives from, if not Extension."""
    if not isinstance(definition, dict) or definition.get("type") != "Extension":
        return None
    elements: Any = None
    for part in ("snapshot", "differential"):
        holder = definition.get(part)
        if isinstance(holder, dict) and isinstance(holder.get("element"), list):
            elements = holder["element"]
            break
    nodes = _shapes(elements or [])
    record: dict[str, Any] = {}
    parent = definition.get("baseDefinition")
    if base is not None and isinstance(parent, str) and parent != _CORE_EXTENSION:
        inherited = base(parent)
        if inherited is not None:
            record.update(inherited)
    record.update(_record(nodes, ()))
    contexts = []
    for context in definition.get("context") or []:
        if isinstance(context, dict) and isinstance(context.get("expression"), str):
            kind = _CONTEXT_TYPES.get(str(context.get("type")), "e")
            contexts.append(f"{kind}:{context['expression']}")
    if contexts:
        record["context"] = contexts
    invariants = [i for i in definition.get("contextInvariant") or [] if isinstance(i, str)]
    if invariants:
        record["invariants"] = invariants
    root = nodes[()].get("root")
    if isinstance(root, dict):
        if root.get("isModifier") is True:
            record["modifier"] = True
        if root.get("max") not in (None, "*"):
            record["max"] = root["max"]
    return record
