"""The outbox: an event exists if and only if its record (or rejection) was committed, and the
relay publishes it to the exchange with the documented schema."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from hie.app import create_app
from hie.catalog import default_catalog_path, read_catalog
from hie.config import Settings
from hie.events.relay import Relay
from hie.ingest import Arrival, store_record
from hie.normalize import NormalizedRecord
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.declarations import set_declaration
from hie.storage.institutions import add_institution
from hie.storage.partitions import PartitionMaker
from hie.storage.tokens import create_token
from tests.events.conftest import Consumer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cda"
GULOU = "455755678"  # the custodian of the hospital fixtures
SCHEMA_KEYS = {
    "schema",
    "event_id",
    "type",
    "institution",
    "table",
    "record",
    "received_at",
    "upload_id",
    "link",
}


def outbox(settings: Settings) -> list[dict[str, object]]:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value(), row_factory=dict_row) as conn:
        return conn.execute("select * from event_outbox order by seq").fetchall()


@pytest.fixture
def token(event_settings: Settings) -> str:
    database = open_database(event_settings)
    try:
        with database.transaction() as tx:
            add_institution(tx.conn, Institution(GULOU, "南京鼓楼医院", "hospital"), actor="t")
            set_declaration(tx.conn, GULOU, ["C0001", "C0002"], actor="t")
            _, secret = create_token(
                tx.conn, role="submitter", institution_code=GULOU, label="", actor="t"
            )
    finally:
        database.close()
    return secret


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def relay_until_drained(settings: Settings) -> int:
    """Run the relay in a thread until the outbox is empty; the number it published."""
    assert settings.broker_url is not None
    database = open_database(settings, migrate=False)
    stop = threading.Event()
    relay = Relay(
        database, settings.broker_url.get_secret_value(), settings.events_exchange, idle=0.1
    )
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        for _ in range(600):
            if all(row["published_at"] is not None for row in outbox(settings)):
                break
            stop.wait(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
        database.close()
    return relay.published


def test_an_accepted_upload_is_one_event_published_with_the_documented_schema(
    client: TestClient, token: str, event_settings: Settings, consumer: Consumer
) -> None:
    headers = {"Content-Type": "application/hl7-cda+xml", "Authorization": f"Bearer {token}"}
    document = (FIXTURES / "C0002-valid.xml").read_bytes()
    created = client.post("/cda", content=document, headers=headers)
    assert created.status_code == 201, created.text
    receipt = created.json()
    assert client.post("/cda", content=document, headers=headers).status_code == 200  # replay

    rows = outbox(event_settings)
    assert [(r["outcome"], r["logical_id"], r["version"]) for r in rows] == [
        ("accepted", receipt["document"], 1)
    ]  # the replay stored nothing, so it announced nothing

    changed = document.replace("门（急）诊病历</title>".encode(), "门诊病历</title>".encode())
    assert client.post("/cda", content=changed, headers=headers).status_code == 409

    assert relay_until_drained(event_settings) == 2
    messages = consumer.drain()
    assert [key for key, _, _ in messages] == [
        "record.accepted.hospital.C0002",
        "record.rejected.hospital.C0002",
    ]
    (_, properties, accepted), (_, _, rejected) = messages
    assert set(accepted) == SCHEMA_KEYS
    assert accepted == {
        "schema": "hie.event/1",
        "event_id": str(rows[0]["event_id"]),
        "type": "record.accepted",
        "institution": {"code": GULOU, "kind": "hospital"},
        "table": "C0002",
        "record": {
            "kind": "cda",
            "document_id": receipt["document"],
            "version": 1,
            "replaces": None,
        },
        "received_at": datetime.fromisoformat(accepted["received_at"]).isoformat(),
        "upload_id": receipt["upload"],
        "link": f"cda/{receipt['upload']}",
    }
    assert properties.message_id == accepted["event_id"]
    assert properties.delivery_mode == 2 and properties.content_type == "application/json"
    assert rejected["type"] == "record.rejected" and rejected["record"] is None
    assert rejected["rules"] == ["cda.document.conflict"]
    # Identifiers only: no clinical content, no resident ID number.
    text = str(messages)
    assert "11010519491231002X" not in text and "<ClinicalDocument" not in text


def test_a_rolled_back_write_leaves_no_event(event_settings: Settings) -> None:
    database = open_database(event_settings)
    received = datetime(2019, 7, 10, 2, 0, tzinfo=UTC)
    PartitionMaker(database, event_settings.zone).ensure_for(received)
    with database.transaction() as tx:
        add_institution(tx.conn, Institution("H1", "医院", "hospital"), actor="t")
    table = read_catalog(default_catalog_path()).get("C0002")
    record = NormalizedRecord(kind="cda", table_code="C0002", logical_id="2.16.1^D1")

    class Abort(Exception):
        pass

    def write_then_fail() -> None:
        with database.transaction() as tx:
            stored = store_record(
                tx.conn,
                Arrival("H1", received, received.date(), uuid.uuid4()),
                table,
                record,
                content_sha256=hashlib.sha256(b"a").digest(),
                raw_xml=b"<a/>",
                immutable=True,
            )
            assert stored.result.written
            pending = tx.conn.execute("select count(*) as n from event_outbox").fetchone()
            assert pending is not None and pending["n"] == 1  # written with the record...
            raise Abort

    try:
        with pytest.raises(Abort):
            write_then_fail()
    finally:
        database.close()
    assert outbox(event_settings) == []  # ...and gone with it


def test_fhir_versions_deletes_and_refusals_are_events_in_order(
    client: TestClient, token: str, event_settings: Settings, consumer: Consumer
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    url = "/fhir/Patient/p1"
    assert client.put(url, json={"resourceType": "Patient", "id": "p1"}, headers=headers).is_success
    changed = {"resourceType": "Patient", "id": "p1", "gender": "female"}
    assert client.put(url, json=changed, headers=headers).is_success
    assert client.put(url, json=changed, headers=headers).is_success  # unchanged: no event
    assert client.delete(url, headers=headers).is_success
    bad = {"resourceType": "Patient", "id": "p2", "gender": "nonsense"}
    assert client.put("/fhir/Patient/p2", json=bad, headers=headers).status_code in (400, 422)

    assert relay_until_drained(event_settings) == len(outbox(event_settings))
    bodies = [body for _, _, body in consumer.drain()]
    accepted = [b for b in bodies if b["type"] == "record.accepted"]
    assert [(b["record"]["version"], b["record"]["deleted"]) for b in accepted] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    record = accepted[1]["record"]
    assert (record["kind"], record["resource_type"], record["id"]) == ("fhir", "Patient", "p1")
    assert accepted[1]["link"] == "fhir/Patient/p1/_history/2"
    rejected = [b for b in bodies if b["type"] == "record.rejected"]
    assert len(rejected) == 1 and rejected[0]["rules"] and rejected[0]["record"] is None
    assert "female" not in str(bodies)  # no content
