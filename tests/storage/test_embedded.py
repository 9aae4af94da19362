"""The embedded default: no configuration, a PostgreSQL of its own in the data folder, kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def hie(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
    env["HIE_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "hie", *args], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.timeout(600)
def test_embedded_database_starts_stops_restarts_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pgdata = data_dir / "postgres"

    first = hie(data_dir, "institutions", "add", "D1", "--name", "玄武区", "--kind", "district")
    assert first.returncode == 0, first.stderr
    # The server stops with the last process that used it...
    assert not (pgdata / "postmaster.pid").exists()

    # ...and a later run starts it again on the same data.
    second = hie(data_dir, "declarations", "set", "D1", "HSDA00.01")
    assert second.returncode == 0, second.stderr
    listed = hie(data_dir, "institutions", "list")
    assert listed.returncode == 0, listed.stderr
    assert "玄武区" in listed.stdout
    assert not (pgdata / "postmaster.pid").exists()
    assert (data_dir / "secret_key").exists() is False  # only made when the HTTP app needs it
