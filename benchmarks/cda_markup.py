"""What the CDA markup pass (attribute-name case, spaces in OIDs and codes, timestamps) costs:
CDA validation with and without it, and the pass alone against a bare walk over the same trees,
measured in the same run (the C-CDA examples of ../shared/data and the project's CDA fixtures).

    .venv/bin/python benchmarks/cda_markup.py [--shared ../shared/data] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from hie.catalog import default_catalog_path, read_catalog
from hie.validators import cda
from hie.validators.cda_rules.document import CdaDocument
from hie.validators.cda_rules.markup import check_markup
from hie.validators.report import Report
from hie.validators.xml import parse_xml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "data"


def best(repeat: int, run: Callable[[], None]) -> float:
    """The least CPU time of ``repeat`` runs (the machine may be shared)."""
    times = []
    for _ in range(repeat):
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    paths = sorted((args.shared / "ccda-examples").glob("*.xml"))
    paths += sorted((ROOT / "tests" / "fixtures").glob("**/*.xml"))
    sources = [p.read_bytes() for p in paths]
    catalog = read_catalog(default_catalog_path())
    trees = [t for t in (parse_xml(s).tree for s in sources) if t is not None]
    documents = [d for d in map(CdaDocument.of, trees) if d.is_clinical_document]

    def validate_all() -> None:
        for source in sources:
            cda.validate_cda(source, catalog=catalog)

    validate_all()  # the schema compiled, the rules loaded
    with_markup = best(args.repeat, validate_all)
    cda.check_markup = lambda doc, report: None  # type: ignore[assignment]
    try:
        without = best(args.repeat, validate_all)
    finally:
        cda.check_markup = check_markup
    alone = best(args.repeat, lambda: [check_markup(d, Report()) for d in documents] and None)
    walk = best(args.repeat, lambda: [sum(1 for _ in d.root.iter()) for d in documents] and None)
    count = len(documents)
    print(f"{len(sources)} files, {count} CDA documents")
    print(
        f"validation: {len(sources) / without:.0f} files/s without the markup pass, "
        f"{len(sources) / with_markup:.0f} with it (ratio {without / with_markup:.2f})"
    )
    print(
        f"markup pass alone: {alone / count * 1000:.2f} ms per document; a bare walk over the "
        f"elements {walk / count * 1000:.2f} ms (ratio {alone / walk:.1f})"
    )


if __name__ == "__main__":
    main()
