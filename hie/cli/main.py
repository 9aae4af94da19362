"""The top-level command and its groups."""

from __future__ import annotations

from typing import Annotated

import typer

from hie import __version__
from hie.cli import (
    audit,
    catalog,
    db,
    declarations,
    demo,
    ingest,
    institutions,
    push,
    reports,
    tokens,
    validate,
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
app.add_typer(reports.metrics_app, name="metrics")
app.command("report")(reports.report)
app.command("ingest")(ingest.ingest)
app.command("validate")(validate.validate)
app.command("demo")(demo.demo)
app.command("synth")(demo.synth)
app.command("push")(push.push)


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
) -> None:
    """Run the HTTP platform (uvicorn); migrations are applied at start."""
    import uvicorn

    from hie.app import create_app

    with reported_errors():
        application = create_app()
    console.print(f"hie {__version__} serving on http://{host}:{port} (health: /healthz)")
    uvicorn.run(application, host=host, port=port, log_level="info")


def main() -> None:
    try:
        app()
    except HieError as exc:
        # A bad environment can surface while a command imports what it needs.
        errors.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise SystemExit(1) from None
