"""The README's main command, ``hie serve`` on the embedded default, driven as a user would:
institutions and tokens made with the CLI, used over HTTP, and back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hie.server import free_port


def run_hie(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hie", *args], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.timeout(600)
def test_serve_on_the_embedded_default_round_trips_with_the_cli(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
    env["HIE_DATA_DIR"] = str(tmp_path / "data")
    run_hie(env, "institutions", "add", "D1", "--name", "玄武区", "--kind", "district")
    run_hie(env, "institutions", "add", "H1", "--name", "南京市中心医院", "--kind", "hospital")
    submitter = run_hie(env, "tokens", "create", "H1", "--role", "submitter").strip()
    admin = run_hie(env, "tokens", "create", "--role", "admin").strip()

    port = free_port()
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "hie", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "hie serve did not answer within 120 s"
                time.sleep(0.3)
        assert health.status_code == 200
        assert health.json()["database"]["status"] == "ok"

        with httpx.Client(base_url=base, timeout=30) as client:
            as_h1 = {"Authorization": f"Bearer {submitter}"}
            as_admin = {"Authorization": f"Bearer {admin}"}
            assert (
                client.get("/api/institutions/H1", headers=as_h1).json()["name"] == "南京市中心医院"
            )
            assert client.get("/api/institutions/D1", headers=as_h1).status_code == 403
            assert client.get("/api/institutions/H1").status_code == 401
            put = client.put(
                "/api/institutions/H1/declaration", json={"tables": ["C0053"]}, headers=as_h1
            )
            assert put.status_code == 200
            created = client.post(
                "/api/institutions",
                json={"code": "H2", "name": "江苏省中医院", "kind": "hospital", "district": "D1"},
                headers=as_admin,
            )
            assert created.status_code == 201
        # What HTTP changed, the CLI sees (the CLI joins the running embedded server).
        assert "H1: 1 table(s) C0053" in run_hie(env, "declarations", "show", "H1")
        assert "江苏省中医院" in run_hie(env, "institutions", "list")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
    # uvicorn shuts down gracefully, then exits by the signal it was sent.
    assert server.returncode in (0, -signal.SIGTERM)
    # The last process using the embedded server has gone, and the server with it.
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists()


@pytest.mark.timeout(600)
def test_demo_serves_the_bulletin_month_and_sigterm_stops_it_and_its_database(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
    env["HIE_DATA_DIR"] = str(tmp_path / "data")
    port = free_port()
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        demo = subprocess.Popen(
            [sys.executable, "-m", "hie", "demo", "--scale", "0.05", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 300
            while "Press Ctrl-C" not in log_path.read_text():
                assert demo.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.3)
            # The month the README shows, with its data; the printed address leads somewhere.
            assert "uploads for 2019-07" in log_path.read_text()
            root = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
            assert root.status_code == 307
            assert root.headers["location"] == "/dashboard"
            assert "/docs" in root.headers["link"]
        finally:
            demo.send_signal(signal.SIGTERM)
            demo.wait(timeout=60)
    assert demo.returncode == 128 + signal.SIGTERM, log_path.read_text()
    # Stopping the demo stops the embedded PostgreSQL it started.
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists()


@pytest.mark.timeout(600)
def test_serve_with_two_workers_on_the_embedded_default_answers_from_both(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
    env["HIE_DATA_DIR"] = str(tmp_path / "data")
    run_hie(env, "institutions", "add", "H1", "--name", "南京市中心医院", "--kind", "hospital")
    submitter = run_hie(env, "tokens", "create", "H1", "--role", "submitter").strip()
    port = free_port()
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "hie", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    clients: list[httpx.Client] = []
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while len(workers) < 2 or not all(_answers(base) for _ in range(3)):
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "hie serve --workers 2 did not start both"
            workers = [
                c.pid
                for c in psutil.Process(server.pid).children()
                if "spawn_main" in " ".join(c.cmdline())  # not multiprocessing's helpers
            ]
            time.sleep(0.3)
        assert len(workers) == 2, workers
        # Keep opening connections (each held open) until both processes hold one of them:
        # each of them accepted and answered.
        answered_by: set[int] = set()
        while answered_by != set(workers) and len(clients) < 60:
            client = httpx.Client(base_url=base, timeout=30)
            clients.append(client)
            patient = {"resourceType": "Patient", "name": [{"family": "王"}]}
            created = client.post(
                "/fhir/Patient",
                json=patient,
                headers={"Authorization": f"Bearer {submitter}"},
            )
            assert created.status_code == 201, created.text
            local = client.get("/healthz")
            assert local.status_code == 200
            for pid in workers:
                held = psutil.Process(pid).net_connections(kind="tcp")
                if any(c.laddr.port == port and c.status == "ESTABLISHED" for c in held):
                    answered_by.add(pid)
        assert answered_by == set(workers), f"only {answered_by} of {workers} answered"
    finally:
        for client in clients:
            client.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
    assert server.returncode in (0, -signal.SIGTERM), log_path.read_text()
    # Both workers have left the embedded server, and it has stopped.
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists()


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False
