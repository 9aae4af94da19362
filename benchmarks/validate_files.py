"""``hie validate`` speed: files per second on the C-CDA set and on the FHIR R4 examples, against a
bare parse (lxml / json) of the same files measured in the same run.

    .venv/bin/python -m benchmarks.validate_files [--shared ../shared/data] [--jobs N]

Reads the public test material beside the checkout; the project itself never needs it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from lxml import etree  # type: ignore[import-untyped]

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.files import Options, validate_path
from hie.validators.xml import hardened_parser

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def bare(paths: list[Path]) -> float:
    parser = hardened_parser()
    started = time.perf_counter()
    for path in paths:
        data = path.read_bytes()
        if path.suffix == ".xml":
            etree.fromstring(data, parser)
        else:
            json.loads(data)
    return time.perf_counter() - started


def validated(paths: list[Path], jobs: int) -> float:
    options = Options(read_catalog(default_catalog_path()))
    names = [str(p) for p in paths]
    started = time.perf_counter()
    if jobs <= 1:
        for name in names:
            validate_path(name, options)
    else:
        with ProcessPoolExecutor(jobs) as pool:
            list(pool.map(validate_path, names, [options] * len(names), chunksize=8))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    sets = {
        "C-CDA documents": sorted((args.shared / "ccda-examples").glob("*.xml")),
        "FHIR R4 examples": sorted((args.shared / "fhir-r4-examples").glob("*.json")),
    }
    for label, paths in sets.items():
        if not paths:
            print(f"{label}: none found under {args.shared}")
            continue
        baseline = bare(paths)
        # The first pass also loads the validators' data and builds each resource type's model
        # once (what a single `hie validate` run pays); the pool's workers fork from a warm
        # process, so the one-process figure to compare with them is the second pass.
        cold = validated(paths, 1)
        one = validated(paths, 1)
        many = validated(paths, args.jobs)
        print(
            f"{label} ({len(paths)} files): bare parse {len(paths) / baseline:,.0f} files/s; "
            f"hie validate {len(paths) / one:,.0f} files/s on 1 warm process "
            f"({baseline / one:.2f}x the bare parse; first pass {len(paths) / cold:,.0f} "
            f"files/s), {len(paths) / many:,.0f} files/s on {args.jobs} "
            f"({baseline / many:.2f}x)"
        )


if __name__ == "__main__":
    main()
