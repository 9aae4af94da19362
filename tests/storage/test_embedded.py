"""The embedded default: no configuration, a PostgreSQL of its own in the data folder, kept."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from hie.server import free_port


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


def start_together(
    data_dir: Path, count: int, *args: str
) -> list[subprocess.CompletedProcess[str]]:
    """``count`` hie processes started at the same moment on one data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
    env["HIE_DATA_DIR"] = str(data_dir)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hie", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


@pytest.mark.timeout(900)
def test_processes_started_together_on_a_fresh_and_an_old_data_folder_all_succeed(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    # Fresh: nothing in the folder; all of them race to make PostgreSQL's folder, run initdb,
    # create the hie database and migrate.
    for run in start_together(data_dir, 4, "db", "upgrade"):
        assert run.returncode == 0, run.stderr
        assert "schema at version" in run.stdout
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    # Old: the server is stopped and the schema current; they race to start it again.
    for run in start_together(data_dir, 4, "institutions", "list"):
        assert run.returncode == 0, run.stderr
    status = hie(data_dir, "db", "status")
    assert status.returncode == 0, status.stderr
    assert "pending" not in status.stdout
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


def wait_until_serving(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.poll() is None and time.monotonic() < deadline
        time.sleep(0.3)


@pytest.mark.timeout(600)
def test_a_server_left_by_a_killed_process_is_reported_and_stopped(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pgdata = data_dir / "postgres"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
    env["HIE_DATA_DIR"] = str(data_dir)
    port = free_port()
    server = subprocess.Popen(
        # One process: killed, it leaves the server running (workers of a supervisor end
        # with it, next test).
        [sys.executable, "-m", "hie", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_serving(server, port)
    finally:
        server.kill()  # SIGKILL: nothing of hie runs to stop PostgreSQL
        server.wait(timeout=60)
    status = hie(data_dir, "db", "status")
    assert status.returncode == 0, status.stderr
    assert "running (postgres pid" in status.stdout
    assert "hie processes using it: none" in status.stdout
    # A later command forgets the dead process: when it ends, the server stops with it.
    listed = hie(data_dir, "institutions", "list")
    assert listed.returncode == 0, listed.stderr
    assert not (pgdata / "postmaster.pid").exists()

    # hie db stop, for a server left running: here one started and held by a killed process.
    server = subprocess.Popen(
        # One process: killed, it leaves the server running (workers of a supervisor end
        # with it, next test).
        [sys.executable, "-m", "hie", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_serving(server, port)
    finally:
        server.kill()
        server.wait(timeout=60)
    stopped = hie(data_dir, "db", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped the embedded PostgreSQL" in stopped.stdout
    assert not (pgdata / "postmaster.pid").exists()
    assert "stopped (it starts with" in hie(data_dir, "db", "status").stdout


def test_killing_the_supervisor_of_several_workers_leaves_nothing_running(tmp_path: Path) -> None:
    """``hie serve --workers 2`` killed with SIGKILL: its workers notice, shut down (closing
    their connections) and, the last holders gone, the embedded PostgreSQL stops too."""
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
    env["HIE_DATA_DIR"] = str(data_dir)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "hie", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_serving(server, port)
        workers = psutil.Process(server.pid).children()
        assert len([w for w in workers if "spawn_main" in " ".join(w.cmdline())]) == 2
    finally:
        server.kill()
        server.wait(timeout=60)
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, [p.cmdline() for p in alive]
    deadline = time.monotonic() + 60
    while (data_dir / "postgres" / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "stopped (it starts with" in hie(data_dir, "db", "status").stdout
