"""``hie forward`` add, list, status and remove; ``hie worker`` starts the forwarder; the
``/api/forwarding/status`` endpoint."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pika
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hie.app import create_app
from hie.cli import app
from hie.config import Settings
from hie.events.broker import connection_parameters
from hie.forwarding.queues import queue_of
from hie.storage import open_database
from hie.storage.forwarding import Delivery, Destination, add_destination, record_attempt
from tests.dashboard.test_pages import sign_in
from tests.forwarding.conftest import HOSPITAL, admin_token


@pytest.fixture
def hie(city: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    assert city.database_url is not None and city.broker_url is not None
    monkeypatch.setenv("HIE_DATABASE_URL", city.database_url.get_secret_value())
    monkeypatch.setenv("HIE_DATA_DIR", str(city.data_dir))
    monkeypatch.setenv("HIE_BROKER_URL", city.broker_url.get_secret_value())
    monkeypatch.setenv("HIE_TASK_QUEUE", city.task_queue)
    monkeypatch.setenv("HIE_EVENTS_EXCHANGE", city.events_exchange)
    runner = CliRunner()

    def run(*args: str, expect: int = 0) -> Any:
        result = runner.invoke(app, list(args))
        assert result.exit_code == expect, result.output
        return result

    return run


def publish(city: Settings, key: str, body: dict[str, Any]) -> None:
    assert city.broker_url is not None
    connection = pika.BlockingConnection(connection_parameters(city.broker_url.get_secret_value()))
    connection.channel().basic_publish(city.events_exchange, key, json.dumps(body).encode())
    connection.close()


def test_destinations_round_trip_with_their_queue(hie: Any, city: Settings) -> None:
    added = hie(
        "forward", "add", "province", "https://fhir.example.org/fhir/",
        "--token-env", "PROVINCE_TOKEN", "--tables", "C0002", "--tables", "FHIR.Patient",
    )  # fmt: skip
    assert "C0002, FHIR.Patient" in added.output
    listed = json.loads(hie("forward", "list", "--json").output)
    assert listed == [
        {
            "name": "province",
            "url": "https://fhir.example.org/fhir",
            "token_env": "PROVINCE_TOKEN",
            "tables": ["C0002", "FHIR.Patient"],
            "documents": "mhd",
        }
    ]
    again = hie(
        "forward", "add", "province", "https://x.example/fhir", "--token-env", "T", expect=1
    )
    assert "exists already" in again.output
    bad = hie(
        "forward", "add", "Bad Name", "ftp://x", "--token-env", "1X", "--tables", "NOPE",
        "--documents", "zip", expect=1,
    )  # fmt: skip
    for field in ("field name", "field url", "field token-env", "NOPE", "field documents"):
        assert field in bad.output

    # The queue was made at once: events of its tables wait in it before any forwarder runs.
    publish(city, "record.accepted.hospital.C0002", {"event_id": "1"})
    publish(city, "record.accepted.district.FHIR_Patient", {"event_id": "2"})
    publish(city, "record.accepted.hospital.C0053", {"event_id": "3"})  # not forwarded
    publish(city, "record.rejected.hospital.C0002", {"event_id": "4"})  # not forwarded
    status = json.loads(hie("forward", "status", "--json").output)
    assert [(s["name"], s["pending"], s["sent"], s["failed"], s["queued"]) for s in status] == [
        ("province", 2, 0, 0, 2)
    ]
    text = hie("forward", "status").output
    assert "province" in text and "PROVINCE_TOKEN" not in text

    regulator = admin_token(city, "regulator")
    with TestClient(create_app(city.model_copy(update={"broker_url": None}))) as client:
        answer = client.get(
            "/api/forwarding/status", headers={"Authorization": f"Bearer {regulator}"}
        )
        assert answer.status_code == 200
        (row,) = answer.json()["destinations"]
        assert (row["name"], row["pending"], row["sent"], row["failed"]) == ("province", 0, 0, 0)
        assert row["queued"] is None  # this app has no broker to ask
        assert client.get("/api/forwarding/status").status_code == 401

    assert "0 failed records sent again" in hie("forward", "retry", "province").output
    assert "no destination named 'nope'" in hie("forward", "retry", "nope", expect=1).output

    hie("forward", "remove", "province")
    assert json.loads(hie("forward", "list", "--json").output) == []
    assert (
        "no destination named 'province'" in hie("forward", "remove", "province", expect=1).output
    )
    assert city.broker_url is not None
    connection = pika.BlockingConnection(connection_parameters(city.broker_url.get_secret_value()))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        connection.channel().queue_declare(queue_of(city.task_queue, "province"), passive=True)
    connection.close()


def test_hie_worker_starts_the_forwarder_beside_the_others(tmp_path: Path) -> None:
    from hie.cli.worker import commands

    every = commands("hie", str(tmp_path), only=None, queues=None, concurrency=None)
    assert every[-1][-3:] == ["hie", "forward", "run"]
    alone = commands("hie", str(tmp_path), only="forwarder", queues=None, concurrency=None)
    assert alone == [every[-1]]


def test_the_dashboard_shows_each_destination_to_regulators(city: Settings) -> None:
    database = open_database(city, migrate=False)
    with database.transaction() as tx:
        add_destination(tx.conn, Destination("province", "https://p.example/fhir", "T", None))
        delivery = Delivery(uuid.uuid4(), HOSPITAL, "C0002", "1.2.3^doc-9", 1)
        record_attempt(tx.conn, "province", delivery, "failed", error="HTTP 422: no", status=422)
        for _ in range(2):
            sent = Delivery(uuid.uuid4(), HOSPITAL, "FHIR.Patient", "Patient/p", 1)
            record_attempt(tx.conn, "province", sent, "sent", status=201)
    database.close()
    app_settings = city.model_copy(update={"broker_url": None})
    with TestClient(create_app(app_settings), follow_redirects=False) as client:
        sign_in(client, admin_token(city, "regulator"))
        page = client.get("/dashboard/forwarding", params={"lang": "en"})
        assert page.status_code == 200
        row = page.text.split('data-name="province"')[1].split("</tr>")[0]
        cells = [c.split("<")[0] for c in row.split('class="num">')[1:]]
        assert cells[1:] == ["2", "1"]  # sent, failed
        assert "1.2.3^doc-9 v1" in page.text and "HTTP 422: no" in page.text
        assert 'id="nav-forwarding"' in page.text
    with TestClient(create_app(app_settings), follow_redirects=False) as client:
        sign_in(client, admin_token(city, "submitter"), "/dashboard/institutions/" + HOSPITAL)
        assert client.get("/dashboard/forwarding").status_code == 403
