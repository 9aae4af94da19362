"""Generate ``schemas/fhir/reference-targets.json``: the resource types each R4 Reference names.

For each resource and data type of FHIR R4 4.0.1 (``profiles-resources.json`` and
``profiles-types.json``, specializations only), every element of type Reference and the resource
types of its ``targetProfile``s, keyed by the element's definition path as
:mod:`hie.validators.fhir_rules.tree` indexes it (a choice element by its typed name:
``Annotation.authorReference``). Elements that may reference any resource (target ``Resource``
or no target profile) are left out: absence means "any".

    python scripts/build_reference_targets.py
"""

from __future__ import annotations

import json
from pathlib import Path

from fhir_packages import core_structures

TARGET = Path(__file__).resolve().parent.parent / "schemas" / "fhir" / "reference-targets.json"
PROFILE_BASE = "http://hl7.org/fhir/StructureDefinition/"


def _typed_path(path: str, type_code: str) -> str:
    if path.endswith("[x]"):
        return path[:-3] + type_code[0].upper() + type_code[1:]
    return path


def main() -> None:
    targets: dict[str, list[str]] = {}
    for definition in core_structures():
        for element in definition["snapshot"]["element"]:
            path: str = element["path"]
            for type_ in element.get("type", []):
                if type_.get("code") != "Reference":
                    continue
                profiles = type_.get("targetProfile", [])
                types = sorted(
                    {p.removeprefix(PROFILE_BASE) for p in profiles if p.startswith(PROFILE_BASE)}
                )
                if not types or "Resource" in types:
                    continue
                targets[_typed_path(path, "Reference")] = types
    data = {
        "source": "HL7 FHIR R4 4.0.1 profiles-resources.json and profiles-types.json "
        "(hl7.org/fhir/R4), CC0: ElementDefinition.type.targetProfile of Reference elements",
        "version": "4.0.1",
        "targets": dict(sorted(targets.items())),
    }
    TARGET.write_text(
        json.dumps(data, ensure_ascii=False, separators=(",", ":"), indent=None) + "\n", "utf-8"
    )
    print(f"{TARGET.name}: {len(targets)} Reference elements, {TARGET.stat().st_size} bytes")


if __name__ == "__main__":
    main()
