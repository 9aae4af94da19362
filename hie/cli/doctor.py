"""``hie doctor``: check what hie needs on this machine and say what to fix."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Annotated

import httpx
import psycopg
import typer

from hie import __version__
from hie.cli.context import console
from hie.config import Settings, load_settings
from hie.errors import ConfigError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    blocking: bool = True  # a failed non-blocking check is a warning: exit code stays 0


def _python() -> Check:
    version = ".".join(str(n) for n in sys.version_info[:3])
    return Check("python", sys.version_info >= (3, 11), f"Python {version} ({sys.executable})")


def _database(settings: Settings) -> Check:
    from hie.storage import open_database
    from hie.storage.embedded import embedded_state
    from hie.storage.migrator import applied, available

    if settings.embedded:
        state = embedded_state(settings.embedded_pgdata)
        where = f"embedded PostgreSQL in {state.pgdata}"
        if not state.initialised:
            # Checking must not create it: say where the first command that needs it will.
            return Check("database", True, f"{where}: not created yet (the first command will)")
        if state.pid is not None:
            where += f" (running, postgres pid {state.pid})"
    else:
        where = "HIE_DATABASE_URL"
        assert settings.database_url is not None  # noqa: S101 (not embedded)
        try:
            # One plain attempt first: the pool would retry for 30 s before saying anything.
            psycopg.connect(settings.database_url.get_secret_value(), connect_timeout=5).close()
        except psycopg.Error as exc:
            return Check(
                "database",
                False,
                f"{where}: {str(exc).strip()}",
                "check HIE_DATABASE_URL (or unset it for the embedded database) and that "
                "PostgreSQL answers there",
            )
    try:
        database = open_database(settings, migrate=False)
    except Exception as exc:  # any failure to connect is what this check reports
        return Check(
            "database",
            False,
            f"{where}: {type(exc).__name__}: {exc}".strip(),
            "check HIE_DATABASE_URL (or unset it for the embedded database) and that "
            "PostgreSQL answers; for the embedded one, that HIE_DATA_DIR is writable",
        )
    try:
        with database.connection() as conn:
            done = applied(conn)
    finally:
        database.close()
    pending = [m for m in available() if m.version not in done]
    if pending:
        return Check(
            "database",
            False,
            f"{where}: {len(pending)} migration(s) pending",
            "run: hie db upgrade (any hie command that opens the database also applies them)",
            blocking=False,
        )
    return Check("database", True, f"{where}: schema at version {max(done, default=0)}")


def _broker(settings: Settings) -> Check:
    from hie.workers import broker_status, configure

    status = broker_status(configure(settings))
    if status["mode"] == "in-process":
        return Check("broker", True, "none configured: tasks run in-process (HIE_BROKER_URL)")
    if status["status"] == "ok":
        return Check("broker", True, "RabbitMQ answers at HIE_BROKER_URL")
    return Check(
        "broker",
        False,
        f"RabbitMQ at HIE_BROKER_URL does not answer ({status.get('error', '')})",
        "start RabbitMQ, fix HIE_BROKER_URL, or unset it to run tasks in-process",
    )


def _secret_key(settings: Settings) -> Check:
    if settings.embedded and settings.secret_key is None:
        return Check("secret key", True, "generated and kept in the data folder (embedded mode)")
    try:
        settings.session_secret()
    except ConfigError as exc:
        return Check(
            "secret key",
            False,
            str(exc),
            "export HIE_SECRET_KEY=$(python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(48))')",
        )
    return Check("secret key", True, "HIE_SECRET_KEY is set")


def _fonts() -> Check:
    fix = (
        "install CJK fonts, e.g. apt-get install fonts-noto-cjk (Debian, Ubuntu) or "
        "dnf install google-noto-sans-cjk-fonts; otherwise browsers on this machine and the "
        "dashboard's screenshots show Chinese labels as boxes"
    )
    if shutil.which("fc-list") is None:
        return Check("fonts", False, "fontconfig (fc-list) not found", fix, blocking=False)
    listed = subprocess.run(
        ["fc-list", ":lang=zh", "family"],  # noqa: S607 (fontconfig from PATH, as a shell would)
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    families = sorted({line.split(",")[0] for line in listed.stdout.splitlines() if line})
    if not families:
        return Check("fonts", False, "no font with Chinese characters", fix, blocking=False)
    shown = ", ".join(families[:3]) + (" ..." if len(families) > 3 else "")
    return Check("fonts", True, f"Chinese fonts: {shown}")


def _port(port: int) -> Check:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            pass
        else:
            return Check("port", True, f"{port} is free on 127.0.0.1")
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
        taken = f"hie {answer['version']} answers there" if "version" in answer else "not hie"
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        taken = "something that is not hie listens there"
    return Check(
        "port",
        False,
        f"{port} is taken on 127.0.0.1: {taken}",
        "stop it (a hie demo or hie serve stops with Ctrl-C), or use another port: "
        "hie serve --port 8001, hie demo --port 0",
        blocking=False,
    )


def doctor(
    port: Annotated[int, typer.Option(help="The port hie serve would listen on.")] = 8000,
) -> None:
    """Check Python, the settings, the database, the broker, the secret key, fonts and the
    port, and say what to fix. Exit code 1 when something would stop hie from running."""
    console.print(f"hie {__version__}")
    checks = [_python()]
    try:
        settings = load_settings()
    except ConfigError as exc:
        checks.append(Check("settings", False, str(exc), "fix the HIE_* variables named"))
    else:
        checks += [_database(settings), _broker(settings), _secret_key(settings)]
    checks += [_fonts(), _port(port)]
    for check in checks:
        mark = "ok" if check.ok else ("FAIL" if check.blocking else "warn")
        colour = "green" if check.ok else ("red" if check.blocking else "yellow")
        console.print(f"[{colour}]{mark:>4}[/] {check.name}: ", end="", highlight=False)
        console.print(check.detail, markup=False, highlight=False)
        if check.fix:
            console.print(f"      fix: {check.fix}", markup=False, highlight=False)
    raise typer.Exit(1 if any(not c.ok and c.blocking for c in checks) else 0)
