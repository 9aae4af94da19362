"""Forwarding a city's month to the province, as real processes: the province is `hie` served by
uvicorn on a database of its own; the city's relay and forwarder run as `hie events relay` and
`hie forward run` beside RabbitMQ. The forwarder is killed (SIGKILL) mid-stream, the province is
stopped, a new forwarder retries against it, and the province comes back: at the end the
province holds every record version the city accepted, once, and counts the same figures for
every institution."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pika
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from hie.app import create_app
from hie.config import Settings
from hie.events.broker import connection_parameters
from hie.forwarding.queues import queue_of
from hie.metrics.report import compute_month
from hie.server import free_port
from hie.storage import open_database
from hie.storage.catalog import current_catalog
from hie.synth.month import Upload, plan_month
from hie.validators.cda_rules.content import default_content_rules
from tests.faults.conftest import clean_env, register_region

pytestmark = pytest.mark.fault

MONTH = date(2019, 7, 1)
HIE = [sys.executable, "-m", "hie"]
# The report's figures that must be equal (records and tables differ by design: the province
# also keeps the DocumentReference each CDA document arrived in).
FIGURES = (
    "outpatient_visits",
    "discharges",
    "health_records",
    "upload_days",
    "persons_without_id",
    "timeliness",
)


def upload(client: TestClient, token: str, item: Upload) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    if item.channel == "fhir":
        answer = client.post(
            "/fhir",
            content=item.body,
            headers={
                **auth,
                "Content-Type": "application/fhir+json",
                "X-HIE-Institution": item.institution,
                "X-HIE-Received-At": item.received_at.isoformat(),
            },
        )
    else:
        answer = client.post(
            "/cda",
            content=item.body,
            params={"institution": item.institution, "received_at": item.received_at.isoformat()},
            headers={**auth, "Content-Type": "application/hl7-cda+xml"},
        )
    assert answer.status_code < 500, answer.text


def query(settings: Settings, sql: str) -> list[dict[str, Any]]:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value(), row_factory=dict_row) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def sent(city: Settings) -> int:
    rows = query(city, "select count(*) as n from forward_delivery where state = 'sent'")
    return int(rows[0]["n"])


def wait_for(check: Callable[[], bool], what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def figures(settings: Settings) -> dict[str, dict[str, Any]]:
    database = open_database(settings, migrate=False)
    with database.connection() as conn:
        report = compute_month(conn, MONTH, settings.zone).to_json()
    database.close()
    return {row["institution"]: {k: row[k] for k in FIGURES} for row in report["rows"]}


class Processes:
    """Child processes of the test, stopped at teardown; each one's output in a log file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if process.poll() is None:
            process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        for process in self.started:
            self.stop(process)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.close()


