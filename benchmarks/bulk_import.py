"""Bulk import of a generated NDJSON file (``POST /fhir/$import``) against synchronous
batch (or transaction) Bundles of the same resources, in one run: time and peak memory of each,
and the ratio of their rates.

Each path gets a scratch database of its own. The synchronous one: uvicorn with 2 worker
processes, 2 client threads posting Bundles (``--bundle`` entries each, ``--sync batch`` or
``transaction``). The bulk one: uvicorn (1 process) takes the NDJSON streamed from a file and
answers 202; ``--workers`` Celery worker processes (RabbitMQ at HIE_TEST_BROKER_URL) store the
items; with ``--workers 0`` the server's own thread does (the embedded default). Peak memory is
the largest resident size of each process tree (and of its largest process), sampled every
0.2 s. ``--no-sync`` measures the bulk path alone (the 100,000-item run).

    .venv/bin/python benchmarks/bulk_import.py [--items 10000] [--workers 2] [--bundle 1000]
    .venv/bin/python benchmarks/bulk_import.py --items 100000 --workers 2 --no-sync

Uses HIE_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
from kombu import Connection
from psycopg import sql

from hie.config import Settings
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token
from hie.synth.documents import Person, fhir_encounter, fhir_patient, resident_id
from hie.workers.app import QUEUES, queue_name

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def resources(count: int) -> Iterator[dict[str, Any]]:
    """Patients with ids (updates) and Encounters without (creates), half each."""
    for n in range(count // 2):
        gender = "1" if n % 2 else "2"
        birth = date(1940, 1, 1) + timedelta(days=n % 25000)
        person = Person(
            resident_id("320102", birth, n, gender), f"HR-{n}", f"病人{n}", gender, birth
        )
        yield fhir_patient(f"p{n}", person)
        encounter = fhir_encounter("x", f"p{n}", "AMB", "finished", START + timedelta(seconds=n))
        del encounter["id"]
        yield encounter


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Peak:
    """The largest resident size of each watched process tree, and of its largest process."""

    def __init__(self) -> None:
        self.trees: dict[str, psutil.Process] = {}
        self.peaks: dict[str, int] = {}
        self.largest: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, name: str, pid: int) -> None:
        self.trees[name] = psutil.Process(pid)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for name, root in list(self.trees.items()):
                try:
                    tree = [root, *root.children(recursive=True)]
                    sizes = [p.memory_info().rss for p in tree if p.is_running()]
                except psutil.Error:
                    continue
                self.peaks[name] = max(self.peaks.get(name, 0), sum(sizes))
                self.largest[name] = max(self.largest.get(name, 0), max(sizes, default=0))

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return self.peaks


class Platform:
    def __init__(self, admin_url: str, broker: str | None) -> None:
        self.admin_url = admin_url
        self.name = f"hie_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(self.name)))
        self.url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{self.name}"))
        self.prefix = f"hie-bench-{uuid.uuid4().hex[:6]}"
        self.folder = Path(tempfile.mkdtemp(prefix="hie-bench-"))
        settings = Settings(
            database_url=self.url, data_dir=self.folder, secret_key=secrets.token_urlsafe(48)
        )
        database = open_database(settings)
        with database.transaction() as tx:
            add_institution(tx.conn, Institution("BENCH", "基准医院", "hospital"), actor="bench")
            self.token = create_token(
                tx.conn, role="submitter", institution_code="BENCH", label="", actor="bench"
            )[1]
        database.close()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
        self.env |= {
            "HIE_DATABASE_URL": self.url,
            "HIE_SECRET_KEY": secrets.token_urlsafe(48),
            "HIE_DATA_DIR": str(self.folder),
            "HIE_TASK_QUEUE": self.prefix,
            "HIE_DB_POOL_MAX": "8",
        }
        self.broker = broker
        if broker:
            self.env["HIE_BROKER_URL"] = broker
        self.processes: list[subprocess.Popen[bytes]] = []

    def serve(self, workers: int) -> str:
        port = _free_port()
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [
                sys.executable,
                "-m",
                "uvicorn",
                "hie.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=self.env,
        )
        self.processes.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/fhir/metadata", timeout=2).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        sys.exit("uvicorn did not start")

    def celery(self, concurrency: int) -> subprocess.Popen[bytes]:
        queues = ",".join(queue_name(self.prefix, q) for q in QUEUES)
        process = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "hie.workers",
                "worker",
                "-Q",
                queues,
                "--concurrency",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "WARNING",
                "--hostname",
                f"{self.prefix}@%h",
            ],
            env=self.env,
        )
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.broker:
            # The run's own quorum queues: left behind, they pile up on the broker.
            with Connection(self.broker, connect_timeout=10) as connection:
                for name in (queue_name(self.prefix, q) for q in (*QUEUES, "dead")):
                    connection.default_channel.queue_delete(name)
                    connection.default_channel.exchange_delete(name)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(self.name))
            )


def synchronous(admin_url: str, items: int, bundle: int, kind: str) -> tuple[float, dict[str, int]]:
    platform = Platform(admin_url, None)
    peak = Peak()
    try:
        base = platform.serve(2)
        peak.watch("uvicorn", platform.processes[0].pid)
        headers = {
            "Authorization": f"Bearer {platform.token}",
            "Content-Type": "application/fhir+json",
        }
        work: list[list[dict[str, Any]]] = []
        current: list[dict[str, Any]] = []
        for resource in resources(items):
            request = (
                {"method": "PUT", "url": f"Patient/{resource['id']}"}
                if resource["resourceType"] == "Patient"
                else {"method": "POST", "url": resource["resourceType"]}
            )
            current.append(
                {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource, "request": request}
            )
            if len(current) == bundle:
                work.append(current)
                current = []
        if current:
            work.append(current)
        lock = threading.Lock()
        failures: list[str] = []

        def client() -> None:
            with httpx.Client(timeout=600) as http:
                while True:
                    with lock:
                        if not work:
                            return
                        entries = work.pop()
                    body = {"resourceType": "Bundle", "type": kind, "entry": entries}
                    answer = http.post(f"{base}/fhir", json=body, headers=headers)
                    if answer.status_code != 200:
                        failures.append(answer.text[:300])
                    elif kind == "batch":
                        refused = [
                            e["response"]["status"]
                            for e in answer.json()["entry"]
                            if not e["response"]["status"].startswith("2")
                        ]
                        if refused:
                            failures.append(f"batch entries refused: {refused[:3]}")

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if failures:
            sys.exit(f"{len(failures)} bundles failed, e.g. {failures[0]}")
        return elapsed, peak.stop()
    finally:
        platform.close()


def bulk(
    admin_url: str, items: int, workers: int, broker: str | None
) -> tuple[float, float, dict[str, Any], Peak]:
    platform = Platform(admin_url, broker if workers else None)
    peak = Peak()
    peak.watch("client", os.getpid())
    try:
        base = platform.serve(1)
        peak.watch("uvicorn", platform.processes[0].pid)
        if workers:
            worker = platform.celery(workers)
            peak.watch("celery", worker.pid)
        data = platform.folder / "import.ndjson"
        with data.open("wb") as out:
            for resource in resources(items):
                out.write(json.dumps(resource, ensure_ascii=False).encode() + b"\n")

        def stream() -> Iterator[bytes]:
            with data.open("rb") as source:
                while piece := source.read(256 * 1024):
                    yield piece

        if workers:
            # Timed from a running worker, as a city's uploads find theirs (not its start-up).
            deadline = time.monotonic() + 120
            while (
                httpx.get(f"{base}/healthz", timeout=10).json().get("queues", {}).get("workers", 0)
                < 1
            ):
                if time.monotonic() > deadline:
                    sys.exit("the Celery worker did not start")
                time.sleep(0.5)
        headers = {"Authorization": f"Bearer {platform.token}"}
        started = time.perf_counter()
        with httpx.Client(timeout=600) as http:
            answer = http.post(
                f"{base}/fhir/$import",
                content=stream(),
                headers={**headers, "Content-Type": "application/fhir+ndjson"},
            )
            if answer.status_code != 202:
                sys.exit(f"$import answered {answer.status_code}: {answer.text[:300]}")
            accepted = time.perf_counter() - started
            url = answer.headers["Content-Location"]
            while True:
                status = http.get(url, headers=headers)
                if status.status_code == 200:
                    break
                if status.status_code != 202:
                    sys.exit(f"job answered {status.status_code}: {status.text[:300]}")
                time.sleep(1.0)
        elapsed = time.perf_counter() - started
        peak.stop()
        return accepted, elapsed, status.json(), peak
    finally:
        platform.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000, help="resources (lines)")
    parser.add_argument(
        "--workers", type=int, default=2, help="Celery worker processes (0: the server's thread)"
    )
    parser.add_argument("--bundle", type=int, default=1000, help="entries per Bundle")
    parser.add_argument(
        "--sync", choices=("batch", "transaction"), default="batch", help="synchronous Bundles"
    )
    parser.add_argument("--no-sync", action="store_true", help="the bulk path alone")
    args = parser.parse_args()
    admin_url = os.environ.get(
        "HIE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    broker = os.environ.get("HIE_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    mib = 1024 * 1024
    print(f"cores: {os.cpu_count()}, items: {args.items}", flush=True)
    sync_seconds = None
    if not args.no_sync:
        sync_seconds, sync_peaks = synchronous(admin_url, args.items, args.bundle, args.sync)
        print(
            f"synchronous {args.sync} Bundles ({args.bundle} entries, uvicorn 2 processes, "
            f"2 clients): {sync_seconds:7.1f} s, {args.items / sync_seconds:6.0f} resources/s, "
            f"peak uvicorn {sync_peaks.get('uvicorn', 0) / mib:.0f} MiB",
            flush=True,
        )
    accepted, bulk_seconds, summary, peak = bulk(admin_url, args.items, args.workers, broker)
    where = f"{args.workers} Celery processes" if args.workers else "the server's thread"
    print(
        f"bulk $import ({where}): 202 after {accepted:.1f} s, done after {bulk_seconds:7.1f} s, "
        f"{args.items / bulk_seconds:6.0f} resources/s; accepted {summary['accepted']}, "
        f"rejected {summary['rejected']}, failed {summary['failed']}"
    )
    print(
        "peak memory (process tree / its largest process): "
        + ", ".join(
            f"{name} {rss / mib:.0f} / {peak.largest.get(name, 0) / mib:.0f} MiB"
            for name, rss in sorted(peak.peaks.items())
        )
    )
    if sync_seconds is not None:
        print(
            f"ratio bulk resources/s / synchronous {args.sync} resources/s: "
            f"{sync_seconds / bulk_seconds:.2f}"
        )


if __name__ == "__main__":
    main()
