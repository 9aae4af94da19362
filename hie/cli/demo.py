"""``hie demo``: a city's month of uploads, end to end, on whatever database hie is configured
with (by default the embedded one); and ``hie synth``, the same uploads written to files."""

from __future__ import annotations

import csv
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hie.catalog import read_catalog
from hie.cli.context import actor, console, database, fail
from hie.client import PlatformClient, Receipt
from hie.config import load_settings
from hie.metrics.report import parse_month
from hie.registry import Institution
from hie.server import BackgroundServer
from hie.storage import Database
from hie.storage.audit import record_event
from hie.storage.catalog import current_catalog
from hie.storage.declarations import current_declaration, set_declaration
from hie.storage.institutions import import_institutions
from hie.storage.tokens import create_token
from hie.synth import MonthPlan, Upload, plan_month
from hie.validators.cda_rules.content import default_content_rules

# The bulletin the region is modelled on is of July 2019: the demo's month unless told otherwise.
DEMO_MONTH = date(2019, 7, 1)

MonthArg = Annotated[
    str | None, typer.Option("--month", metavar="YYYY-MM", help="The month of the uploads.")
]
ScaleArg = Annotated[float, typer.Option(help="Multiplies the number of uploads.")]
SeedArg = Annotated[int, typer.Option(help="The same seed gives the same uploads.")]


def _month(text: str | None) -> date:
    if text is None:
        return DEMO_MONTH
    try:
        return parse_month(text)
    except ValueError as exc:
        raise fail(str(exc), 2) from None


def _plan(month: date, scale: float, seed: int, defect_rate: float, db: Database) -> MonthPlan:
    with db.connection() as conn:
        catalog = current_catalog(conn)
    return plan_month(
        month, catalog, default_content_rules(), seed=seed, scale=scale, defect_rate=defect_rate
    )


def _register(db: Database, plan: MonthPlan) -> None:
    """The region's institutions and declarations; a rerun changes nothing that is already so."""
    with db.transaction() as tx:
        import_institutions(
            tx.conn,
            [Institution(m.code, m.name, m.kind, m.district) for m in plan.members],
            source="hie demo",
            actor=actor(),
        )
        for code, tables in plan.declarations.items():
            if tables is not None and current_declaration(tx.conn, code) != sorted(tables):
                set_declaration(tx.conn, code, tables, actor=actor())


def _send(client: PlatformClient, upload: Upload) -> tuple[Upload, Receipt]:
    if upload.channel == "fhir":
        receipt = client.submit_fhir(
            upload.body, institution=upload.institution, received_at=upload.received_at
        )
        return upload, receipt
    receipt = client.submit_cda(
        upload.body, institution=upload.institution, received_at=upload.received_at
    )
    return upload, receipt


def _describe(upload: Upload, receipt: Receipt) -> str:
    """One line on an upload whose outcome the generator did not expect, and why."""
    what = f"{upload.channel.upper()} {upload.note or 'document'} of {upload.institution}"
    why = "; ".join(receipt.errors()[:2]) or f"HTTP {receipt.status}"
    return f"  {what}: expected {upload.expect}, got {receipt.outcome} ({why})"


