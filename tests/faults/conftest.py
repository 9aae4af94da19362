"""Fault tests: real processes (a private PostgreSQL or RabbitMQ, ``hie serve``, ``hie push``,
Celery workers) and a dependency taken away while they work.

The PostgreSQL here is this test's own, from pgserver's bundled binaries, on a temporary folder
and a free port; the RabbitMQ likewise, from the Debian package's scripts: stopping either
disturbs nobody. The shared test servers are never stopped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from hie.config import Settings
from hie.registry import Institution
from hie.server import free_port
from hie.storage import open_database
from hie.storage.declarations import set_declaration
from hie.storage.institutions import import_institutions
from hie.storage.tokens import create_token
from hie.synth.month import MonthPlan

# What makes `celery -A tests.faults.crashing_worker` kill the process working on an item.
POISON = "kill-the-worker-of-this-item"

# Run as root, PostgreSQL must run as another user; pgserver's embedded mode uses this one.
SYSTEM_USER = "pgserver"


class PrivatePostgres:
    """A PostgreSQL cluster of one test, stopped and started at will with ``pg_ctl``."""

    def __init__(self, folder: Path, port: int) -> None:
        with warnings.catch_warnings():
            # pgserver's import looks up a runtime folder and warns when XDG_RUNTIME_DIR is unset.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.folder = folder
        self.pgdata = folder / "data"
        self.log = folder / "postgres.log"
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self.user: str | None = None
        if os.geteuid() == 0:
            from pgserver.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            # As pgserver's embedded mode does: a user of its own that can run the binaries.
            entry = ensure_user_exists(SYSTEM_USER)
            assert entry is not None
            ensure_prefix_permissions(self.bin)
            ensure_folder_permissions(self.bin, 0o055)
            ensure_folder_permissions(self.bin.parent / "lib", 0o044)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            self.user = SYSTEM_USER

    def _run(self, program: str, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        done = subprocess.run(
            [str(self.bin / program), *args],
            env=env,
            user=self.user,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.folder,
        )
        assert done.returncode == 0, f"{program} failed:\n{done.stdout}\n{done.stderr}"

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=utf8",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c fsync=off -c max_connections=50"
        )
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.log), "-o", options, "-w", "start"
        )

    def stop(self) -> None:
        """``-m fast``: sessions are ended and open transactions rolled back, as at a restart."""
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # Under /tmp (sticky, world-traversable): the server's user needs no other folder opened.
    folder = Path(tempfile.mkdtemp(prefix="hie-fault-pg-"))
    server = PrivatePostgres(folder, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            with contextlib.suppress(AssertionError):
                server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def clean_env(**extra: Any) -> dict[str, str]:
    """The environment of a hie process: none of the developer's HIE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


# The Debian package's scripts, run directly (not the /usr/sbin wrapper, which switches to the
# rabbitmq user): the node runs as this process's user, on a folder of its own.
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class PrivateRabbitMQ:
    """A RabbitMQ node of one test, on free ports and a temporary folder, stopped (SIGTERM, a
    clean shutdown) and started again at will on the same data: its quorum queues survive."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.log = folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        plugins = folder / "enabled_plugins"
        plugins.write_text("")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")},
            # The Erlang cookie is written in HOME; a private HOME keeps it away from the
            # system node's, and -setcookie makes it explicit.
            "HOME": str(folder),
            "RABBITMQ_NODENAME": f"hie-test-{secrets.token_hex(4)}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_CONFIG_FILE": str(folder / "none"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"-setcookie hie{secrets.token_hex(8)}",
        }

    def start(self, timeout: float = 90) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(RABBITMQ_SERVER)],
                env=self.env,
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"RabbitMQ exited: {self.log.read_text()[-2000:]}"
            try:
                with Connection(self.url, connect_timeout=2) as connection:
                    connection.ensure_connection(max_retries=1)
                    return
            except Exception:
                assert time.monotonic() < deadline, "RabbitMQ did not start in time"
                time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM: the node closes its connections and shuts down cleanly."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self.process = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture
def private_rabbitmq() -> Iterator[PrivateRabbitMQ]:
    if not RABBITMQ_SERVER.exists():
        # As a missing shared broker: CI installs the package (.ci/run), so there it fails.
        message = "the rabbitmq-server package is not installed"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="hie-fault-mq-"))
    server = PrivateRabbitMQ(folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def register_region(settings: Settings, plan: MonthPlan) -> str:
    """The planned region's institutions and declarations; an admin token."""
    database = open_database(settings)
    try:
        with database.transaction() as tx:
            import_institutions(
                tx.conn,
                [Institution(m.code, m.name, m.kind, m.district) for m in plan.members],
                source="test",
                actor="t",
            )
            for code, tables in plan.declarations.items():
                if tables is not None:
                    set_declaration(tx.conn, code, tables, actor="t")
            return create_token(tx.conn, role="admin", institution_code=None, label="", actor="t")[
                1
            ]
    finally:
        database.close()
