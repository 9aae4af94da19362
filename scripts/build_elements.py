"""Generate ``schemas/fhir/repeating-elements.json`` (the R4 elements that repeat, max > 1) and
``schemas/fhir/element-order.json`` (the order of each type's and backbone element's children).

fhirpathpy's R4 model, which :mod:`hie.validators.fhir_rules.elements` reads the element tree
from, has names and types but no cardinality and no order; FHIR XML needs both: a repeating
element is a JSON array even when the XML has it once, and XML elements must appear in the order
the definitions give. Both come from the resources and data types of FHIR R4 4.0.1
(``profiles-resources.json`` and ``profiles-types.json``, specializations only: profiles such as
SimpleQuantity add no elements), grouped by the path of the parent (a type name or a backbone
element path, as in ``elements.py``).

Repeating elements: those a type defines itself whose max is not 1. Inherited elements are listed
once, where they are defined (``DomainResource.contained``), and ``extension``/
``modifierExtension`` are left out: they repeat everywhere.

Order: every child of each parent in snapshot order, inherited ones first (``id``, ``meta``, ...,
``modifierExtension``), choice elements by their base name (``value`` for ``value[x]``).

Medplum's copy of the bundles adds a few elements of its own and of R5 (``Meta.compartment``,
``DeviceDefinition.classification``); only elements of R4's own element tree (fhirpathpy's R4
model) are kept. Where its snapshot lacks R4 elements (it has R5's
``EvidenceVariable.characteristic``), the order and the repeating elements come from HL7's R4
JSON schema (``fhir.schema.json``, whose properties follow the definitions' order: it agrees with
the snapshots everywhere else).

    python scripts/build_elements.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fhir_packages import core_structures, r4_definitions

from hie.validators.fhir_rules.elements import children

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas" / "fhir"
REPEATING_TARGET = SCHEMAS / "repeating-elements.json"
ORDER_TARGET = SCHEMAS / "element-order.json"
ALWAYS_REPEATING = ("extension", "modifierExtension")
SOURCE = "HL7 FHIR R4 4.0.1 profiles-resources.json and profiles-types.json (hl7.org/fhir/R4), CC0"


def r4_name(parent: str, name: str) -> str | None:
    """``name`` as R4's own tree has it under ``parent`` (a choice by its base name, ``value``
    for ``valueString``), or None when R4 has no such element."""
    known = children(parent)
    if name in known:
        return known[name].choice or name
    return name if any(element.choice == name for element in known.values()) else None


def schema_children(path: str) -> dict[str, bool]:
    """The children of ``path`` (a type or backbone path) in the order of R4's JSON schema, each
    with whether it repeats (an array); backbone definitions are found through the ``$ref`` of
    their parent's property."""
    definitions: dict[str, Any] = json.loads(
        (r4_definitions() / "fhir.schema.json").read_text("utf-8")
    )["definitions"]
    root, *steps = path.split(".")
    definition = definitions[root]
    for step in steps:
        prop = definition["properties"][step]
        reference: str = prop.get("$ref") or prop["items"]["$ref"]
        definition = definitions[reference.rpartition("/")[2]]
    found: dict[str, bool] = {}
    for prop, schema in definition["properties"].items():
        name = r4_name(path, prop)
        if name is not None and name not in found:
            found[name] = schema.get("type") == "array"
    return found


def write(target: Path, data: dict[str, Any]) -> None:
    target.write_text(
        json.dumps(data, ensure_ascii=False, separators=(",", ":"), indent=None) + "\n", "utf-8"
    )


def main() -> None:
    repeating: dict[str, set[str]] = {}
    order: dict[str, list[str]] = {}
    for definition in core_structures():
        for element in definition["snapshot"]["element"]:
            path: str = element["path"]
            if "." not in path:
                continue  # the type itself
            parent, _, child = path.rpartition(".")
            name = r4_name(parent, child.removesuffix("[x]"))
            if name is None:
                continue  # not an R4 element
            if parent[0].isupper() and name not in order.setdefault(parent, []):
                order[parent].append(name)  # (a primitive's children are not elements in XML)
            if element["base"]["path"] != path or element["max"] == "1":
                continue  # an inherited element, or a single one
            if child in ALWAYS_REPEATING:
                continue
            if child.endswith("[x]"):
                raise SystemExit(f"{path}: a repeating choice element is not expected in R4")
            repeating.setdefault(parent, set()).add(child)
    for parent, names in order.items():
        known = {element.choice or element.name for element in children(parent).values()}
        if known - set(names):
            in_schema = schema_children(parent)
            if known != set(in_schema):
                raise SystemExit(f"{parent}: no order for {sorted(known - set(names))}")
            order[parent] = list(in_schema)
            repeating[parent] = {
                name for name, many in in_schema.items() if many and name not in ALWAYS_REPEATING
            }
            print(f"{parent}: from R4's JSON schema (the snapshot is not R4's)")
    write(
        REPEATING_TARGET,
        {
            "source": SOURCE,
            "version": "4.0.1",
            "always": list(ALWAYS_REPEATING),
            "repeating": {parent: sorted(names) for parent, names in sorted(repeating.items())},
        },
    )
    write(
        ORDER_TARGET,
        {"source": SOURCE, "version": "4.0.1", "order": dict(sorted(order.items()))},
    )
    count = sum(len(names) for names in repeating.values())
    print(f"{REPEATING_TARGET.name}: {count} repeating elements, ", end="")
    print(f"{REPEATING_TARGET.stat().st_size} bytes")
    print(f"{ORDER_TARGET.name}: {len(order)} parents, {ORDER_TARGET.stat().st_size} bytes")


if __name__ == "__main__":
    main()
