"""``hie ingest``: backfill folders of CDA documents and FHIR resources through the same
validation and storage as HTTP uploads, keeping a given receipt time."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hie.audit import Agent
from hie.cli.context import actor, console, database, fail, print_counts
from hie.client import Receipt
from hie.config import Settings, load_settings
from hie.storage import Database

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


class _FhirIngest:
    """FHIR files through the FHIR server's own write path, as an admin backfilling would."""

    def __init__(
        self, settings: Settings, db: Database, institution: str, moment: datetime | None
    ) -> None:
        from hie.fhir.access import Scope
        from hie.fhir.bundles import BundleProcessor
        from hie.fhir.responses import Preferences
        from hie.fhir.server import Call, FhirServer

        self.server = FhirServer(settings, db)
        self.bundles = BundleProcessor(self.server)
        self.call = Call(
            Scope(institution, None, moment),
            Preferences.parse(None),
            "/fhir",
            agent=Agent(actor()),
            action="fhir.create",
        )

    def submit(self, file: Path) -> Iterator[tuple[str, list[str]]]:
        """(outcome, rules that rejected) for each resource or Bundle in ``file``."""
        data = file.read_bytes()
        chunks = data.splitlines() if file.suffix.lower() == ".ndjson" else [data]
        for chunk in (c for c in chunks if c.strip()):
            try:
                head = json.loads(chunk)
            except ValueError:
                head = {}
            kind = head.get("resourceType") if isinstance(head, dict) else None
            if kind == "Bundle" and head.get("type") in ("transaction", "batch"):
                answer = self.bundles.process(self.call, chunk)
            else:
                answer = self.server.create(self.call, str(kind or "Unknown"), chunk, None)
            receipt = Receipt(answer.status, answer.body or {})
            yield receipt.outcome, receipt.rules()


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively).")],
    institution: Annotated[str, typer.Option(help="The institution the uploads belong to.")],
    received_at: Annotated[
        str | None,
        typer.Option(help="Receipt time to record (ISO 8601; default: now). Backfills history."),
    ] = None,
) -> None:
    """Load CDA (.xml) and FHIR (.json resources and Bundles, .ndjson) files through the same
    validation and storage as HTTP uploads, as an administrator's backfill."""
    from hie.cda.submission import CdaPipeline, submit_cda
    from hie.validators.cda import CdaSchema

    settings = load_settings()
    moment = _received_at(received_at, settings.zone)
    files = list(_files(paths))
    if not files:
        raise fail("no .xml, .json or .ndjson files found", 2)
    outcomes: Counter[str] = Counter()
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
            fhir = _FhirIngest(settings, db, institution, moment)
            for file in files:
                kind = SUFFIXES.get(file.suffix.lower())
                if kind == "fhir":
                    for label, rules in fhir.submit(file):
                        outcomes[label] += 1
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
                stored = Receipt(receipt.status, receipt.body)
                outcomes[stored.outcome] += 1
                reasons.update(stored.rules())
                progress.advance(task)
    print_counts(f"{len(files)} file(s) for {institution}", "outcome", outcomes)
    if reasons:
        print_counts("rejections by rule", "rule", reasons)
