"""Bulk jobs through RabbitMQ: the web app stores the upload and queues the job's id; a real
`celery -A hie.workers worker` process splits it and stores the items."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token
from hie.workers import configure
from tests.hospitals import auth
from tests.jobs.data import ndjson, resources

NDJSON = {"Content-Type": "application/fhir+ndjson"}


@pytest.fixture
def broker_client(worker: Settings) -> Iterator[tuple[TestClient, str]]:
    database = open_database(worker)
    code = f"W{secrets.token_hex(3)}"
    with database.transaction() as tx:
        add_institution(tx.conn, Institution(code, "医院", "hospital"), actor="t")
        token = create_token(tx.conn, role="submitter", institution_code=code, label="", actor="t")
    database.close()
    with TestClient(create_app(worker)) as client:
        yield client, token[1]


def test_a_worker_process_stores_an_import(broker_client: tuple[TestClient, str]) -> None:
    client, token = broker_client
    answer = client.post(
        "/fhir/$import",
        content=ndjson([*resources(30), "{broken"]),
        headers=auth(token, **NDJSON),
    )
    assert answer.status_code == 202, answer.text
    url = answer.headers["Content-Location"]
    deadline = time.monotonic() + 120
    while True:
        status = client.get(url, headers=auth(token))
        if status.status_code != 202 or time.monotonic() > deadline:
            break
        assert status.headers["X-Progress"].endswith("items")
        time.sleep(0.5)
    assert status.status_code == 200, status.text
    summary = status.json()
    assert (summary["accepted"], summary["rejected"]) == (30, 1)

    health = client.get("/healthz").json()
    queues = health["queues"]
    assert queues["mode"] == "rabbitmq" and queues["workers"] >= 1
    assert set(queues["queues"]) == {"ingest", "figures", "maintenance"}
    assert isinstance(queues["dead_letters"], int)


def test_hie_status_names_the_queues_and_their_workers(
    worker: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from hie.cli.main import app

    monkeypatch.setenv("HIE_DATABASE_URL", worker.database_url.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.setenv("HIE_BROKER_URL", worker.broker_url.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.setenv("HIE_TASK_QUEUE", worker.task_queue)
    monkeypatch.setenv("HIE_DATA_DIR", str(worker.data_dir))
    try:
        result = CliRunner().invoke(app, ["status", "--json"])
    finally:
        configure(worker)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["broker"]["status"] == "ok"
    assert body["queues"]["workers"] >= 1
    assert set(body["queues"]["queues"]) == {"ingest", "figures", "maintenance"}
