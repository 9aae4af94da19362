"""Generate ``schemas/fhir/terminology.json.gz``: what HL7's own terminology decides offline.

HL7's validator decides codes of HL7's own complete code systems without a terminology server:
the R4 core's ``http://hl7.org/fhir/*`` code systems (version 4.0.1) and HL7 Terminology's
``http://terminology.hl7.org/CodeSystem/*`` (THO, which HL7's terminology server uses; R4's own
copies of those are from 2019 and lack later codes). This writes, compactly:

- ``code_systems``: url -> {"version", "codes": {code: [display, designation, ...]}} for every
  such code system whose content is complete (for THO's, the union of THO's codes and displays
  and R4's own 2019 copy, so that data written to R4 4.0.1 stays valid);
  and, where the code system has a hierarchy (nested concepts, ``parent``/``subsumedBy``
  properties), ``"parents": {code: [parent, ...]}``, which token search's ``:below`` and
  ``:above`` follow;
- ``value_sets``: url -> [[system, [codes] or null (every code of the system)], ...] for the
  value sets of the core's required and extensible bindings, when they can be expanded from
  those code systems alone (value sets of SNOMED CT, LOINC, UCUM, MIME types, languages... are
  left out: they need a terminology server);
- ``value_set_systems``: url -> [system, ...] for the other bound value sets that draw only on
  whole or filtered code systems (``http://hl7.org/fhir/ValueSet/jurisdiction``: ISO 3166 and
  UN M49): which codes of those systems they hold needs a terminology server, but a code of
  any other system (a UCUM unit) is decidably not in them;
- ``bindings``: element definition path (as ``hie.validators.fhir_rules.tree`` indexes it:
  ``Patient.gender``, ``Observation.valueCodeableConcept``) -> [value set url, strength] for
  every required and extensible binding of the core resources and data types.

    python scripts/build_terminology.py
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fhir_packages import core_structures, r4_definitions, terminology_pack

TARGET = Path(__file__).resolve().parent.parent / "schemas" / "fhir" / "terminology.json.gz"
HL7_SYSTEMS = ("http://hl7.org/fhir/", "http://terminology.hl7.org/CodeSystem/")
CODED_TYPES = ("code", "Coding", "CodeableConcept")

Concepts = dict[str, list[str]]


def _bundle(name: str) -> Iterator[dict[str, Any]]:
    data = json.loads((r4_definitions() / name).read_text("utf-8"))
    for entry in data["entry"]:
        yield entry["resource"]


def _tho() -> Iterator[dict[str, Any]]:
    for file in sorted(terminology_pack().glob("*.json")):
        if file.name.startswith(("CodeSystem-", "ValueSet-")):
            yield json.loads(file.read_text("utf-8"))


def _flatten(
    concepts: list[dict[str, Any]], parent: str | None, out: Concepts, parents: dict[str, set[str]]
) -> None:
    for concept in concepts:
        code = concept.get("code")
        if not isinstance(code, str):
            continue
        names = [concept.get("display") or ""]
        names += [d["value"] for d in concept.get("designation", []) if d.get("value")]
        out[code] = list(dict.fromkeys(names))
        if parent is not None:
            parents.setdefault(code, set()).add(parent)
        for prop in concept.get("property", []):
            if prop.get("code") in ("subsumedBy", "parent") and "valueCode" in prop:
                parents.setdefault(code, set()).add(prop["valueCode"])
        _flatten(concept.get("concept", []), code, out, parents)


def _descendants(code: str, parents: dict[str, set[str]]) -> set[str]:
    children: dict[str, set[str]] = {}
    for child, ups in parents.items():
        for up in ups:
            children.setdefault(up, set()).add(child)
    found: set[str] = set()
    todo = [code]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class Terminology:
    def __init__(self) -> None:
        self.systems: dict[str, tuple[str, Concepts]] = {}
        self.hierarchy: dict[str, dict[str, set[str]]] = {}
        self.value_sets: dict[str, dict[str, Any]] = {}

    def add_code_system(self, resource: dict[str, Any], version: str) -> None:
        url = resource.get("url", "")
        if resource.get("content") != "complete" or not url.startswith(HL7_SYSTEMS):
            return
        concepts: Concepts = {}
        parents: dict[str, set[str]] = {}
        _flatten(resource.get("concept", []), None, concepts, parents)
        # THO comes after R4's copy: codes and displays R4 had stay valid (the R4 examples use
        # them, and data written to R4 4.0.1 may), THO's current ones are added.
        _, earlier = self.systems.get(url, ("", {}))
        for code, names in earlier.items():
            concepts[code] = list(dict.fromkeys(concepts.get(code, []) + names))
        for code, ups in self.hierarchy.get(url, {}).items():
            parents.setdefault(code, set()).update(ups)
        self.systems[url] = (version, concepts)
        self.hierarchy[url] = parents

    def expand(self, url: str, seen: frozenset[str] = frozenset()) -> dict[str, set[str]] | None:
        """system -> codes (an empty set: every code of the system), None if not decidable."""
        vs = self.value_sets.get(url.partition("|")[0])
        if vs is None or url in seen or "compose" not in vs:
            return None
        result: dict[str, set[str]] = {}
        for include in vs["compose"].get("include", []):
            part = self._include(include, seen | {url})
            if part is None:
                return None
            for system, codes in part.items():
                if system in result and (not result[system] or not codes):
                    result[system] = set()
                else:
                    result.setdefault(system, set()).update(codes)
        for exclude in vs["compose"].get("exclude", []):
            system = exclude.get("system")
            if not exclude.get("concept") or exclude.get("filter") or system not in result:
                return None
            excluded = {c["code"] for c in exclude["concept"]}
            if not result[system]:
                result[system] = set(self.systems[system][1])
            result[system] -= excluded
        return result

    def _include(self, include: dict[str, Any], seen: frozenset[str]) -> dict[str, set[str]] | None:
        if include.get("valueSet"):
            if include.get("system") or len(include["valueSet"]) != 1:
                return None
            return self.expand(include["valueSet"][0], seen)
        system = include.get("system")
        if system not in self.systems:
            return None
        if include.get("concept"):
            return {system: {c["code"] for c in include["concept"]}}
        codes: set[str] | None = None
        for filter_ in include.get("filter", []):
            matched = self._filter(system, filter_)
            if matched is None:
                return None
            codes = matched if codes is None else codes & matched
        if codes is None:
            return {system: set()}
        return {system: codes}

    def _filter(self, system: str, filter_: dict[str, Any]) -> set[str] | None:
        if filter_.get("property") != "concept":
            return None
        value, op = filter_.get("value", ""), filter_.get("op")
        below = _descendants(value, self.hierarchy[system])
        if op == "is-a":
            return below | {value}
        if op == "descendent-of":
            return below
        return None


def _bindings() -> dict[str, tuple[str, str]]:
    bindings: dict[str, tuple[str, str]] = {}
    for sd in core_structures():
        for element in sd["snapshot"]["element"]:
            binding = element.get("binding") or {}
            strength, value_set = binding.get("strength"), binding.get("valueSet")
            if strength not in ("required", "extensible") or not value_set:
                continue
            if not element["path"].startswith(sd["type"] + "."):
                continue  # inherited (Resource.language, ...): bound where defined
            types = [t["code"] for t in element.get("type", []) if t["code"] in CODED_TYPES]
            path = element["path"]
            if path.endswith("[x]"):
                stem = path[:-3]
                for type_code in types:
                    bindings[stem + type_code[0].upper() + type_code[1:]] = (
                        value_set.partition("|")[0],
                        strength,
                    )
            elif types:
                bindings[path] = (value_set.partition("|")[0], strength)
    return bindings


def _code_system(version: str, concepts: Concepts, parents: dict[str, set[str]]) -> dict[str, Any]:
    entry: dict[str, Any] = {"version": version, "codes": concepts}
    known = {
        code: sorted(ups & concepts.keys()) for code, ups in parents.items() if code in concepts
    }
    known = {code: ups for code, ups in sorted(known.items()) if ups}
    if known:
        entry["parents"] = known
    return entry


def main() -> None:
    terminology = Terminology()
    for name in ("valuesets.json", "v2-tables.json", "v3-codesystems.json"):
        for resource in _bundle(name):
            if resource["resourceType"] == "CodeSystem":
                terminology.add_code_system(resource, resource.get("version", "4.0.1"))
            elif resource["resourceType"] == "ValueSet":
                terminology.value_sets[resource["url"]] = resource
    for resource in _tho():  # THO replaces R4's 2019 copies of terminology.hl7.org
        if resource["resourceType"] == "CodeSystem":
            terminology.add_code_system(resource, resource.get("version", ""))
        elif resource["resourceType"] == "ValueSet" and resource["url"].startswith(
            "http://terminology.hl7.org/"
        ):
            terminology.value_sets[resource["url"]] = resource
    bindings = _bindings()
    value_sets: dict[str, list[list[Any]]] = {}
    for url, _ in bindings.values():
        expansion = terminology.expand(url)
        if expansion is not None:
            value_sets[url] = [
                [system, sorted(codes) if codes else None]
                for system, codes in sorted(expansion.items())
            ]
    value_set_systems: dict[str, list[str]] = {}
    for url, _ in bindings.values():
        vs = terminology.value_sets.get(url)
        includes = (vs or {}).get("compose", {}).get("include", [])
        if url in value_sets or not includes:
            continue
        if all(i.get("system") and not i.get("valueSet") for i in includes):
            value_set_systems[url] = sorted({i["system"] for i in includes})
    data = {
        "source": "HL7 FHIR R4 4.0.1 (valuesets.json, v2-tables.json, v3-codesystems.json, "
        "profiles-resources.json, profiles-types.json) and HL7 Terminology (THO) "
        "hl7.terminology.r4 7.0.1, CC0; generated by scripts/build_terminology.py",
        "code_systems": {
            url: _code_system(version, concepts, terminology.hierarchy.get(url, {}))
            for url, (version, concepts) in sorted(terminology.systems.items())
        },
        "value_sets": value_sets,
        "value_set_systems": dict(sorted(value_set_systems.items())),
        "bindings": {path: list(b) for path, b in sorted(bindings.items())},
    }
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    TARGET.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
    print(
        f"{TARGET.name}: {len(terminology.systems)} code systems, {len(value_sets)} "
        f"(+{len(value_set_systems)} by system only) of "
        f"{len({u for u, _ in bindings.values()})} bound value sets, {len(bindings)} bindings, "
        f"{len(text)} bytes, {TARGET.stat().st_size} gzipped"
    )


if __name__ == "__main__":
    main()
