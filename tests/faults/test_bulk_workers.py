"""Bulk jobs through RabbitMQ to real Celery worker processes, with faults: a worker killed with
SIGKILL mid-batch, every message delivered twice to workers running side by side, PostgreSQL
restarted during an import, RabbitMQ stopped during an import and started again, a poison item
that kills its worker each time. Afterwards every acknowledged item is stored exactly once, the
invalid items are refused with their reasons, the poison item is in the dead letters with its
reason, and the month's figures equal those of the same data uploaded synchronously.

The broker is the shared RabbitMQ, with queues of this test's own (``HIE_TASK_QUEUE``); the
PostgreSQL and the RabbitMQ stopped are private ones."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hie.app import create_app
from hie.config import Settings
from hie.metrics.report import compute_month
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.declarations import set_declaration
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token
from hie.workers import configure
from hie.workers.app import QUEUES, queue_name
from tests.faults.conftest import POISON, PrivatePostgres, PrivateRabbitMQ, clean_env
from tests.jobs.data import ndjson, resources, zipped
from tests.rabbitmq import remove_queues

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "cda"
GULOU = "455755678"  # the custodian of the CDA fixtures
RECEIVED_AT = "2026-11-16T10:00:00+08:00"
MONTH = date(2026, 11, 1)
NDJSON = {"Content-Type": "application/fhir+ndjson"}


def lines(count: int) -> list[Any]:
    """Valid resources with a few refused lines among them (each refused for its own reason)."""
    out: list[Any] = list(resources(count))
    out.insert(7, "{not json")
    out.insert(50, {"resourceType": "Patient", "gender": "not-a-gender"})
    return out


def documents() -> dict[str, bytes]:
    names = ["C0001-valid.xml", "C0002-valid.xml", "C0003-valid.xml", "C0001-valid.xml"]
    entries = {f"{i}-{name}": (FIXTURES / name).read_bytes() for i, name in enumerate(names)}
    entries["broken.xml"] = b"<ClinicalDocument>"
    return entries


@dataclass
class Platform:
    settings: Settings
    admin: str
    folder: Path
    workers: list[subprocess.Popen[bytes]]

    def env(self) -> dict[str, str]:
        return clean_env(
            HIE_DATABASE_URL=self.settings.database_url.get_secret_value(),  # type: ignore[union-attr]
            HIE_BROKER_URL=self.settings.broker_url.get_secret_value(),  # type: ignore[union-attr]
            HIE_TASK_QUEUE=self.settings.task_queue,
            HIE_DATA_DIR=str(self.folder),
        )

    def start_worker(
        self, concurrency: int = 1, app: str = "hie.workers"
    ) -> subprocess.Popen[bytes]:
        number = len(self.workers)
        queues = ",".join(queue_name(self.settings, q) for q in QUEUES)
        with (self.folder / f"worker-{number}.log").open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    app,
                    "worker",
                    "-Q",
                    queues,
                    "--pool",
                    "prefork",
                    "--concurrency",
                    str(concurrency),
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--hostname",
                    f"{self.settings.task_queue}-{number}@%h",
                    "--loglevel",
                    "INFO",
                ],
                env=self.env(),
                cwd=ROOT,  # where `tests` is importable (the fault-injecting app)
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: SIGKILL reaches its children too
            )
        self.workers.append(process)
        return process

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)


def make_platform(database_url: str, broker_url: str, folder: Path) -> Platform:
    settings = Settings(
        database_url=database_url,
        broker_url=broker_url,
        task_queue=f"hie-fault-{secrets.token_hex(4)}",
        data_dir=folder,
        secret_key=secrets.token_urlsafe(48),
    )
    return Platform(settings, register(settings), folder, [])


def register(settings: Settings) -> str:
    database = open_database(settings)
    try:
        with database.transaction() as tx:
            add_institution(tx.conn, Institution(GULOU, "南京鼓楼医院", "hospital"), actor="t")
            set_declaration(tx.conn, GULOU, ["C0001", "C0002"], actor="t")
            return create_token(tx.conn, role="admin", institution_code=None, label="", actor="t")[
                1
            ]
    finally:
        database.close()


@pytest.fixture
def platform(
    make_database: Callable[[], str], broker_url: str, tmp_path: Path
) -> Iterator[Platform]:
    made = make_platform(make_database(), broker_url, tmp_path)
    try:
        yield made
    finally:
        made.stop_workers()
        configure(Settings(data_dir=tmp_path))
        remove_queues(broker_url, made.settings.task_queue)


def headers(token: str, **extra: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "X-HIE-Institution": GULOU,
        "X-HIE-Received-At": RECEIVED_AT,
        **extra,
    }


def post_jobs(client: TestClient, token: str, count: int) -> list[str]:
    return [post_import(client, token, count), post_batch(client, token)]


def post_import(client: TestClient, token: str, count: int) -> str:
    fhir = client.post(
        "/fhir/$import", content=ndjson(lines(count)), headers=headers(token, **NDJSON)
    )
    assert fhir.status_code == 202, fhir.text
    return str(fhir.headers["Content-Location"])


def post_batch(client: TestClient, token: str) -> str:
    cda = client.post(
        "/cda/batch",
        content=zipped(documents()),
        params={"received_at": RECEIVED_AT},
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/zip"},
    )
    assert cda.status_code == 202, cda.text
    return str(cda.headers["Content-Location"])


def wait_done(client: TestClient, token: str, url: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get(url, headers={"Authorization": f"Bearer {token}"})
        if answer.status_code == 200:
            return answer.json()
        time.sleep(0.5)
    raise AssertionError(f"job {url} not done within {timeout} s: {answer.text}")


def accepted_so_far(database_url: str, job_url: str) -> int:
    job = UUID(job_url.rsplit("/", 1)[1])
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select count(*) from bulk_job_item where job_id = %s and state <> 'pending'",
            (job,),
        ).fetchone()
    return int(row[0]) if row else 0


def stored_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {
            "records": conn.execute(
                "select count(*) from record_head where institution_code = %s", (GULOU,)
            ).fetchone()[0],  # type: ignore[index]
            "versions": conn.execute(
                "select count(*) from record_version where institution_code = %s", (GULOU,)
            ).fetchone()[0],  # type: ignore[index]
            "uploads": conn.execute(
                "select count(*) from upload where institution_code = %s", (GULOU,)
            ).fetchone()[0],  # type: ignore[index]
        }


def figures(settings: Settings) -> dict[str, Any]:
    database = open_database(settings)
    try:
        with database.connection() as conn:
            report = compute_month(conn, MONTH, settings.zone)
    finally:
        database.close()
    rows = [r.to_json() for r in report.rows if r.institution == GULOU]
    return json.loads(json.dumps(rows, default=str))


def synchronous_figures(database_url: str, folder: Path, count: int) -> dict[str, Any]:
    """The same data uploaded one request at a time, on the embedded-default app (no broker)."""
    settings = Settings(
        database_url=database_url, data_dir=folder, secret_key=secrets.token_urlsafe(48)
    )
    token = register(settings)
    with TestClient(create_app(settings)) as client:
        for line in ndjson(lines(count)).splitlines():
            try:
                resource = json.loads(line)
            except ValueError:
                resource = None
            if isinstance(resource, dict) and resource.get("id"):
                path = f"/fhir/{resource['resourceType']}/{resource['id']}"
                answer = client.put(path, content=line, headers=headers(token))
            else:
                kind = resource.get("resourceType", "Patient") if resource else "Patient"
                answer = client.post(f"/fhir/{kind}", content=line, headers=headers(token))
            assert answer.status_code < 500
        for data in documents().values():
            client.post(
                "/cda",
                content=data,
                params={"received_at": RECEIVED_AT},
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/hl7-cda+xml",
                },
            )
    return figures(settings)


def check_exactly_once(platform: Platform, summaries: list[dict[str, Any]], count: int) -> None:
    fhir, cda = summaries
    assert (fhir["accepted"], fhir["rejected"], fhir["failed"]) == (count, 2, 0)
    assert (cda["accepted"], cda["rejected"], cda["failed"]) == (4, 1, 0)
    url = platform.settings.database_url.get_secret_value()  # type: ignore[union-attr]
    stored = stored_counts(url)
    # Patients and Encounters once each, three distinct documents (one sent twice: unchanged).
    assert stored["records"] == count + 3
    assert stored["versions"] == count + 3
    # One upload row per item, as the synchronous endpoints write one per request.
    # (the broken document names no custodian: nobody to count it for, as on POST /cda)
    assert stored["uploads"] == count + 2 + 4


def test_worker_killed_mid_batch_and_messages_delivered_twice(
    platform: Platform, make_database: Callable[[], str], tmp_path: Path
) -> None:
    count = 600
    configure(platform.settings)
    with TestClient(create_app(platform.settings)) as client:
        urls = post_jobs(client, platform.admin, count)
        # Every job's first message sent twice: each split queues every range again.
        from hie.workers.ingest import split_job

        for url in urls:
            split_job.apply_async(args=(url.rsplit("/", 1)[1],))

        first = platform.start_worker(concurrency=2)
        db_url = platform.settings.database_url.get_secret_value()  # type: ignore[union-attr]
        deadline = time.monotonic() + 120
        while accepted_so_far(db_url, urls[0]) < 150 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert accepted_so_far(db_url, urls[0]) < count, "finished before the kill"
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool, mid-batch
        first.wait(30)
        platform.start_worker(concurrency=2)
        summaries = [wait_done(client, platform.admin, url) for url in urls]
    check_exactly_once(platform, summaries, count)
    assert figures(platform.settings) == synchronous_figures(make_database(), tmp_path, count)


def test_postgresql_restarted_during_an_import(
    private_postgres: PrivatePostgres,
    broker_url: str,
    make_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    count = 400
    made = make_platform(private_postgres.url, broker_url, tmp_path)
    configure(made.settings)
    try:
        with TestClient(create_app(made.settings)) as client:
            urls = post_jobs(client, made.admin, count)
            made.start_worker(concurrency=2)
            deadline = time.monotonic() + 120
            while accepted_so_far(private_postgres.url, urls[0]) < 80:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            private_postgres.stop()
            time.sleep(8)  # the workers retry with growing waits meanwhile
            private_postgres.start()
            summaries = [wait_done(client, made.admin, url) for url in urls]
        check_exactly_once(made, summaries, count)
        assert figures(made.settings) == synchronous_figures(make_database(), tmp_path, count)
    finally:
        made.stop_workers()
        configure(Settings(data_dir=tmp_path))
        remove_queues(broker_url, made.settings.task_queue)


def test_healthz_names_the_queues(platform: Platform) -> None:
    configure(platform.settings)
    platform.start_worker()
    with TestClient(create_app(platform.settings)) as client:
        deadline = time.monotonic() + 60
        while True:
            queues = client.get("/healthz").json()["queues"]
            if queues.get("workers", 0) >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert queues["workers"] >= 1
    assert queues["dead_letters"] == 0


def test_broker_down_when_a_job_is_accepted(
    make_database: Callable[[], str], broker_url: str, tmp_path: Path
) -> None:
    """The upload is stored and answered 202 even though its message cannot be sent; once the
    broker is back, `hie jobs retry` (or the sweep) sends the job and it completes."""
    from hie.jobs.service import retry_jobs
    from hie.server import free_port

    count = 40
    made = make_platform(make_database(), broker_url, tmp_path)
    dead = replace_broker(made.settings, f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    configure(dead)
    try:
        with TestClient(create_app(dead)) as client:
            answer = client.post(
                "/fhir/$import", content=ndjson(lines(count)), headers=headers(made.admin, **NDJSON)
            )
            assert answer.status_code == 202, answer.text
            url = answer.headers["Content-Location"]
            assert client.get(url, headers=headers(made.admin)).status_code == 202
        configure(made.settings)
        made.start_worker()
        database = open_database(made.settings)
        try:
            assert UUID(url.rsplit("/", 1)[1]) in retry_jobs(database)
        finally:
            database.close()
        with TestClient(create_app(made.settings)) as client:
            summary = wait_done(client, made.admin, url)
        assert (summary["accepted"], summary["rejected"]) == (count, 2)
        stored = stored_counts(made.settings.database_url.get_secret_value())  # type: ignore[union-attr]
        assert stored["records"] == count
    finally:
        made.stop_workers()
        configure(Settings(data_dir=tmp_path))
        remove_queues(broker_url, made.settings.task_queue)


def replace_broker(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"broker_url": SecretStr(url)})


def test_rabbitmq_stopped_during_an_import_and_started_again(
    private_rabbitmq: PrivateRabbitMQ, make_database: Callable[[], str], tmp_path: Path
) -> None:
    """The broker goes away with ranges in flight and queued: the workers reconnect when it is
    back, the quorum queues kept every message not yet acknowledged, and the ranges worked
    twice (their acknowledgement lost with the connection) store nothing twice. The web app,
    its connection to the broker gone meanwhile, queues the next upload's job at once."""
    # Six ranges of 200 lines, each written in one transaction: the import is still running
    # when the broker goes (with 400 lines the two first ranges could end it at once).
    count = 1200
    made = make_platform(make_database(), private_rabbitmq.url, tmp_path)
    configure(made.settings)
    try:
        with TestClient(create_app(made.settings)) as client:
            fhir = post_import(client, made.admin, count)
            made.start_worker(concurrency=1)
            made.start_worker(concurrency=1)
            db_url = made.settings.database_url.get_secret_value()  # type: ignore[union-attr]
            deadline = time.monotonic() + 120
            while accepted_so_far(db_url, fhir) < 60:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            private_rabbitmq.stop()
            assert accepted_so_far(db_url, fhir) < count, "finished before the broker stopped"
            time.sleep(6)  # the workers try to reconnect meanwhile
            private_rabbitmq.start()
            cda = post_batch(client, made.admin)
            # No beat (no sweep) runs here: the batch ends only if the app queued its job.
            summaries = [wait_done(client, made.admin, url) for url in (fhir, cda)]
        check_exactly_once(made, summaries, count)
        assert figures(made.settings) == synchronous_figures(make_database(), tmp_path, count)
    finally:
        made.stop_workers()
        configure(Settings(data_dir=tmp_path))
        if private_rabbitmq.running():
            remove_queues(private_rabbitmq.url, made.settings.task_queue)


