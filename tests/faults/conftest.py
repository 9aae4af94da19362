"""Fault tests: real processes (a private PostgreSQL, ``hie serve``, ``hie push``) and a
dependency taken away while they work.

The PostgreSQL here is this test's own, from pgserver's bundled binaries, on a temporary folder
and a free port: stopping it disturbs nobody. The shared test server is never stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hie.server import free_port

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
