"""Resources per second through validate_resource vs a bare fhir.resources (R4B) parse of the
same resources: the entries of the Synthea R4 transaction bundles, measured in the same run.

    .venv/bin/python -m benchmarks.fhir_validation [../shared/data/synthea-r4] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.fhir import validate_resource

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea-r4"


def resources(folder: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*__*.json")):
        bundle = json.loads(path.read_text("utf-8"))
        found.extend(e["resource"] for e in bundle["entry"] if "resource" in e)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    items = resources(args.folder)
    catalog = read_catalog(default_catalog_path())
    validate_resource(items[0], catalog=catalog)  # load value sets and compile FHIRPath once

    best_bare = best_full = float("inf")
    rejected = 0
    for _ in range(args.repeat):
        start = time.perf_counter()
        for item in items:
            get_fhir_model_class(item["resourceType"]).model_validate(item)
        best_bare = min(best_bare, time.perf_counter() - start)
        start = time.perf_counter()
        rejected = sum(validate_resource(i, catalog=catalog).report.rejected for i in items)
        best_full = min(best_full, time.perf_counter() - start)
    bare, full = len(items) / best_bare, len(items) / best_full
    print(f"{len(items)} resources from {args.folder.name}, best of {args.repeat}")
    print(f"bare fhir.resources R4B parse: {bare:8.0f} resources/s")
    print(f"validate_resource:             {full:8.0f} resources/s ({rejected} rejected)")
    print(f"ratio validate/bare:           {full / bare:8.2f}")


if __name__ == "__main__":
    main()
