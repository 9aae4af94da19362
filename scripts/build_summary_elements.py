"""Generate ``schemas/fhir/summary-elements.json``: for each R4 resource type, the elements that
``_summary=true`` keeps (``ElementDefinition.isSummary``) and the top-level elements that are
mandatory (``min`` of 1 or more), which ``_summary=text`` and ``_elements`` keep too.

Paths are relative to the resource and include backbone elements (``component.code``); a choice
element keeps its ``[x]`` (``value[x]``). Elements of data types (a HumanName's ``family``) are not
listed: a kept element of a data type is kept whole, as HAPI FHIR does.

    python scripts/build_summary_elements.py
"""

from __future__ import annotations

import json
from pathlib import Path

from fhir_packages import core_structures

TARGET = Path(__file__).resolve().parent.parent / "schemas" / "fhir" / "summary-elements.json"
SOURCE = "HL7 FHIR R4 4.0.1 profiles-resources.json (hl7.org/fhir/R4), CC0"


def main() -> None:
    resources: dict[str, dict[str, list[str]]] = {}
    for definition in core_structures():
        if definition.get("kind") != "resource" or definition.get("abstract"):
            continue
        name = definition["type"]
        summary: list[str] = []
        mandatory: list[str] = []
        for element in definition["snapshot"]["element"]:
            path: str = element["path"]
            if "." not in path:
                continue
            relative = path.split(".", 1)[1]
            if element.get("isSummary"):
                summary.append(relative)
            if "." not in relative and int(element.get("min", 0)) >= 1:
                mandatory.append(relative)
        resources[name] = {"summary": summary, "mandatory": mandatory}
    document = {"source": SOURCE, "resources": dict(sorted(resources.items()))}
    TARGET.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"{TARGET.name}: {len(resources)} resource types")


if __name__ == "__main__":
    main()
