"""Generate ``schemas/fhir/search-parameters.json``: R4's own search parameters, compactly.

For each SearchParameter of FHIR R4 4.0.1 (``search-parameters.json`` of the R4 definitions):
its canonical URL, code, type and base resource types, which is what the checks of
``hie/validators/fhir_rules/search_parameters.py`` compare a CapabilityStatement's or a derived
SearchParameter's claims with.

    python scripts/build_search_parameters.py
"""

from __future__ import annotations

import json
from pathlib import Path

from fhir_packages import r4_definitions

TARGET = Path(__file__).resolve().parent.parent / "schemas" / "fhir" / "search-parameters.json"


def main() -> None:
    bundle = json.loads((r4_definitions() / "search-parameters.json").read_text("utf-8"))
    parameters = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        parameters[resource["url"]] = {
            "code": resource["code"],
            "type": resource["type"],
            "base": resource["base"],
        }
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
