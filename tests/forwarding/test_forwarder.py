"""The forwarder on the real RabbitMQ and PostgreSQL, against fake upstreams: what is sent, what
is retried, what is recorded failed, that a redelivered event is not sent twice, and that a dead
upstream holds up nothing but its own queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from hie.app import create_app
from hie.config import Settings
from hie.events.relay import Relay
from hie.forwarding import service
from hie.forwarding.forwarder import Backoff, Forwarder
from hie.forwarding.queues import declare, delete, queue_of, waiting
from hie.server import free_port
from hie.storage import open_database
from hie.storage.forwarding import Destination, add_destination
from tests.forwarding.conftest import HOSPITAL, Seen, Upstream, admin_token

TOKEN_ENV = "HIE_TEST_FORWARD_TOKEN"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cda"


def wait_for(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def rows(settings: Settings, sql: str, *args: Any) -> list[dict[str, Any]]:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value(), row_factory=dict_row) as conn:
        return conn.execute(sql, args).fetchall()  # type: ignore[arg-type]


def patient(resource_id: str, mrn: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "id": resource_id, "gender": "female"}
    if mrn is not None:
        body["identifier"] = [{"system": "urn:example:mrn", "value": mrn}]
    return body


def put_patient(client: TestClient, token: str, resource: dict[str, Any]) -> None:
    answer = client.put(
        f"/fhir/Patient/{resource['id']}",
        json=resource,
        headers={"Authorization": f"Bearer {token}", "X-HIE-Institution": HOSPITAL},
    )
    assert answer.status_code == 201, answer.text


def answer_once_busy(seen: Seen) -> tuple[int, dict[str, Any] | None]:
    """503 the first time each request comes, 422 for the MRN 'REFUSE', else done."""
    key = (seen.method, seen.path, str(seen.query))
    if key not in answer_once_busy.done:  # type: ignore[attr-defined]
        answer_once_busy.done.add(key)  # type: ignore[attr-defined]
        return 503, None
    if seen.body and "REFUSE" in str(seen.body.get("identifier")):
        outcome = {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "no thanks"}]}
        return 422, outcome
    if seen.body and seen.body.get("resourceType") == "Bundle":
        entries = [{"response": {"status": "201", "location": "DocumentReference/d1/_history/1"}}]
        return 200, {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    return 201, None


@pytest.fixture
def running(city: Settings) -> Iterator[Callable[[], Forwarder]]:
    """Starts the relay and the forwarder in threads (fast backoff), stopped at teardown."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    database = open_database(city, migrate=False)
    assert city.broker_url is not None
    broker = city.broker_url.get_secret_value()

    def start() -> Forwarder:
        relay = Relay(database, broker, city.events_exchange, idle=0.1)
        forwarder = Forwarder(
            database,
            broker,
            city.events_exchange,
            city.task_queue,
            refresh=0.2,
            backoff=Backoff(first=0.1, most=0.4),
        )
        for target in (relay.run, forwarder.run):
            thread = threading.Thread(target=target, args=(stop,))
            thread.start()
            threads.append(thread)
        return forwarder

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    database.close()


