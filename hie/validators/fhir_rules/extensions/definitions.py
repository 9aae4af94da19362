"""Where an extension's record comes from: the loaded conformance resources, R4 and HL7's
extensions pack (``schemas/fhir/extensions.json``), or a cross-version URL."""

from __future__ import annotations

import json
import re
from functools import cache, lru_cache
from typing import Any

from fhirpathpy.models import models

from hie.resources import schemas_dir
from hie.validators.conformance import Context
from hie.validators.fhir_rules.extensions.records import compile_definition

_XVER = re.compile(r"http://hl7\.org/fhir/(1\.0|3\.0|4\.3|5\.0)/StructureDefinition/extension-(.+)")
_XVER_MODELS = {"1.0": "dstu2", "3.0": "stu3", "4.3": "r4", "5.0": "r5"}


@cache
def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((schemas_dir() / "fhir" / "extensions.json").read_text())
    return data


def _core(url: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = _data()["extensions"].get(url)
    return found


# Bounded: the URLs come from the resources validated.
@lru_cache(maxsize=1024)
def _xver(url: str) -> dict[str, Any] | None:
    """The record HL7's validator derives for a cross-version extension URL, as far as FHIR
    R4 data and fhirpathpy's element trees of the other versions tell: which element it stands
    for, whether that is a modifier, its sub-extensions (the element's children) or value types.
    Contexts are not checked (HL7 only warns about them)."""
    match = _XVER.fullmatch(url)
    if match is None:
        return None
    version, path = match.groups()
    record: dict[str, Any] = {"xver": True}
    xver = _data()["xver"]
    leaf = path.rsplit(".", 1)[-1]
    if (
        path in xver["modifierPaths"]
        or leaf in xver["modifierNames"]
        or path in xver["otherModifiers"].get(version, [])
    ):
        record["modifier"] = True
    model: dict[str, Any] = models[_XVER_MODELS[version]]
    if version == "4.3":
        return record  # R4B's own tree is not at hand: no shape to check
    below = _children(model, path)
    if below:
        record["value"] = []
        record["subs"] = {name: {} for name in below}
    return record


def _children(model: dict[str, Any], path: str) -> set[str]:
    """The names of an element's children in a version's element tree (choices without type)."""
    names = set()
    prefix = f"{path}."
    for child in model["path2Type"]:
        if child.startswith(prefix) and "." not in child[len(prefix) :]:
            names.add(child[len(prefix) :])
    for choice in model["choiceTypePaths"]:
        if choice.startswith(prefix) and "." not in choice[len(prefix) :]:
            base = choice[len(prefix) :]
            for type_name in model["choiceTypePaths"][choice]:
                names.discard(base + type_name[0].upper() + type_name[1:])
            names.add(base)
    return names - {"id", "extension", "modifierExtension"}


class Definitions:
    """The records of one validation: loaded definitions first, then R4's and the pack's."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.compiled: dict[str, dict[str, Any] | None] = {}

    def find(self, url: str) -> dict[str, Any] | None:
        if url in self.compiled:
            return self.compiled[url]
        self.compiled[url] = None  # a definition deriving from itself ends here
        record: dict[str, Any] | None = None
        loaded = self.context.conformance.resolve(url, "StructureDefinition")
        if loaded is not None and loaded.get("type") == "Extension":
            record = compile_definition(loaded, self.find)
        if record is None:
            record = _core(url) or _xver(url)
        self.compiled[url] = record
        return record
