"""CDA documents for the benchmarks that time the CDA store path: the test fixtures again under
new document IDs, stored one at a time as a hospital would send them."""

from __future__ import annotations

import time
from pathlib import Path

from hie.cda.submission import CdaPipeline, submit_cda
from hie.registry import Institution

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cda"
# The hospital the fixtures name as their author's and custodian.
CDA_HOSPITAL = Institution("455755678", "南京鼓楼医院", "hospital")


def documents(count: int, tag: str) -> list[bytes]:
    """``count`` fixtures, each under a document ID of its own (``tag`` keeps runs apart)."""
    sources = sorted(p.read_bytes() for p in FIXTURES.glob("C00*-valid.xml"))
    return [
        sources[n % len(sources)].replace(
            b'extension="455755678-C', f'extension="{tag}{n}-455755678-C'.encode(), 1
        )
        for n in range(count)
    ]


def store_all(pipeline: CdaPipeline, docs: list[bytes]) -> float:
    """Store ``docs`` one after another; documents per second."""
    started = time.perf_counter()
    for doc in docs:
        receipt = submit_cda(pipeline, doc, principal=None, institution=CDA_HOSPITAL.code)
        if receipt.status != 201:
            raise RuntimeError(f"not stored: {receipt.body}")
    return len(docs) / (time.perf_counter() - started)
