"""The top-level command and its groups."""

from __future__ import annotations

import re
import signal
import sys
from types import FrameType
from typing import Annotated, Any

import typer

from hie import __version__
from hie.cli import (
    audit,
    catalog,
    db,
    declarations,
    demo,
    doctor,
    ingest,
    institutions,
    jobs,
    persons,
    push,
    reports,
    tokens,
    validate,
    worker,
)
from hie.cli.context import console, errors, reported_errors
from hie.errors import HieError

app = typer.Typer(
    name="hie",
    help="hie: the regional health-information exchange. Validates and stores CDA shared "
    "documents and FHIR resources, and reports each institution's upload completeness.\n\n"
    "With no HIE_DATABASE_URL it runs on an embedded PostgreSQL in HIE_DATA_DIR.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(catalog.app, name="catalog")
app.add_typer(institutions.app, name="institutions")
app.add_typer(declarations.app, name="declarations")
app.add_typer(tokens.app, name="tokens")
app.add_typer(audit.app, name="audit")
app.add_typer(persons.app, name="persons")
app.add_typer(jobs.app, name="jobs")
app.command("worker")(worker.worker)
app.command("status")(worker.status)
app.add_typer(reports.metrics_app, name="metrics")
app.command("report")(reports.report)
app.command("ingest")(ingest.ingest)
app.command("validate")(validate.validate)
app.command("demo")(demo.demo)
app.command("synth")(demo.synth)
app.command("push")(push.push)
app.command("doctor")(doctor.doctor)


def _show_version(value: bool) -> None:
    if value:
        console.print(f"hie {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """hie command line."""


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes (default HIE_WEB_WORKERS, else one per core, at most 8).",
        ),
    ] = None,
) -> None:
    """Run the HTTP platform (uvicorn); migrations are applied at start."""
    import uvicorn

    from hie.app import create_app
    from hie.config import default_web_workers, load_settings

    with reported_errors():
        # Built here first so that a bad setting is reported before any worker starts (and the
        # embedded mode's session key is made once, not by each worker at the same moment).
        application = create_app()
        processes = workers or load_settings().web_workers or default_web_workers()
    console.print(
        f"hie {__version__} serving on http://{host}:{port} ({processes} worker process"
        f"{'es' if processes > 1 else ''}): dashboard /dashboard, API docs /docs, health "
        "/healthz (Ctrl-C stops it)"
    )
    # uvicorn shuts down on SIGTERM itself (closing the database in the app's lifespan), then
    # re-raises the signal to the handler it found: the default one, so the exit says SIGTERM.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if processes == 1:
        uvicorn.run(application, host=host, port=port, log_level="info")
        return
    # Each worker builds its own app: its own database pool (with the embedded server, each
    # joins the one PostgreSQL of the data folder; the last to leave stops it), its own
    # background writer of read audit entries.
    uvicorn.run(
        "hie.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=processes,
        log_level="info",
    )


# What to type, not Python's type names: typer prints <str>, <bool>, <list[Path]>.
_METAVARS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH", "Path": "PATH"}
_TYPE_LABEL = re.compile(r"<(list\[)?([A-Za-z_]+)\]?>")


def _human_metavars() -> None:
    from typer import core

    owner: Any = getattr(core, "_TyperParameter", None)
    original = getattr(owner, "display_type", None)
    if original is None:  # another typer: it prints its own metavars
        return

    def display_type(self: Any, ctx: Any) -> str:
        label: str = original(self, ctx)
        if getattr(self, "is_flag", False) or label == "<bool>":
            return ""  # a flag takes no value
        match = _TYPE_LABEL.fullmatch(label)
        if match is None:
            return label.replace("<", "[").replace(">", "]")  # choices: [zh|en]
        word = _METAVARS.get(match[2], match[2].upper())
        return f"{word}..." if match[1] and getattr(self, "nargs", 1) == 1 else word

    owner.display_type = display_type


def _help_width() -> None:
    """Help and tables use the terminal's width; piped, a generous one instead of rich's 80."""
    from typer import rich_utils

    if rich_utils.MAX_WIDTH is None and not sys.stdout.isatty():
        rich_utils.MAX_WIDTH = 120


def _stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the HTTP server and the embedded PostgreSQL are stopped
    (``hie serve`` hands the signal to uvicorn, which shuts down the same way)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    _human_metavars()
    _help_width()
    _stop_on_sigterm()
    try:
        app()
    except HieError as exc:
        # A bad environment can surface while a command imports what it needs.
        errors.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise SystemExit(1) from None