def serve(processes: Processes, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    web = [
        sys.executable, "-m", "uvicorn", "hie.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    process = processes.start("province", web, env)

    def up() -> bool:
        assert process.poll() is None, "the province did not start"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, "the province to answer", 60)
    return process


def test_a_month_forwarded_to_the_province_arrives_whole_and_once(
    make_database: Callable[[], str],
    broker_url: str,
    queue_prefix: str,
    tmp_path: Path,
    processes: Processes,
) -> None:
    exchange = f"hie.events.test.{uuid.uuid4().hex}"
    city = Settings(
        database_url=make_database(),
        data_dir=tmp_path / "city",
        secret_key=secrets.token_urlsafe(48),
    )
    province = Settings(
        database_url=make_database(),
        data_dir=tmp_path / "province",
        secret_key=secrets.token_urlsafe(48),
    )
    catalog = _catalog(city)
    plan = plan_month(MONTH, catalog, default_content_rules(), seed=11, scale=0.02)
    city_token = register_region(city, plan)
    province_token = register_region(province, plan)

    port = free_port()
    province_env = clean_env(
        HIE_DATABASE_URL=province.database_url.get_secret_value(),  # type: ignore[union-attr]
        HIE_DATA_DIR=province.data_dir,
        HIE_SECRET_KEY=province.secret_key.get_secret_value(),  # type: ignore[union-attr]
    )
    city_env = clean_env(
        HIE_DATABASE_URL=city.database_url.get_secret_value(),  # type: ignore[union-attr]
        HIE_DATA_DIR=city.data_dir,
        HIE_BROKER_URL=broker_url,
        HIE_TASK_QUEUE=queue_prefix,
        HIE_EVENTS_EXCHANGE=exchange,
        PROVINCE_TOKEN=province_token,
        PYTHONUNBUFFERED=1,
    )
    queue = queue_of(queue_prefix, "province")
    try:
        web = serve(processes, province_env, port)
        add = [
            *HIE, "forward", "add", "province", f"http://127.0.0.1:{port}/fhir",
            "--token-env", "PROVINCE_TOKEN", "--documents", "inline",
        ]  # fmt: skip
        added = subprocess.run(add, env=city_env, capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr

        # The city's month, uploaded while only the relay runs: the events wait in the queue.
        processes.start("relay", [*HIE, "events", "relay"], city_env)
        with TestClient(create_app(city)) as client:
            for item in plan.uploads:
                upload(client, city_token, item)
        events = query(
            city,
            "select count(*) as n, count(distinct event_id) as ids from event_outbox"
            " where outcome = 'accepted'",
        )[0]
        total = int(events["n"])
        assert total > 50

        forwarder = processes.start("forwarder-1", [*HIE, "forward", "run"], city_env)
        wait_for(lambda: sent(city) >= total // 4, "a quarter forwarded")
        processes.stop(forwarder, signal.SIGKILL)  # mid-stream, nothing finished cleanly
        killed_at = sent(city)
        assert killed_at < total
        # The province goes away too; the next forwarder finds it down and keeps retrying.
        processes.stop(web)
        processes.start("forwarder-2", [*HIE, "forward", "run"], city_env)
        retried = "select count(*) as n from forward_delivery where state = 'pending'"
        wait_for(lambda: query(city, retried)[0]["n"] > 0, "a retry against the stopped province")
        time.sleep(2)
        assert sent(city) == killed_at
        serve(processes, province_env, port)
        wait_for(lambda: sent(city) == total, "every record forwarded")

        status = subprocess.run(
            [*HIE, "forward", "status", "--json"],
            env=city_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        assert '"failed": 0' in status.stdout and f'"sent": {total}' in status.stdout
    finally:
        processes.close()  # first: a running forwarder or relay would declare them again
        _remove(broker_url, queue, exchange)

    # Every accepted record version has exactly one event.
    versions = query(city, "select count(*) as n from record_version")[0]["n"]
    assert events["ids"] == events["n"] == versions == total
    # The province has every version the city has, once: nothing lost, nothing duplicated
    # (a resend found its record unchanged and wrote no new version).
    record_sql = (
        "select institution_code, logical_id, version from record_version"
        " where logical_id not like 'DocumentReference/%' order by 1, 2, 3"
    )
    assert query(province, record_sql) == query(city, record_sql)
    documents = "select count(*) as n from record_version where raw_xml is not null"
    references = query(
        province,
        "select count(*) as n, count(distinct logical_id) as ids from record_version"
        " where logical_id like 'DocumentReference/%'",
    )[0]
    assert references["n"] == references["ids"] == query(city, documents)[0]["n"]
    # The same figures for every institution.
    theirs, ours = figures(province), figures(city)
    diff = {
        (code, k): (theirs[code][k], v)
        for code, row in ours.items()
        for k, v in row.items()
        if theirs[code][k] != v
    }
    assert not diff


def _catalog(settings: Settings) -> Any:
    database = open_database(settings)
    with database.connection() as conn:
        catalog = current_catalog(conn)
    database.close()
    return catalog


def _remove(broker_url: str, queue: str, exchange: str) -> None:
    connection = pika.BlockingConnection(connection_parameters(broker_url))
    try:
        channel = connection.channel()
        channel.queue_delete(queue=queue)
        channel.exchange_delete(exchange=exchange)
    finally:
        connection.close()