def _upload_all(url: str, token: str, uploads: list[Upload]) -> Counter[str]:
    """Send every upload in order of receipt time, a few at a time, as hospitals would."""
    outcomes: Counter[str] = Counter()
    surprises: list[str] = []
    with (
        PlatformClient(url, token) as client,
        ThreadPoolExecutor(4) as pool,
        Progress(
            TextColumn("uploading"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("uploads", total=len(uploads))
        # Duplicates and replacements must arrive after their originals: send in receipt order,
        # in waves that never hold a document and its follow-up together.
        wave: list[Upload] = []
        for upload in [*uploads, None]:
            if upload is not None and upload.note not in ("duplicate", "replacement"):
                wave.append(upload)
                continue
            for sent, receipt in pool.map(lambda u: _send(client, u), wave):
                outcomes[receipt.outcome] += 1
                if receipt.outcome != sent.expect and sent.note != "duplicate":
                    surprises.append(_describe(sent, receipt))
                progress.advance(task)
            wave = [upload] if upload is not None else []
    if surprises:
        # The figures printed next are what the platform stored; the generator's expectations
        # are only a check on them, so say which uploads differ and why.
        console.print(
            f"[yellow]{len(surprises)} upload(s) did not get the outcome the generator "
            "expected; the figures below count what the platform actually stored:[/]"
        )
        for line in surprises[:10]:
            console.print(line, markup=False, highlight=False)
        if len(surprises) > 10:
            console.print(f"  ... and {len(surprises) - 10} more")
    return outcomes


def demo(
    month: MonthArg = None,
    scale: ScaleArg = 1.0,
    seed: SeedArg = 2019,
    port: Annotated[int, typer.Option(help="Port of the HTTP server (0: any free port).")] = 8000,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep serving the platform afterwards.")
    ] = True,
) -> None:
    """Register a region modelled on the bulletin, upload a month of documents through the HTTP
    API, compute its figures through the task queue, print the bulletin tables, and serve."""
    from hie.app import create_app  # imported here: the whole HTTP app, for this command only
    from hie.cli.reports import print_tables
    from hie.storage.reports import load_report
    from hie.workers import configure
    from hie.workers.reports import compute_month_report
    from hie.workers.runtime import bind_runtime

    settings = load_settings()
    started = time.monotonic()
    with database(settings) as db:
        wanted = _month(month)
        plan = _plan(wanted, scale, seed, 0.05, db)
        _register(db, plan)
        with db.transaction() as tx:
            _, admin = create_token(
                tx.conn, role="admin", institution_code=None, label="hie demo", actor=actor()
            )
            _, regulator = create_token(
                tx.conn, role="regulator", institution_code=None, label="hie demo", actor=actor()
            )
        console.print(
            f"{len(plan.members)} institutions; {len(plan.uploads)} uploads for {wanted:%Y-%m} "
            f"(seed {seed}, scale {scale})"
        )
        # The same month, seed and scale again: the documents are stored already, and sending the
        # rejected ones again would count them twice, so a rerun only recomputes and prints.
        loaded = f"{wanted:%Y-%m} seed {seed} scale {scale}"
        with db.connection() as conn:
            done = conn.execute(
                "select 1 from audit_event where action = 'demo.load' and target = %s", (loaded,)
            ).fetchone()
        try:
            background = BackgroundServer(create_app(settings, database=db), port)
        except OSError as exc:
            raise fail(
                f"cannot listen on port {port} ({exc.strerror}); choose another with --port"
            ) from None
        with background as server:
            if done:
                console.print(f"{loaded} was loaded before: recomputing its figures only")
            else:
                outcomes = _upload_all(server.url, admin, plan.uploads)
                console.print(", ".join(f"{n} {label}" for label, n in outcomes.most_common()))
                with db.transaction() as tx:
                    record_event(tx.conn, actor(), "demo.load", loaded, **dict(outcomes))
            configure(settings)
            bind_runtime(settings, db)
            summary = compute_month_report.delay(f"{wanted:%Y-%m}").get(timeout=600)
            with db.connection() as conn:
                body = load_report(conn, wanted)
            assert body is not None  # noqa: S101 (just computed)
            print_tables(body, ["district", "hospital"])
            console.print(
                f"figures computed at {summary['generated_at']}; "
                f"{time.monotonic() - started:.0f} s in all"
            )
            if not serve:
                return
            console.print(
                f"\nThe platform is running at {server.url} (API docs: {server.url}/docs).\n"
                f"Dashboard: {server.url}/dashboard (sign in with the regulator token)\n"
                f"Regulator token: {regulator}\nPress Ctrl-C to stop."
            )
            try:
                while server.thread.is_alive():
                    time.sleep(0.5)
            except KeyboardInterrupt:
                console.print("stopping")


EXPECTED_COLUMNS = (
    "uploaded_tables",
    "undeclared_tables",
    "missing_declared_tables",
    "records",
    "upload_days",
    "outpatient_visits",
    "discharges",
    "health_records.basic",
    "health_records.hypertension",
    "health_records.diabetes",
    "rejected",
)


def synth(
    out: Annotated[Path, typer.Option(help="Folder to write into (created).")],
    month: MonthArg = None,
    scale: ScaleArg = 0.2,
    seed: SeedArg = 2019,
    catalog: Annotated[
        Path | None, typer.Option(help="Catalog CSV (default: the built-in).")
    ] = None,
) -> None:
    """Write a month of sample documents to files, for trying `hie validate` on: one folder per
    institution under OUT/uploads, with institutions.csv, declarations.csv and the figures they
    must produce (expected-figures.csv)."""
    from hie.catalog import default_catalog_path

    wanted = _month(month)
    plan = plan_month(
        wanted,
        read_catalog(catalog or default_catalog_path()),
        default_content_rules(),
        seed=seed,
        scale=scale,
    )
    uploads = out / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    for number, upload in enumerate(plan.uploads, start=1):
        folder = uploads / upload.institution
        folder.mkdir(exist_ok=True)
        suffix = f"-{upload.note}" if upload.note else ""
        extension = ".json" if upload.channel == "fhir" else ".xml"
        (folder / f"{number:05d}{suffix}{extension}").write_bytes(upload.body)
    with (out / "institutions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["code", "name", "kind", "district"])
        writer.writerows([m.code, m.name, m.kind, m.district or ""] for m in plan.members)
    with (out / "declarations.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["institution", "tables"])
        writer.writerows([c, " ".join(t)] for c, t in plan.declarations.items() if t is not None)
    # CSV, not JSON: a JSON file beside the uploads would be taken for a FHIR resource by
    # hie validate and hie push.
    with (out / "expected-figures.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["institution", *EXPECTED_COLUMNS])
        for code in plan.truth:
            figures = plan.expected(code)
            flat = {
                **figures,
                **{f"health_records.{k}": v for k, v in figures["health_records"].items()},
            }
            writer.writerow(
                [
                    code,
                    *(
                        " ".join(v) if isinstance(v := flat[c], list) else v
                        for c in EXPECTED_COLUMNS
                    ),
                ]
            )
    console.print(
        f"wrote {len(plan.uploads)} uploads for {wanted:%Y-%m} to {uploads} (CDA .xml, FHIR "
        f"transaction Bundles .json), with institutions.csv, declarations.csv and "
        f"expected-figures.csv in {out}"
    )
