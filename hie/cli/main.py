"""The top-level command and its groups."""

from __future__ import annotations

import importlib
import os
import re
import signal
import sys
from types import FrameType
from typing import Annotated, Any

import typer
from typer import _click as click  # typer's own click, which its groups are typed with
from typer.core import TyperGroup

from hie import __version__
from hie.cli.context import console, errors, reported_errors
from hie.errors import HieError

# Every command but serve, in the order help lists them, with the module and attribute that
# define it: a command's module (and what it imports: the web stack, psycopg, the validators)
# is imported only when that command runs or help lists it, so `hie validate` does not pay for
# `hie demo`'s imports.
_COMMANDS: dict[str, tuple[str, str]] = {
    "report": ("hie.cli.reports", "report"),
    "ingest": ("hie.cli.ingest", "ingest"),
    "validate": ("hie.cli.validate", "validate"),
    "demo": ("hie.cli.demo", "demo"),
    "synth": ("hie.cli.demo", "synth"),
    "push": ("hie.cli.push", "push"),
    "doctor": ("hie.cli.doctor", "doctor"),
    "serve": ("", ""),  # defined below
    "db": ("hie.cli.db", "app"),
    "catalog": ("hie.cli.catalog", "app"),
    "institutions": ("hie.cli.institutions", "app"),
    "declarations": ("hie.cli.declarations", "app"),
    "tokens": ("hie.cli.tokens", "app"),
    "audit": ("hie.cli.audit", "app"),
    "persons": ("hie.cli.persons", "app"),
    "consent": ("hie.cli.consent", "app"),
    "documents": ("hie.cli.documents", "app"),
    "jobs": ("hie.cli.jobs", "app"),
    "events": ("hie.cli.events", "app"),
    "subscriptions": ("hie.cli.subscriptions", "app"),
    "forward": ("hie.cli.forward", "app"),
    "worker": ("hie.cli.worker", "worker"),
    "status": ("hie.cli.worker", "status"),
    "metrics": ("hie.cli.reports", "metrics_app"),
}
_SETTINGS: dict[str, Any] = {"rich_markup_mode": "rich", "pretty_exceptions_enable": False}


class _LazyCommands(TyperGroup):
    """The top-level group, building each command from its module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and _COMMANDS.get(cmd_name, ("", ""))[0]:
            command = _load(cmd_name)
            self.add_command(command, cmd_name)
        return command


def _load(name: str) -> click.Command:
    module, attribute = _COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer(**_SETTINGS)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return typer.main.get_group(holder).commands[name]


app = typer.Typer(
    name="hie",
    help="hie: the regional health-information exchange. Validates and stores CDA shared "
    "documents and FHIR resources, and reports each institution's upload completeness.\n\n"
    "With no HIE_DATABASE_URL it runs on an embedded PostgreSQL in HIE_DATA_DIR.",
    no_args_is_help=True,
    cls=_LazyCommands,
    **_SETTINGS,
)


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
        "hie.app:create_worker_app",
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
    """Help and tables use the terminal's width; piped, a generous one instead of rich's 80.
    Said through typer's own variable rather than by importing its help module (rich's
    Markdown, a tenth of a second), which a command that prints no help never needs."""
    if "TERMINAL_WIDTH" not in os.environ and not sys.stdout.isatty():
        if "typer.rich_utils" in sys.modules:  # already imported: too late for the variable
            from typer import rich_utils

            rich_utils.MAX_WIDTH = 120
        os.environ["TERMINAL_WIDTH"] = "120"


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
