"""Generate ``schemas/fhir/search-parameters.json``: R4's own search parameters, compactly.

For each SearchParameter of FHIR R4 4.0.1 (``search-parameters.json`` of the R4 definitions):
its canonical URL, code, type and base resource types, which is what the checks of
``hie/validators/fhir_rules/search_parameters.py`` compare a CapabilityStatement's or a derived
SearchParameter's claims with; and what the server's search needs to index and answer it
(``hie/fhir/parameters.py``): the FHIRPath ``expression``, reference ``target`` types,
``comparator``/``modifier`` lists, composite ``component`` (definition URL, expression) pairs
and the ``description`` the CapabilityStatement repeats as documentation.

    python scripts/build_search_parameters.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fhir_packages import r4_definitions

TARGET = Path(__file__).resolve().parent.parent / "schemas" / "fhir" / "search-parameters.json"


def _description(text: str) -> str:
    """The first line of a definition's description, without markdown emphasis."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first.replace("**", "").strip()[:300]


def main() -> None:
    bundle = json.loads((r4_definitions() / "search-parameters.json").read_text("utf-8"))
    parameters = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        record: dict[str, Any] = {
            "code": resource["code"],
            "type": resource["type"],
            "base": resource["base"],
        }
        for key in ("expression", "target", "comparator", "modifier"):
            if resource.get(key):
                record[key] = resource[key]
        if resource.get("component"):
            record["component"] = [
                [c["definition"], c["expression"]] for c in resource["component"]
            ]
        if resource.get("description"):
            record["description"] = _description(resource["description"])
        parameters[resource["url"]] = record
    data = {
        "source": "HL7 FHIR R4 4.0.1 search-parameters.json (hl7.org/fhir/R4), CC0",
        "version": "4.0.1",
        "parameters": dict(sorted(parameters.items())),
    }
    TARGET.write_text(
        json.dumps(data, ensure_ascii=False, separators=(",", ":"), indent=None) + "\n", "utf-8"
    )
    print(f"{TARGET.name}: {len(parameters)} search parameters, {TARGET.stat().st_size} bytes")


if __name__ == "__main__":
    main()
