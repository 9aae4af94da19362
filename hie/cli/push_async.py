"""``hie push --async``: what validates locally goes in bulk: FHIR resources and NDJSON lines
as one ``POST /fhir/$import`` job, CDA documents as one zip to ``POST /cda/batch``; then the
jobs are followed with a progress bar until the platform has worked every item. Transaction and
batch Bundles are a unit of their own and are posted as ``hie push`` posts them."""

from __future__ import annotations

import json
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hie.cli.context import errors
from hie.client import PlatformClient, Receipt

NDJSON_TYPE = "application/fhir+ndjson"
ZIP_TYPE = "application/zip"
# Pieces of the zip sent at a time.
PIECE = 256 * 1024


def is_unit_bundle(body: bytes) -> bool:
    """A transaction or batch Bundle: not one resource of an $import."""
    try:
        resource = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(resource, dict)
        and resource.get("resourceType") == "Bundle"
        and resource.get("type") in ("transaction", "batch")
    )


def ndjson_stream(parts: list[tuple[Path, str]]) -> Iterator[bytes]:
    """One line per resource: a JSON file made compact, an NDJSON file's lines as they are."""
    for path, kind in parts:
        data = path.read_bytes()
        if kind == "fhir-ndjson":
            for line in data.splitlines():
                if line.strip():
                    yield line.strip() + b"\n"
        else:
            compact = json.dumps(json.loads(data), ensure_ascii=False, separators=(",", ":"))
            yield compact.encode() + b"\n"


def zip_file(paths: list[Path]) -> IO[bytes]:
    """The documents zipped into a temporary file (kept on disk past a few megabytes)."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    with zipfile.ZipFile(spool, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, path in enumerate(paths):
            archive.write(path, f"{index:06d}-{path.name}")
    return spool


def file_stream(spool: IO[bytes]) -> Iterator[bytes]:
    spool.seek(0)
    while piece := spool.read(PIECE):
        yield piece


def send_jobs(
    client: PlatformClient,
    fhir: list[tuple[Path, str]],
    cda: list[Path],
    outcomes: Counter[str],
    reasons: Counter[str],
) -> bool:
    """Upload the jobs and follow them; False when one did not finish."""
    jobs: list[tuple[str, str]] = []
    if fhir:
        receipt = client.submit_bulk("/fhir/$import", lambda: ndjson_stream(fhir), NDJSON_TYPE)
        jobs += _accepted("$import", receipt, outcomes)
    if cda:
        spool = zip_file(cda)
        try:
            receipt = client.submit_bulk("/cda/batch", lambda: file_stream(spool), ZIP_TYPE)
        finally:
            spool.close()
        jobs += _accepted("CDA batch", receipt, outcomes)
    finished = True
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
    ) as bar:
        tasks = {url: bar.add_task(label, total=None) for label, url in jobs}
        open_jobs = dict(tasks)
        while open_jobs:
            for url, task in list(open_jobs.items()):
                answer = client.job(url)
                if answer.status == 202:
                    done, total = _progress(answer.headers.get("x-progress", ""))
                    bar.update(task, completed=done, total=total)
                    continue
                del open_jobs[url]
                if answer.status != 200:
                    errors.print(f"{url}: {answer.status} {answer.errors()}", highlight=False)
                    outcomes["job failed"] += 1
                    finished = False
                    continue
                summary = answer.body
                bar.update(task, completed=summary["items"], total=summary["items"])
                outcomes["accepted"] += summary["accepted"]
                outcomes["rejected"] += summary["rejected"]
                outcomes["failed on the platform"] += summary["failed"]
                _failures(client, summary, reasons)
            if open_jobs:
                time.sleep(1.0)
    return finished


def _accepted(label: str, receipt: Receipt, outcomes: Counter[str]) -> list[tuple[str, str]]:
    location = receipt.headers.get("content-location")
    if receipt.status == 202 and location:
        errors.print(f"{label}: job {location}", highlight=False)
        return [(label, location)]
    errors.print(f"{label}: {receipt.status} {'; '.join(receipt.errors())}", highlight=False)
    outcomes[f"{label} not accepted"] += 1
    return []


def _progress(header: str) -> tuple[int, int | None]:
    done, _, rest = header.partition("/")
    total = rest.split()[0] if rest else ""
    return (
        int(done) if done.isdigit() else 0,
        int(total) if total.isdigit() else None,
    )


def _failures(client: PlatformClient, summary: dict[str, Any], reasons: Counter[str]) -> None:
    """Count the refused items' rules, page by page."""
    url: str | None = summary["error"]
    while url:
        page = client.job(url)
        if page.status != 200:
            return
        for item in page.body.get("items", []):
            reasons[item.get("code") or "error"] += 1
        url = page.body.get("next")
