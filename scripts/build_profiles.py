"""Generate ``schemas/fhir/profiles.json``: R4's own profiles, reduced to what is checked.

HL7's validator knows the profiles the R4 specification itself publishes (``profiles-others.json``:
the vital signs profiles bodytemp, bp, ..., shareablevalueset, lipidprofile, ...): a resource
that claims one in ``meta.profile`` is checked against it, and an Observation with a vital sign
code against its vital signs profile. This writes, for ``hie/validators/fhir_rules/profiles/``:

- ``profiles``: url -> {"type", "baseDefinition", "elements"}: each differential element with
  only the properties the checks read (id, path, sliceName, min, max, slicing, type codes and
  profiles, fixed[x], pattern[x], min/maxValue[x], maxLength, required bindings, constraints);
- ``valueSets``: url -> {system: [codes]} for R4 value sets that list their codes explicitly
  (``compose.include.concept`` only, no filters, at most 300 codes): UCUM unit sets such as
  ucum-vitals-common or age-units, which a profile's required binding may name.

    python scripts/build_profiles.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fhir_packages import r4_definitions

TARGET = Path(__file__).resolve().parent.parent / "schemas" / "fhir" / "profiles.json"
_PREFIXES = ("fixed", "pattern", "minValue", "maxValue")
_MAX_CODES = 300
_VITAL_SIGNS = "http://hl7.org/fhir/StructureDefinition/vitalsigns"


def _element(element: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key in ("id", "path", "sliceName", "min", "max", "maxLength"):
        if key in element:
            kept[key] = element[key]
    for key, value in element.items():
        if key.startswith(_PREFIXES):
            kept[key] = value
    if "slicing" in element:
        slicing = element["slicing"]
        kept["slicing"] = {k: slicing[k] for k in ("discriminator", "rules") if k in slicing}
    if "type" in element:
        kept["type"] = [{k: t[k] for k in ("code", "profile") if k in t} for t in element["type"]]
    binding = element.get("binding")
    if isinstance(binding, dict) and binding.get("strength") == "required":
        kept["binding"] = {"strength": "required", "valueSet": binding.get("valueSet")}
    constraints = [
        {k: c[k] for k in ("key", "severity", "human", "expression")}
        for c in element.get("constraint", [])
        if "expression" in c
    ]
    if constraints:
        kept["constraint"] = constraints
    return kept


def _profiles() -> dict[str, Any]:
    bundle = json.loads((r4_definitions() / "profiles-others.json").read_text("utf-8"))
    profiles = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource.get("resourceType") != "StructureDefinition":
            continue
        if resource.get("derivation") != "constraint" or resource.get("kind") != "resource":
            continue
        elements = [_element(e) for e in resource["differential"]["element"]]
        if resource["url"] == _VITAL_SIGNS or resource["baseDefinition"] == _VITAL_SIGNS:
            # HL7's validator loads these with the component units binding relaxed to
            # extensible (its PackageHacker): components measure more than vital sign units.
            for element in elements:
                if element.get("path") == "Observation.component.value[x]":
                    element.pop("binding", None)
        profiles[resource["url"]] = {
            "type": resource["type"],
            "version": resource.get("version"),
            "baseDefinition": resource["baseDefinition"],
            "elements": elements,
        }
    return profiles


def _value_sets() -> dict[str, dict[str, list[str]]]:
    bundle = json.loads((r4_definitions() / "valuesets.json").read_text("utf-8"))
    result = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource.get("resourceType") != "ValueSet":
            continue
        compose = resource.get("compose") or {}
        includes = compose.get("include") or []
        if not includes or compose.get("exclude"):
            continue
        if any("concept" not in i or "filter" in i or "valueSet" in i for i in includes):
            continue
        codes: dict[str, list[str]] = {}
        for include in includes:
            codes.setdefault(include["system"], []).extend(c["code"] for c in include["concept"])
        if sum(len(c) for c in codes.values()) <= _MAX_CODES:
            result[resource["url"]] = codes
    return result


def main() -> None:
    profiles = _profiles()
    value_sets = _value_sets()
    data = {
        "source": "HL7 FHIR R4 4.0.1 profiles-others.json, valuesets.json (hl7.org/fhir/R4), CC0",
        "version": "4.0.1",
        "profiles": dict(sorted(profiles.items())),
        "valueSets": dict(sorted(value_sets.items())),
    }
    TARGET.write_text(
        json.dumps(data, ensure_ascii=False, separators=(",", ":"), indent=None) + "\n", "utf-8"
    )
    print(
        f"{TARGET.name}: {len(profiles)} profiles, {len(value_sets)} value sets, "
        f"{TARGET.stat().st_size} bytes"
    )


if __name__ == "__main__":
    main()
