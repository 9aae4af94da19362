"""``hie ingest``: backfill folders of CDA documents and FHIR resources through the same
validation and storage as HTTP uploads, keeping a given receipt time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table as RichTable

from hie.cli.context import actor, console, database, fail, print_counts
from hie.client import Receipt
from hie.config import load_settings

SUFFIXES = {".xml": "cda", ".json": "fhir", ".ndjson": "fhir"}


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
            )
        elif path.is_file():
            yield path
        else:
            raise fail(f"{path}: no such file or folder", 2)


def _received_at(text: str | None, zone: object) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--received-at {text!r} is not an ISO 8601 time", 2) from None
    # A time without an offset is a wall-clock time of the platform's zone.
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)  # type: ignore[arg-type]


OUTCOMES = ("created", "updated", "unchanged", "rejected")


def _cda_counts(status: int) -> Counter[str]:
    # A CDA document is never updated in place: a replacement is a new document (201).
    label = {201: "created", 200: "unchanged"}.get(status, "rejected")
    return Counter({label: 1})


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively).")],
    institution: Annotated[str, typer.Option(help="The institution the uploads belong to.")],
    received_at: Annotated[
        str | None,
        typer.Option(help="Receipt time to record (ISO 8601; default: now). Backfills history."),
    ] = None,
) -> None:
    """Load CDA (.xml) and FHIR (.json resources and Bundles, .ndjson) files through the same
    validation and storage as HTTP uploads, as an administrator's backfill. Prints, per file,
    the resources or documents created, updated (a new version), unchanged and rejected."""
    # Imported here: the FHIR and CDA pipelines are heavy, and every hie command imports this.
    from hie.audit import Agent
    from hie.cda.submission import CdaPipeline, submit_cda
    from hie.cli.fhir_ingest import FhirIngest
    from hie.validators.cda import CdaSchema

    settings = load_settings()
    moment = _received_at(received_at, settings.zone)
    files = list(_files(paths))
    if not files:
        raise fail("no .xml, .json or .ndjson files found", 2)
    per_file: dict[Path, Counter[str]] = {}
    reasons: Counter[str] = Counter()
    with database(settings) as db:
        pipeline = CdaPipeline(settings, db, schema=CdaSchema(settings.cda_schema))
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("ingesting", total=len(files))
            fhir = FhirIngest(settings, db, institution, moment)
            for file in files:
                counts = per_file.setdefault(file, Counter())
                kind = SUFFIXES.get(file.suffix.lower())
                if kind == "fhir":
                    for done, rules in fhir.submit(file):
                        counts.update(done)
                        reasons.update(rules)
                    progress.advance(task)
                    continue
                receipt = submit_cda(
                    pipeline,
                    file.read_bytes(),
                    principal=None,
                    institution=institution,
                    received_at=moment,
                    channel="ingest",
                    content_type="application/hl7-cda+xml",
                    agent=Agent(actor()),
                )
                counts.update(_cda_counts(receipt.status))
                reasons.update(Receipt(receipt.status, receipt.body).rules())
                progress.advance(task)
    _print_files(f"{len(files)} file(s) for {institution}", per_file)
    if reasons:
        print_counts("rejections by rule", "rule", reasons)


def _print_files(title: str, per_file: dict[Path, Counter[str]]) -> None:
    """One row per file (the first 50, then only files with rejections), and the totals."""
    table = RichTable(title=title)
    table.add_column("file", overflow="fold")
    for label in OUTCOMES:
        table.add_column(label, justify="right")
    shown = 0
    for file, counts in per_file.items():
        if shown < 50 or counts["rejected"]:
            table.add_row(str(file), *(str(counts[label]) for label in OUTCOMES))
            shown += 1
    if shown < len(per_file):
        table.add_row(f"({len(per_file) - shown} more file(s) without rejections)")
    total: Counter[str] = Counter()
    for counts in per_file.values():
        total.update(counts)
    table.add_row("total", *(str(total[label]) for label in OUTCOMES), style="bold")
    console.print(table)
