"""``hie push``: upload what validates locally to a running platform, with a summary."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.progress import Progress

from hie.catalog import default_catalog_path, read_catalog
from hie.cli.context import errors, fail, print_counts
from hie.client import PlatformClient, Receipt
from hie.validators.conformance import SERVER
from hie.validators.files import Options, expand, sniff, validate_path


def _fhir_path(body: bytes) -> str:
    """Transaction and batch Bundles go to the base; a resource to its type."""
    resource = json.loads(body)
    kind = resource.get("resourceType", "")
    if kind == "Bundle" and resource.get("type") in ("transaction", "batch"):
        return ""
    return f"/{kind}"


def push(
    paths: Annotated[list[str], typer.Argument(help="Files, folders (recursive) or globs.")],
    server: Annotated[str, typer.Option(help="The platform's base URL, e.g. https://hie.example")],
    token: Annotated[str, typer.Option(help="Your bearer token.", envvar="HIE_TOKEN")],
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid/--send-invalid", help="Do not send what fails validation here."
        ),
    ] = True,
) -> None:
    """Validate files as the server would, then upload those that pass. Exit code 1 if any file
    was invalid or rejected."""
    try:
        files = list(dict.fromkeys(expand(paths)))
    except FileNotFoundError as exc:
        raise fail(f"{exc.args[0]}: no such file, folder or match", 2) from None
    # Judged by the server's policy, not HL7's: what the server accepts (a hospital's local
    # extensions, displays in its own words) is sent.
    options = Options(read_catalog(default_catalog_path()), context=SERVER)
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    with PlatformClient(server, token) as client, Progress(console=errors, transient=True) as bar:
        task = bar.add_task("pushing", total=len(files))
        for path in files:
            bar.advance(task)
            local = validate_path(path, options)
            if local.report.rejected and skip_invalid:
                outcomes["invalid here, not sent"] += 1
                for issue in local.report.errors:
                    reasons[issue.rule] += 1
                continue
            body = Path(path).read_bytes()
            kind = sniff(body)
            if kind == "fhir-xml":
                outcomes["not sent: the platform takes FHIR as JSON"] += 1
                continue
            # NDJSON: one upload per line, as a bulk export is replayed.
            parts = [p for p in body.splitlines() if p.strip()] if kind == "fhir-ndjson" else [body]
            for part in parts:
                try:
                    if kind == "cda":
                        receipt = client.submit_cda(part)
                    else:
                        receipt = client.submit_fhir(part, resource_path=_fhir_path(part))
                except httpx.HTTPError as exc:
                    raise fail(f"{server}: {exc}") from None
                outcomes[receipt.outcome] += 1
                _note(path, receipt, reasons)
    print_counts(f"{len(files)} file(s) to {server}", "outcome", outcomes)
    if reasons:
        print_counts("rejections by rule", "rule", reasons)
    failed = (
        sum(outcomes[label] for label in ("invalid here, not sent", "rejected", "conflict"))
        + outcomes["not sent: the platform takes FHIR as JSON"]
    )
    raise typer.Exit(1 if failed else 0)


def _note(path: str, receipt: Receipt, reasons: Counter[str]) -> None:
    reasons.update(receipt.rules())
    for error in receipt.errors():
        errors.print(f"{path}: {error}", markup=False, highlight=False)
