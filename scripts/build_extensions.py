"""Generate ``schemas/fhir/extensions.json``: what the extension checks need of each definition.

For every extension definition of FHIR R4 4.0.1 (``extension-definitions.json`` of the R4
definitions) and of HL7's extensions pack (``StructureDefinition-*.json`` of type Extension, which
replaces the R4 definition of the same URL, as in HL7's validator): the contexts it may be used
in, its context invariants, whether it is a modifier extension, its allowed value types or the
sub-extensions it defines (where R4 and the pack both define one, the contexts of both
are kept; compiled by ``hie.validators.fhir_rules.extensions.compile_definition``,
the same code that reads definitions loaded with ``hie validate --ig``).

For cross-version extensions (``http://hl7.org/fhir/5.0/StructureDefinition/extension-X.y``) it
records which R4 elements are modifiers (an element of another version with the same path, or
with a name that is a modifier wherever R4 uses it, is taken to be one too).

    python scripts/build_extensions.py
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from fhir_packages import core_structures, extensions_pack, r4_definitions

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hie.validators.fhir_rules.extensions import compile_definition  # noqa: E402

TARGET = ROOT / "schemas" / "fhir" / "extensions.json"
# Element names that are modifiers in every R4 resource that has them, at least this often: an
# element of that name in another FHIR version is taken to be a modifier too.
NAME_EVIDENCE = 3
# Modifier elements of other versions with no R4 counterpart (from their published definitions:
# Patient.animal is "?!" in DSTU2 and STU3; R4 turned it into the patient-animal extension).
OTHER_VERSION_MODIFIERS = {"1.0": ["Patient.animal"], "3.0": ["Patient.animal"]}


def _compiled(folder_items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    for resource in folder_items:
        if resource.get("type") == "Extension":
            compiled = compile_definition(resource)
            if compiled is not None:
                found[resource["url"]] = compiled
    return found


def _extensions() -> dict[str, dict[str, Any]]:
    """Records by URL: the pack's over R4's. Where both define an extension, the contexts of
    both are kept: R4 data written against R4's own definitions stays valid."""
    bundle = json.loads((r4_definitions() / "extension-definitions.json").read_text("utf-8"))
    r4 = _compiled([entry["resource"] for entry in bundle["entry"]])
    files = sorted(extensions_pack().glob("StructureDefinition-*.json"))
    pack = _compiled([json.loads(file.read_text("utf-8")) for file in files])
    merged = {**r4, **pack}
    for url, record in pack.items():
        if url in r4 and "context" in record:
            extra = [c for c in r4[url].get("context", []) if c not in record["context"]]
            record["context"] = record["context"] + extra
    return dict(sorted(merged.items()))


def _modifiers() -> tuple[list[str], list[str]]:
    """R4's modifier element paths (but implicitRules, covered by name) and the element names
    that are modifiers wherever R4 has them."""
    paths: set[str] = set()
    by_name: dict[str, list[bool]] = defaultdict(list)
    for sd in core_structures():
        for element in sd.get("snapshot", {}).get("element", []):
            path = element["path"]
            leaf = path.rsplit(".", 1)[-1]
            if path.split(".")[0] != sd["type"] or leaf == "modifierExtension":
                continue
            by_name[leaf].append(bool(element.get("isModifier")))
            if element.get("isModifier"):
                paths.add(path.removesuffix("[x]"))
    names = sorted(n for n, flags in by_name.items() if all(flags) and len(flags) >= NAME_EVIDENCE)
    return sorted(p for p in paths if p.rsplit(".", 1)[-1] not in names), names


def main() -> None:
    extensions = _extensions()
    paths, names = _modifiers()
    data = {
        "source": "HL7 FHIR R4 4.0.1 extension-definitions.json and profiles (hl7.org/fhir/R4), "
        "HL7 extensions pack hl7.fhir.uv.extensions.r4 5.3.0-ballot-tc1; CC0",
        "extensions": extensions,
        "xver": {
            "modifierPaths": paths,
            "modifierNames": names,
            "otherModifiers": OTHER_VERSION_MODIFIERS,
        },
    }
    TARGET.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", "utf-8")
    print(f"{TARGET.name}: {len(extensions)} extensions, {TARGET.stat().st_size} bytes")


if __name__ == "__main__":
    main()
