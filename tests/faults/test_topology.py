"""The production topology on one machine, as real processes: uvicorn with 2 worker processes,
2 Celery worker processes and beat (their command lines read from deploy/systemd), RabbitMQ and
PostgreSQL. A generated month is pushed through HTTP, part one upload at a time and part as bulk
CDA batches; the month's figures, computed by the figures queue, equal those of the embedded
default (no broker, one process) given the same uploads one at a time."""

from __future__ import annotations

import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime
from datetime import time as clock
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings
from hie.metrics.report import compute_month
from hie.storage import open_database
from hie.storage.catalog import current_catalog
from hie.synth.month import Upload, plan_month
from hie.validators.cda_rules.content import default_content_rules
from hie.workers import configure
from tests.faults.conftest import clean_env, register_region

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
MONTH = date(2019, 7, 1)


def unit_command(name: str, folder: Path, instance: str = "1") -> list[str]:
    """A unit's ExecStart as this checkout runs it: the virtualenv's programs, the test's
    folder for /var/lib/hie, the unit's specifiers filled in."""
    text = (UNITS / name).read_text()
    line = re.search(r"^ExecStart=(.+)$", text, re.MULTILINE)
    assert line is not None, name
    command = (
        line[1]
        .replace("/opt/hie/bin/", f"{Path(sys.executable).parent}/")
        .replace("/var/lib/hie", str(folder))
        .replace("%i", instance)
        .replace("%H", socket.gethostname())
    )
    return shlex.split(command)


def month_plan(settings: Settings) -> list[Upload]:
    database = open_database(settings)
    with database.connection() as conn:
        catalog = current_catalog(conn)
    database.close()
    plan = plan_month(MONTH, catalog, default_content_rules(), seed=11, scale=0.05)
    # One receipt time per day (noon, platform zone), so that a day's batch and the same
    # documents sent one by one arrive at the same moment.
    zone = settings.zone
    return [
        replace(
            u,
            received_at=datetime.combine(u.received_at.astimezone(zone).date(), clock(12), zone),
        )
        for u in plan.uploads
    ]


def send(client: httpx.Client | TestClient, token: str, upload: Upload) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    if upload.channel == "fhir":
        answer = client.post(
            "/fhir",
            content=upload.body,
            headers={
                **auth,
                "Content-Type": "application/fhir+json",
                "X-HIE-Institution": upload.institution,
                "X-HIE-Received-At": upload.received_at.isoformat(),
            },
        )
    else:
        answer = client.post(
            "/cda",
            content=upload.body,
            params={
                "institution": upload.institution,
                "received_at": upload.received_at.isoformat(),
            },
            headers={**auth, "Content-Type": "application/hl7-cda+xml"},
        )
    assert answer.status_code < 500, answer.text


def rows(report_json: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(report_json["rows"], key=lambda r: r["institution"])


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_production_topology_gives_the_embedded_defaults_figures(
    make_database: Callable[[], str],
    broker_url: str,
    tmp_path: Path,
    queue_prefix: str,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    # The reference: the embedded default's single process, every upload one at a time.
    reference = Settings(
        database_url=make_database(),
        data_dir=tmp_path / "ref",
        secret_key=secrets.token_urlsafe(48),
    )
    uploads = month_plan(reference)
    plan_members = plan_month(
        MONTH, _catalog(reference), default_content_rules(), seed=11, scale=0.05
    )
    token = register_region(reference, plan_members)
    configure(reference)
    with TestClient(create_app(reference)) as client:
        for upload in uploads:
            send(client, token, upload)
    database = open_database(reference)
    with database.connection() as conn:
        expected = compute_month(conn, MONTH, reference.zone).to_json()
    database.close()

    # The topology: every process on its own, configured from the environment.
    folder = tmp_path / "prod"
    folder.mkdir()
    prefix = queue_prefix
    settings = Settings(
        database_url=make_database(),
        broker_url=broker_url,
        task_queue=prefix,
        data_dir=folder,
        secret_key=secrets.token_urlsafe(48),
    )
    token = register_region(settings, plan_members)
    env = clean_env(
        HIE_DATABASE_URL=settings.database_url.get_secret_value(),  # type: ignore[union-attr]
        HIE_BROKER_URL=broker_url,
        HIE_TASK_QUEUE=prefix,
        HIE_DATA_DIR=str(folder),
        HIE_SECRET_KEY=settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
    )
    port = _free_port()
    web = [
        sys.executable, "-m", "uvicorn", "hie.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--log-level", "warning",
    ]  # fmt: skip
    commands = [
        web,
        unit_command("hie-worker@.service", folder, "1"),
        unit_command("hie-worker@.service", folder, "2"),
        unit_command("hie-beat.service", folder),
    ]
    for number, command in enumerate(commands):
        with (folder / f"process-{number}.log").open("ab") as log:
            processes.append(
                subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
            )
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=120) as client:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the web processes did not start"
            time.sleep(0.5)
        # Odd days' CDA documents in batches (one per institution and day), the rest one by one.
        batches: dict[tuple[str, datetime], list[Upload]] = defaultdict(list)
        for upload in uploads:
            if upload.channel == "cda" and upload.received_at.day % 2:
                batches[(upload.institution, upload.received_at)].append(upload)
            else:
                send(client, token, upload)
        jobs = []
        for (institution, moment), group in batches.items():
            buffer = BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for index, upload in enumerate(group):
                    archive.writestr(f"{index:04d}.xml", upload.body)
            answer = client.post(
                "/cda/batch",
                content=buffer.getvalue(),
                params={"institution": institution, "received_at": moment.isoformat()},
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/zip"},
            )
            assert answer.status_code == 202, answer.text
            jobs.append(answer.headers["Content-Location"])
        auth = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 600
        for url in jobs:
            while client.get(url, headers=auth).status_code == 202:
                assert time.monotonic() < deadline, f"{url} did not finish"
                time.sleep(1)
        # The figures, computed by a worker of the figures queue.
        computed = client.post(
            "/api/reports/completeness/compute", params={"month": "2019-07"}, headers=auth
        )
        assert computed.status_code == 202, computed.text
        deadline = time.monotonic() + 120
        while True:
            report = client.get(
                "/api/reports/completeness", params={"month": "2019-07"}, headers=auth
            )
            if report.status_code == 200:
                break
            assert time.monotonic() < deadline, report.text
            time.sleep(1)
    assert len(jobs) > 0
    assert rows(report.json()) == rows(expected)


def _catalog(settings: Settings) -> Any:
    database = open_database(settings)
    with database.connection() as conn:
        catalog = current_catalog(conn)
    database.close()
    return catalog


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
