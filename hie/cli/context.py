"""What every command shares: settings, the database, the console, and turning errors into exits."""

from __future__ import annotations

import getpass
import logging
import shutil
import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO

import typer
from rich.console import Console
from rich.table import Table as RichTable

from hie.errors import HieError, InvalidInput

if TYPE_CHECKING:
    from hie.config import Settings
    from hie.storage import Database


def _width(stream: TextIO) -> int | None:
    """The terminal's width; piped or redirected, COLUMNS or a wide default. Rich would assume
    80 columns and squeeze the bulletin's tables, which have a dozen."""
    if stream.isatty():
        return None
    return shutil.get_terminal_size((240, 24)).columns


console = Console(soft_wrap=True, width=_width(sys.stdout))
errors = Console(stderr=True, soft_wrap=True, width=_width(sys.stderr))


def run_in_foreground() -> threading.Event:
    """For a process that consumes RabbitMQ until stopped (the relay, the forwarder, the
    subscription deliverer): timed log lines, and an event set by SIGTERM or Ctrl-C.

    pika logs each failed connection attempt with a traceback and httpx each request's URL (a
    conditional one may hold an identifier); these processes say what failed in a line of their
    own."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def print_counts(title: str, label: str, counts: Counter[str]) -> None:
    """A two-column table of counts, largest first (what a batch command did, and why)."""
    table = RichTable(title=title)
    table.add_column(label)
    table.add_column("count", justify="right")
    for key, count in counts.most_common():
        table.add_row(key, str(count))
    console.print(table)


def actor() -> str:
    """How the audit log names a command-line user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def read_input(file: Path) -> bytes:
    """A file the user named, or a clear error and exit 1."""
    try:
        return file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None


@contextmanager
def reported_errors() -> Iterator[None]:
    """Print hie's errors as one clear message and exit 1, instead of a traceback."""
    try:
        yield
    except InvalidInput as exc:
        errors.print(f"[bold red]error:[/] {exc.source} was refused:", highlight=False)
        for problem in exc.problems:
            errors.print(f"  {exc.source}: {problem}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    except HieError as exc:
        raise fail(str(exc)) from None


@contextmanager
def database(settings: Settings | None = None, *, migrate: bool = True) -> Iterator[Database]:
    """The platform database, brought up to the current schema unless ``migrate`` is False."""
    # Imported here: psycopg and the settings are not needed by `hie validate`.
    from hie.config import load_settings
    from hie.storage import open_database

    with reported_errors():
        settings = settings or load_settings()
        db = open_database(settings, migrate=migrate)
    try:
        with reported_errors():
            yield db
    finally:
        db.close()