def hie_cli(platform: Platform, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hie", *args],
        env={**platform.env(), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dead_letters(platform: Platform) -> int:
    from kombu import Connection

    dead = queue_name(platform.settings, "dead")
    with Connection(platform.settings.broker_url.get_secret_value()) as connection:  # type: ignore[union-attr]
        channel = connection.channel()
        try:
            return int(channel.queue_declare(dead, passive=True).message_count)
        except Exception:  # not declared yet
            return 0
        finally:
            with contextlib.suppress(Exception):
                channel.close()


def test_a_poison_item_is_dead_lettered_with_its_reason_while_the_rest_goes_through(
    platform: Platform,
) -> None:
    """One NDJSON line kills the worker process working on it, every time. RabbitMQ hands its
    range out again until the quorum queue's delivery limit dead-letters it; `hie jobs dead`
    records the dead letter on that line with the broker's reason and sends the rest of the
    range again; the job ends with every other line stored. `hie jobs retry` reruns the line
    once the crash is gone."""
    count = 300
    poison = resources(2, prefix="z")[0]
    poison["id"] = POISON
    body = lines(count)
    body.insert(230, poison)  # in the second range (items 200-), with good lines after it
    poison_line = body.index(poison) + 1
    configure(platform.settings)
    with TestClient(create_app(platform.settings)) as client:
        answer = client.post(
            "/fhir/$import", content=ndjson(body), headers=headers(platform.admin, **NDJSON)
        )
        assert answer.status_code == 202, answer.text
        url = answer.headers["Content-Location"]
        job = url.rsplit("/", 1)[1]
        platform.start_worker(app="tests.faults.crashing_worker")
        platform.start_worker(app="tests.faults.crashing_worker")
        deadline = time.monotonic() + 150
        while dead_letters(platform) < 1:
            assert time.monotonic() < deadline, "the poison range was not dead-lettered"
            time.sleep(1)
        dead = hie_cli(platform, "jobs", "dead")
        assert "1 dead letters recorded" in dead
        assert f"job {job} line {poison_line}: bulk.dead-letter" in dead
        assert "(delivery_limit)" in dead
        summary = wait_done(client, platform.admin, url, timeout=120)
        assert (summary["accepted"], summary["rejected"], summary["failed"]) == (count, 2, 1)
        assert dead_letters(platform) == 0
        url_db = platform.settings.database_url.get_secret_value()  # type: ignore[union-attr]
        assert stored_counts(url_db)["records"] == count
        # The operator's views: failures grouped by code, then the failed line with its reason.
        failed = hie_cli(platform, "jobs", "failed")
        assert f"job {job} line {poison_line}: bulk.dead-letter: items " in failed
        assert "(delivery_limit): handed out more than" in failed
        assert "its worker died each time" in failed
        listing = client.get(summary["error"], headers=headers(platform.admin)).json()
        [item] = [i for i in listing["items"] if i["state"] == "failed"]
        assert item["line"] == poison_line
        assert "delivery_limit" in item["outcome"]["issue"][0]["diagnostics"]

        # The crash fixed (workers without the fault), the line is rerun and stored.
        platform.stop_workers()
        platform.start_worker()
        assert f"job {job} started again" in hie_cli(platform, "jobs", "retry", job)
        summary = wait_done(client, platform.admin, url, timeout=120)
    assert (summary["accepted"], summary["rejected"], summary["failed"]) == (count + 1, 2, 0)
    assert stored_counts(url_db)["records"] == count + 1