def test_the_forwarder_sends_retries_records_failures_and_never_sends_twice(
    city: Settings,
    upstream: Upstream,
    running: Callable[[], Forwarder],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer_once_busy.done = set()  # type: ignore[attr-defined]
    upstream.answer = answer_once_busy
    assert city.broker_url is not None
    broker = city.broker_url.get_secret_value()
    database = open_database(city, migrate=False)
    dead = f"http://127.0.0.1:{free_port()}/fhir"  # nobody listens there
    with database.transaction() as tx:
        add_destination(tx.conn, Destination("province", upstream.url, TOKEN_ENV, None, "mhd"))
        add_destination(tx.conn, Destination("dead", dead, TOKEN_ENV, None, "mhd"))
    database.close()
    for name in ("province", "dead"):
        declare(broker, city.events_exchange, queue_of(city.task_queue, name), None)

    token = admin_token(city)
    app_settings = city.model_copy(update={"broker_url": None})
    with TestClient(create_app(app_settings)) as client:
        put_patient(client, token, patient("p1", "MRN-1"))
        put_patient(client, token, patient("p2", None))
        put_patient(client, token, patient("p3", "REFUSE"))
        stored = client.post(
            "/cda",
            content=(FIXTURES / "C0002-valid.xml").read_bytes(),
            params={"institution": HOSPITAL},
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/hl7-cda+xml"},
        )
        assert stored.status_code == 201, stored.text

    # No token in the environment yet: the first event is held and retried, not failed.
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    forwarder = running()
    first = "select * from forward_delivery where destination = 'province'"
    wait_for(lambda: any(r["attempts"] >= 2 for r in rows(city, first)), "retries without token")
    (held,) = rows(city, first)
    assert held["state"] == "pending" and f"{TOKEN_ENV} is not set" in held["last_error"]
    assert upstream.seen == []
    monkeypatch.setenv(TOKEN_ENV, "upstream-secret")

    def counts() -> dict[str, Any]:
        database = open_database(city, migrate=False)
        with database.connection() as conn:
            found = {row["name"]: row for row in service.status(conn)}
        database.close()
        return found

    wait_for(lambda: counts()["province"]["sent"] + counts()["province"]["failed"] == 4, "all")
    province = counts()["province"]
    assert (province["sent"], province["failed"]) == (3, 1)
    (failure,) = province["recent_failures"]
    assert failure["record"] == "Patient/p3" and failure["status"] == 422
    assert failure["error"] == "HTTP 422: no thanks"

    # Each request went twice (503, then done), with the token read at send time.
    assert all(s.headers["Authorization"] == "Bearer upstream-secret" for s in upstream.seen)
    assert all(s.headers["X-HIE-Institution"] == HOSPITAL for s in upstream.seen)
    conditional = upstream.requests_to("Patient")
    assert [s.method for s in conditional] == ["PUT"] * 4
    assert conditional[0].query == {"identifier": ["urn:example:mrn|MRN-1"]}
    assert [s.method for s in upstream.requests_to("Patient/p2")] == ["PUT", "PUT"]
    (bundle, _) = [s.body for s in upstream.requests_to("")]
    reference, binary = (e["resource"] for e in bundle["entry"])
    assert reference["masterIdentifier"]["system"].startswith("urn:oid:")
    assert binary["resourceType"] == "Binary" and binary["data"]
    sent = rows(
        city,
        "select * from forward_delivery where logical_id = 'Patient/p1' and destination = %s",
        "province",
    )
    # Two attempts at least without the token, then a 503 and the 201: each one counted.
    assert sent[0]["state"] == "sent" and sent[0]["attempts"] >= 4
    assert sent[0]["upstream_location"].endswith("/Patient/1/_history/1")

    # The dead upstream holds its first event and keeps the rest queued, blocking nobody.
    dead_row = counts()["dead"]
    assert (dead_row["sent"], dead_row["failed"], dead_row["pending"]) == (0, 0, 1)
    (attempt,) = rows(city, "select * from forward_delivery where destination = 'dead'")
    assert attempt["last_error"] == "ConnectError"
    assert waiting(broker, [queue_of(city.task_queue, "dead")]) == {
        queue_of(city.task_queue, "dead"): 3
    }

    # Every event published again (a relay that died before marking them): nothing is sent
    # twice. A new record behind them shows when they have been worked through.
    before = len(upstream.seen)
    rows(city, "update event_outbox set published_at = null returning seq")
    with TestClient(create_app(app_settings)) as client:
        put_patient(client, token, patient("p4", "MRN-4"))
    wait_for(lambda: counts()["province"]["sent"] == 4, "the new record")
    assert [s.query for s in upstream.seen[before:]] == [
        {"identifier": ["urn:example:mrn|MRN-4"]}
    ] * 2

    # A destination removed while the forwarder runs: its consumer stops, its queue stays gone.
    dead_queue = queue_of(city.task_queue, "dead")
    consumer_thread = forwarder.consumers["dead"][1]
    database = open_database(city, migrate=False)
    with database.transaction() as tx:
        service.remove(tx.conn, "dead", actor="t")
    database.close()
    delete(broker, dead_queue)
    wait_for(lambda: not consumer_thread.is_alive(), "the removed destination's consumer to stop")
    assert waiting(broker, [dead_queue]) == {}

    # The refused record, sent again by hand once the upstream takes it.
    upstream.answer = lambda seen: (201, None)
    database = open_database(city, migrate=False)
    assert service.retry_failed(database, broker, city.task_queue, "province") == (1, 0)
    database.close()
    wait_for(lambda: counts()["province"]["sent"] == 5, "the refused record sent again")
    assert counts()["province"]["failed"] == 0
    assert upstream.seen[-1].query == {"identifier": ["urn:example:mrn|REFUSE"]}
