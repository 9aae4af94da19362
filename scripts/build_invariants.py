"""Generate ``schemas/fhir/invariants.json``: the error-severity constraints of FHIR R4 4.0.1.

Every constraint an R4 resource or data type defines (the ``differential`` of each
StructureDefinition in ``profiles-resources.json`` and ``profiles-types.json``) whose severity is
``error`` is written with its key, context (the element path it applies to), human text and
FHIRPath expression, verbatim. Warnings (best-practice advice such as dom-6) are left out: they
never change a verdict and would cost an evaluation each.

The entries already in the file that hie curates (a ``fix`` of its own, an ``engine`` of
``python``, a ``guard``) are kept as they are. For the others:

- ``engine`` is ``fhirpath`` when fhirpathpy compiles the expression, except for the keys in
  ``EXCLUDED``, which fhirpathpy cannot evaluate faithfully or which hie checks elsewhere;
- ``CORRECTED`` replaces an expression that contradicts its own human text, or that fhirpathpy
  reads differently from HL7's FHIRPath engine, with what HL7's validator evaluates;
- ``guard`` is derived when the expression is ``<element>... implies ...`` with an antecedent that
  is false when the element is absent, so the expression is only evaluated where it can fail.

    python scripts/build_invariants.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from fhir_packages import core_structures

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "schemas" / "fhir" / "invariants.json"

# Why each is not evaluated with fhirpathpy (the value is written into the file as "excluded").
EXCLUDED = {
    "ele-1": "checked during the walk (hie.validators.fhir_rules.tree)",
    # FHIR XML carries element ids as attributes, which the XML reader (fhir.resources) drops:
    # these would reject valid StructureDefinitions sent as XML.
    "sdf-14": "element ids are lost when reading XML",
    "sdf-16": "element ids are lost when reading XML",
    "sdf-17": "element ids are lost when reading XML",
    # R5 and HL7's validator also allow a resource type (type.memberOf(all-resource-types)),
    # which fhirpathpy cannot evaluate (no memberOf).
    "opd-3": "R4's expression rejects what HL7's validator accepts (resource types)",
}
# matches() is a whole-string match in HL7's engine, a search in fhirpathpy: anchor these.
ANCHORED = {"eld-19"}
# Written by hand in hie/validators/fhir_rules/invariants.py (engine "python").
HAND_WRITTEN = {
    "ext-1": "every extension has it: a FHIRPath evaluation each would be slow",
}

CORRECTED = {
    # R4 published "> 2"; the human text, R5 and HL7's validator say more than one.
    "que-12": "enableWhen.count() > 1 implies enableBehavior.exists()",
    # HL7's engine takes a FHIR boolean to be a Boolean; fhirpathpy needs the FHIR type name.
    "que-7": "operator = 'exists' implies (answer is boolean)",
}

# An antecedent that is false (or empty) when its first element is absent.
_GUARDABLE = re.compile(
    r"^\(?(?P<name>[a-z][A-Za-z0-9]*)"
    r"(?:\.[a-z][A-Za-z0-9]*)*"
    r"(?:\.(?:exists\(\)|hasValue\(\)|count\(\) ?> ?\d+)|"
    r" ?= ?'[^']*'| ?= ?(?:true|false)| is [A-Za-z]+)?\)? implies "
)


def _guard(context: str, expression: str) -> str | None:
    from hie.validators.fhir_rules.elements import children

    match = _GUARDABLE.match(expression)
    if match is None or expression.count(" implies ") != 1:
        return None
    name = match["name"]
    element = children(context).get(name)
    # A choice element's JSON key carries its type (probabilityDecimal): no single guard key.
    if element is None or element.choice:
        return None
    return name


def _compiles(expression: str) -> bool:
    from fhirpathpy import compile as compile_fhirpath
    from fhirpathpy.models import models

    try:
        compile_fhirpath(expression, models["r4"])
    except Exception:
        return False
    return True


def _constraints() -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for definition in core_structures():
        for element in definition.get("differential", {}).get("element", []):
            for constraint in element.get("constraint", []):
                source = constraint.get("source")
                if source and source != definition["url"]:
                    continue  # inherited (ele-1 repeated on some elements)
                if constraint.get("severity") != "error" or "expression" not in constraint:
                    continue
                found.setdefault(
                    constraint["key"],
                    {
                        "key": constraint["key"],
                        "context": element["path"],
                        "severity": "error",
                        "human": constraint["human"],
                        "expression": constraint["expression"],
                    },
                )
    return list(found.values())


def main() -> None:
    sys.path.insert(0, str(ROOT))
    current = json.loads(TARGET.read_text("utf-8"))
    curated = {item["key"]: item for item in current["invariants"] if item.get("curated")}
    result = []
    for constraint in _constraints():
        key = constraint["key"]
        if key in curated:
            result.append(curated.pop(key))
            continue
        expression = CORRECTED.get(key, constraint["expression"])
        if key in ANCHORED:
            expression = re.sub(r"matches\('(.*)'\)$", r"matches('^(?:\1)$')", expression)
        item = {**constraint, "expression": expression}
        if expression != constraint["expression"]:
            item["published"] = constraint["expression"]
        if key in HAND_WRITTEN:
            item["engine"] = "python"
            item["excluded"] = HAND_WRITTEN[key]
        elif key in EXCLUDED:
            item["engine"] = "none"
            item["excluded"] = EXCLUDED[key]
        elif not _compiles(expression):
            item["engine"] = "none"
            item["excluded"] = "fhirpathpy cannot compile the expression"
        else:
            item["engine"] = "fhirpath"
            guard = _guard(constraint["context"], expression)
            if guard is not None:
                item["guard"] = guard
        context, human = constraint["context"], constraint["human"]
        item["fix"] = f"Correct the {context} so that this holds: {human}"
        result.append(item)
    result.extend(curated.values())  # curated entries R4 has no error constraint for
    data = {"source": current["source"], "invariants": result}
    TARGET.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", "utf-8")
    evaluated = sum(1 for item in result if item["engine"] != "none")
    print(
        f"{TARGET.name}: {len(result)} invariants, {evaluated} evaluated, "
        f"{TARGET.stat().st_size} bytes"
    )


if __name__ == "__main__":
    main()
