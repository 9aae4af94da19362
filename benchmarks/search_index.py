"""What search indexing costs per resource: ``index_rows`` over the resources of Synthea
bundles and the rows it makes per resource, against two baselines measured in the same run:
another version's ``hie/fhir/parameters.py`` (``--baseline FILE``, e.g. the hand-written table
before the R4 definitions: ``git show e0798c9:hie/fhir/parameters.py > /tmp/old.py``), in
alternating rounds so machine load hits both alike; and the same parameters evaluated by
fhirpathpy alone, which is what the compiled extractors spare.

    .venv/bin/python benchmarks/search_index.py DIR_OF_SYNTHEA_BUNDLES [--limit 20]
        [--rounds 5] [--baseline FILE]

Only the resource types of the default catalog are measured (the platform stores no others).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hie.catalog import default_catalog_path, read_catalog
from hie.fhir.parameters import index_rows, parameters_of
from hie.fhir.server import supported_types

ZONE = ZoneInfo("Asia/Shanghai")


def resources(folder: Path, limit: int, types: set[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(p for p in folder.glob("*.json") if "__" in p.name)[:limit]:
        bundle = json.loads(path.read_text("utf-8"))
        for entry in bundle.get("entry", ()):
            resource = entry.get("resource") or {}
            if resource.get("resourceType") in types:
                found.append(resource)
    return found


def timed(work: list[dict[str, Any]], rounds: int, run: Any) -> float:
    """Median seconds per resource over ``rounds`` passes."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for resource in work:
            run(resource)
        times.append((time.perf_counter() - start) / len(work))
    return statistics.median(times)


def fhirpath_baseline(resource: dict[str, Any]) -> int:
    """Every parameter's expression evaluated by fhirpathpy (what the fallback costs)."""
    from hie.validators.fhir_rules.fhirpath import compile_r4

    n = 0
    for parameter in parameters_of(resource["resourceType"]).values():
        if parameter.kind == "composite":
            continue
        compiled = _compiled.get(parameter.expression)
        if compiled is None:
            compiled = _compiled[parameter.expression] = compile_r4(parameter.expression)
        try:
            n += len(compiled(resource))
        except Exception as exc:  # what index_rows' fallback also skips
            _failed[parameter.expression] = repr(exc)
    return n


_compiled: dict[str, Any] = {}
_failed: dict[str, str] = {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=20, help="bundles to read")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another version of parameters.py")
    args = parser.parse_args()
    types = set(supported_types(read_catalog(default_catalog_path())))
    work = resources(args.folder, args.limit, types)
    by_type = Counter(r["resourceType"] for r in work)
    for t in by_type:
        parameters_of(t)  # build the tables before timing
    rows = sum(len(index_rows(r, ZONE)) for r in work)
    print(f"{len(work)} resources of {len(by_type)} types from {args.limit} bundles")
    if args.baseline:
        spec = importlib.util.spec_from_file_location("baseline_parameters", args.baseline)
        if spec is None or spec.loader is None:
            raise SystemExit(f"cannot load {args.baseline}")
        baseline = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = baseline  # dataclasses look their module up
        spec.loader.exec_module(baseline)
        old_rows = sum(len(baseline.index_rows(r, ZONE)) for r in work)
        mine, theirs = [], []
        for _ in range(args.rounds):
            mine.append(timed(work, 1, lambda r: index_rows(r, ZONE)))
            theirs.append(timed(work, 1, lambda r: baseline.index_rows(r, ZONE)))
        per, old = statistics.median(mine), statistics.median(theirs)
        print(f"baseline: {old * 1e6:.1f} µs per resource, {old_rows / len(work):.1f} rows")
        print(f"index_rows: {per * 1e6:.1f} µs per resource, {rows / len(work):.1f} rows")
        print(
            f"ratio index_rows / baseline: {per / old:.2f} per resource, "
            f"{(per / rows) / (old / old_rows):.2f} per row"
        )
    else:
        per = timed(work, args.rounds, lambda r: index_rows(r, ZONE))
        print(f"index_rows: {per * 1e6:.1f} µs per resource, {rows / len(work):.1f} rows")
    if all(hasattr(p, "expression") for t in by_type for p in parameters_of(t).values()):
        sample = work[: max(1, len(work) // 10)]
        base = timed(sample, 1, fhirpath_baseline)
        print(f"fhirpathpy on the same expressions: {base * 1e6:.1f} µs per resource")
        print(f"ratio fhirpathpy / index_rows: {base / per:.1f}")
    slowest = Counter(
        {
            t: timed(
                [r for r in work if r["resourceType"] == t][:200], 1, lambda r: index_rows(r, ZONE)
            )
            for t in by_type
        }
    )
    print(
        "µs per resource, slowest types:",
        ", ".join(f"{t} {v * 1e6:.0f}" for t, v in slowest.most_common(6)),
    )


if __name__ == "__main__":
    main()
