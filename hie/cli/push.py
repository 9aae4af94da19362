"""``hie push``: upload what validates locally to a running platform, with a summary."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.progress import Progress

from hie.catalog import default_catalog_path, read_catalog
from hie.cli.context import errors, fail, print_counts
from hie.client import PlatformClient, Receipt, Retry
from hie.validators.conformance import SERVER
from hie.validators.files import Options, expand, sniff, validate_path

# Outcomes of uploads the platform did not take because it stayed unavailable.
UNAVAILABLE = "unavailable"
NOT_SENT = "not sent: the platform stayed unavailable"


_RESOURCE_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _fhir_route(body: bytes) -> tuple[str, str]:
    """Transaction and batch Bundles are POSTed to the base. A resource with an id is PUT under
    it (update or create, as HAPI does), so a retry after a lost answer, or pushing the same
    export again, updates the one copy instead of creating another; one without an id is
    POSTed to its type."""
    resource = json.loads(body)
    kind = resource.get("resourceType", "")
    if kind == "Bundle" and resource.get("type") in ("transaction", "batch"):
        return "POST", ""
    resource_id = resource.get("id")
    if isinstance(resource_id, str) and _RESOURCE_ID.fullmatch(resource_id):
        return "PUT", f"/{kind}/{resource_id}"
    return "POST", f"/{kind}"


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
    retry_for: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds one upload may wait, in all, while the platform is unreachable or "
            "answers 503 (or 408, 429, 502, 504) before push stops.",
        ),
    ] = 300.0,
    asynchronous: Annotated[
        bool,
        typer.Option(
            "--async",
            help="Upload in bulk: resources and NDJSON as one $import job, CDA documents as one "
            "zip batch, then follow the jobs with a progress bar.",
        ),
    ] = False,
) -> None:
    """Validate files as the server would, then upload those that pass. Exit code 1 if any file
    was invalid or rejected, or the platform stayed unavailable.

    While the platform is unreachable or answers 503, each upload is retried (waiting what its
    Retry-After asks) for up to --retry-for seconds; then push stops and reports what was not
    sent. Sending a file again is safe: the platform answers a document it already has with its
    original receipt."""
    try:
        files = list(dict.fromkeys(expand(paths)))
    except FileNotFoundError as exc:
        raise fail(f"{exc.args[0]}: no such file, folder or match", 2) from None
    # Judged by the server's policy, not HL7's: what the server accepts (a hospital's local
    # extensions, displays in its own words) is sent.
    options = Options(read_catalog(default_catalog_path()), context=SERVER)
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()

    def waiting(retry: Retry) -> None:
        why = f"{retry.status} {retry.error}" if retry.status else retry.error
        errors.print(f"{server}{retry.path}: {why}, retrying in {retry.delay:g} s", highlight=False)

    client = PlatformClient(server, token, retry_for=retry_for, on_retry=waiting)
    if asynchronous:
        with client:
            _push_async(client, files, options, skip_invalid, outcomes, reasons)
        _finish(len(files), server, outcomes, reasons)
    with client, Progress(console=errors, transient=True) as bar:
        task = bar.add_task("pushing", total=len(files))
        for index, path in enumerate(files):
            if outcomes[UNAVAILABLE]:
                # The platform stayed down for a whole --retry-for: the rest is not tried.
                outcomes[NOT_SENT] += len(files) - index
                break
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
                        method, resource_path = _fhir_route(part)
                        receipt = client.submit_fhir(
                            part, resource_path=resource_path, method=method
                        )
                except httpx.TransportError as exc:
                    errors.print(f"{path}: {server} unreachable: {exc}", highlight=False)
                    outcomes[UNAVAILABLE] += 1
                    break
                except httpx.HTTPError as exc:
                    raise fail(f"{server}: {exc}") from None
                outcomes[receipt.outcome] += 1
                _note(path, receipt, reasons)
                if receipt.outcome == UNAVAILABLE:
                    break
    _finish(len(files), server, outcomes, reasons)


def _push_async(
    client: PlatformClient,
    files: list[str],
    options: Options,
    skip_invalid: bool,
    outcomes: Counter[str],
    reasons: Counter[str],
) -> None:
    from hie.cli.push_async import is_unit_bundle, send_jobs

    fhir: list[tuple[Path, str]] = []
    cda: list[Path] = []
    for path in files:
        local = validate_path(path, options)
        if local.report.rejected and skip_invalid:
            outcomes["invalid here, not sent"] += 1
            reasons.update(issue.rule for issue in local.report.errors)
            continue
        body = Path(path).read_bytes()
        kind = sniff(body)
        if kind == "cda":
            cda.append(Path(path))
        elif kind == "fhir-xml":
            outcomes["not sent: the platform takes FHIR as JSON"] += 1
        elif kind == "fhir-json" and is_unit_bundle(body):
            method, resource_path = _fhir_route(body)
            receipt = client.submit_fhir(body, resource_path=resource_path, method=method)
            outcomes[receipt.outcome] += 1
            _note(path, receipt, reasons)
        else:
            fhir.append((Path(path), kind))
    # A job that fails or is refused is counted under its own label.
    send_jobs(client, fhir, cda, outcomes, reasons)


def _finish(count: int, server: str, outcomes: Counter[str], reasons: Counter[str]) -> None:
    print_counts(f"{count} file(s) to {server}", "outcome", outcomes)
    if reasons:
        print_counts("rejections by rule", "rule", reasons)
    failed = sum(
        outcomes[label]
        for label in (
            "invalid here, not sent",
            "rejected",
            "conflict",
            "not sent: the platform takes FHIR as JSON",
            UNAVAILABLE,
            NOT_SENT,
            "failed on the platform",
            "job failed",
            "$import not accepted",
            "CDA batch not accepted",
        )
    )
    raise typer.Exit(1 if failed else 0)


def _note(path: str, receipt: Receipt, reasons: Counter[str]) -> None:
    reasons.update(receipt.rules())
    for error in receipt.errors():
        errors.print(f"{path}: {error}", markup=False, highlight=False)
