"""Generate ``schemas/fhir/repeating-elements.json``: the R4 elements that repeat (max > 1).

fhirpathpy's R4 model, which :mod:`hie.validators.fhir_rules.elements` reads the element tree
from, has names and types but no cardinality; FHIR XML needs it, because a repeating element is a
JSON array even when the XML has it once. For each resource and data type of FHIR R4 4.0.1
(``profiles-resources.json`` and ``profiles-types.json``, specializations only: profiles such as
SimpleQuantity add no elements), the elements it defines itself whose max is not 1, grouped by the
path of their parent (a type name or a backbone element path, as in ``elements.py``). Inherited
elements are listed once, where they are defined (``DomainResource.contained``), and
``extension``/``modifierExtension`` are left out: they repeat everywhere. Medplum's copy of the
bundles adds a few elements of its own and of R5 (``Meta.compartment``, ``DeviceDefinition.
classification``); only elements of R4's own element tree (fhirpathpy's R4 model) are kept.

    python scripts/build_elements.py
"""

from __future__ import annotations

import json
from pathlib import Path

from fhir_packages import core_structures

from hie.validators.fhir_rules.elements import children

TARGET = Path(__file__).resolve().parent.parent / "schemas" / "fhir" / "repeating-elements.json"
ALWAYS_REPEATING = ("extension", "modifierExtension")


def main() -> None:
    repeating: dict[str, set[str]] = {}
    for definition in core_structures():
        for element in definition["snapshot"]["element"]:
            path: str = element["path"]
            if "." not in path or element["base"]["path"] != path or element["max"] == "1":
                continue  # the type itself, an inherited element, or a single one
            parent, _, child = path.rpartition(".")
            if child in ALWAYS_REPEATING:
                continue
            if child.endswith("[x]"):
                raise SystemExit(f"{path}: a repeating choice element is not expected in R4")
            if child not in children(parent):
                continue  # not an R4 element
            repeating.setdefault(parent, set()).add(child)
    data = {
        "source": "HL7 FHIR R4 4.0.1 profiles-resources.json and profiles-types.json "
        "(hl7.org/fhir/R4), CC0",
        "version": "4.0.1",
        "always": list(ALWAYS_REPEATING),
        "repeating": {parent: sorted(names) for parent, names in sorted(repeating.items())},
    }
    TARGET.write_text(
        json.dumps(data, ensure_ascii=False, separators=(",", ":"), indent=None) + "\n", "utf-8"
    )
    count = sum(len(names) for names in repeating.values())
    print(f"{TARGET.name}: {count} repeating elements, {TARGET.stat().st_size} bytes")


if __name__ == "__main__":
    main()
