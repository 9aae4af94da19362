"""The deliverer's two halves in this process, fed the events the relay would publish (the outbox
rows as message bodies): matching follows search semantics and the owner token's reach, an event
seen twice is delivered once, a 500 is retried, repeated failure puts the subscription in error."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hie.config import Settings
from hie.events.model import message_of
from hie.storage import Database, open_database
from hie.storage.tokens import revoke_token
from hie.subscriptions.deliverer import Deliverer
from tests.subscriptions.conftest import Subscriber, Tokens, auth, observation, subscription

HEART_RATE = "8867-4"
BODY_TEMPERATURE = "8310-5"


@pytest.fixture
def database(sub_settings: Settings) -> Iterator[Database]:
    db = open_database(sub_settings)
    yield db
    db.close()


@pytest.fixture
def deliverer(database: Database, sub_settings: Settings) -> Deliverer:
    assert sub_settings.broker_url is not None
    return Deliverer(
        database,
        sub_settings.broker_url.get_secret_value(),
        sub_settings.zone,
        backoff_base=0.05,
        attempts=3,
    )


def events(database: Database) -> list[dict[str, Any]]:
    with database.connection() as conn:
        rows = conn.execute("select * from event_outbox order by seq").fetchall()
    return [message_of(row) for row in rows]


def subscribe(client: TestClient, token: str, endpoint: str, code: str, **kw: Any) -> str:
    body = subscription(endpoint, f"Observation?code=http://loinc.org|{code}", **kw)
    answer = client.post("/fhir/Subscription", json=body, headers=auth(token))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def post(client: TestClient, token: str, code: str, tag: str) -> str:
    answer = client.post("/fhir/Observation", json=observation(code, tag), headers=auth(token))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def send_all(deliverer: Deliverer, seconds: float = 20) -> None:
    """Send until nothing is pending (retries included)."""
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=5) as http:
        while True:
            deliverer.send_due(http)
            with deliverer.database.connection() as conn:
                row = conn.execute(
                    "select count(*) as n from subscription_delivery s"
                    " join subscription x on x.id = s.subscription_id"
                    " where s.state = 'pending' and x.status = 'active'"
                ).fetchone()
            if row is None or row["n"] == 0:
                return
            assert time.monotonic() < deadline, "deliveries still pending"
            time.sleep(0.02)


def test_matches_by_search_and_owner_reach_once_per_event_with_a_retry(
    client: TestClient,
    tokens: Tokens,
    database: Database,
    deliverer: Deliverer,
    subscriber: Subscriber,
) -> None:
    h1 = subscribe(
        client, tokens.h1, f"{subscriber.url}/h1", HEART_RATE, headers=("Authorization: Bearer s1",)
    )
    subscribe(client, tokens.admin, f"{subscriber.url}/admin", HEART_RATE, payload=False)
    subscribe(client, tokens.h2, f"{subscriber.url}/h2", BODY_TEMPERATURE)
    before = client.get(f"/fhir/Subscription/{h1}", headers=auth(tokens.h1)).json()
    assert before["status"] == "requested"
    assert deliverer.activate() == 3
    after = client.get(f"/fhir/Subscription/{h1}", headers=auth(tokens.h1)).json()
    assert after["status"] == "active" and after["meta"]["versionId"] == "2"

    a = post(client, tokens.h1, HEART_RATE, "a")
    post(client, tokens.h1, BODY_TEMPERATURE, "b")  # H2's criteria, but H1's record
    c = post(client, tokens.h2, HEART_RATE, "c")
    published = events(database)
    assert len(published) == 3
    assert sum(deliverer.handle(event) for event in published) == 3  # h1: a; admin: a, c
    assert sum(deliverer.handle(event) for event in published) == 0  # redelivered: nothing new

    subscriber.fail = 1  # the first POST is answered 500, and tried again
    send_all(deliverer)

    h1_bodies = subscriber.bodies("/h1")
    assert [(b["resourceType"], b["id"]) for b in h1_bodies] == [("Observation", a)]
    assert h1_bodies[0]["meta"]["versionId"] == "1"
    assert [r.headers["Authorization"] for r in subscriber.received if r.path == "/h1"] == [
        "Bearer s1"
    ]
    assert subscriber.bodies("/admin") == [None, None]  # notifications without content
    assert subscriber.bodies("/h2") == []
    with database.connection() as conn:
        states = conn.execute(
            "select state, count(*) as n, max(attempts) as most from subscription_delivery"
            " group by state"
        ).fetchall()
    assert [(s["state"], s["n"], s["most"]) for s in states] == [("sent", 3, 2)]
    with database.connection() as conn:
        audited = conn.execute(
            "select actor, target, detail from audit_event where action = 'subscription.deliver'"
            " order by target"
        ).fetchall()
    assert sorted(r["target"] for r in audited) == sorted(
        [
            f"Observation/{a}/_history/1",
            f"Observation/{a}/_history/1",
            f"Observation/{c}/_history/1",
        ]
    )
    assert {r["detail"]["acting_for"] for r in audited} == {"H1", "H2"}
    assert c not in [b["id"] for b in h1_bodies]


def test_a_delivered_resource_keeps_its_decimals_as_written(
    client: TestClient,
    tokens: Tokens,
    database: Database,
    deliverer: Deliverer,
    subscriber: Subscriber,
) -> None:
    subscribe(client, tokens.h1, f"{subscriber.url}/dec", HEART_RATE)
    deliverer.activate()
    body = {**observation(HEART_RATE, "dec"), "valueQuantity": {"value": "VALUE", "unit": "/min"}}
    text = json.dumps(body).replace('"VALUE"', "72.50")
    headers = {**auth(tokens.h1), "Content-Type": "application/fhir+json"}
    sent = client.post("/fhir/Observation", content=text, headers=headers)
    assert sent.status_code == 201, sent.text
    for event in events(database):
        deliverer.handle(event)
    send_all(deliverer)
    (delivered,) = subscriber.bodies("/dec")
    assert str(delivered["valueQuantity"]["value"]) == "72.50"  # not the float 72.5


def test_an_update_that_stops_matching_is_not_delivered(
    client: TestClient, tokens: Tokens, database: Database, deliverer: Deliverer
) -> None:
    subscribe(client, tokens.h1, "http://127.0.0.1:9/x", HEART_RATE)
    deliverer.activate()
    oid = post(client, tokens.h1, HEART_RATE, "u")
    changed = {**observation(BODY_TEMPERATURE, "u"), "id": oid}
    assert client.put(f"/fhir/Observation/{oid}", json=changed, headers=auth(tokens.h1)).is_success
    # Matched against the resource as the search index now has it, like the search would.
    assert [deliverer.handle(e) for e in events(database)] == [0, 0]


def test_repeated_failures_put_the_subscription_in_error_with_the_reason(
    client: TestClient,
    tokens: Tokens,
    database: Database,
    deliverer: Deliverer,
    subscriber: Subscriber,
) -> None:
    sid = subscribe(client, tokens.h1, f"{subscriber.url}/h1", HEART_RATE)
    deliverer.activate()
    post(client, tokens.h1, HEART_RATE, "e")
    for event in events(database):
        deliverer.handle(event)
    subscriber.fail = 100
    send_all(deliverer)
    erred = client.get(f"/fhir/Subscription/{sid}", headers=auth(tokens.h1)).json()
    assert erred["status"] == "error"
    assert "failed after 3 attempt(s): HTTP 500" in erred["error"]
    assert subscriber.received == []
    # Its owner asks again: requested, then active (later events are delivered again).
    again = {**subscription(f"{subscriber.url}/h1"), "id": sid}
    assert client.put(f"/fhir/Subscription/{sid}", json=again, headers=auth(tokens.h1)).is_success
    assert deliverer.activate() == 1


def test_a_revoked_owner_token_is_delivered_nothing(
    client: TestClient, tokens: Tokens, database: Database, deliverer: Deliverer
) -> None:
    sid = subscribe(client, tokens.h1, "http://127.0.0.1:9/x", HEART_RATE)
    deliverer.activate()
    with database.transaction() as tx:
        row = tx.conn.execute(
            "select owner_token_id from subscription where id = %s", (sid,)
        ).fetchone()
        assert row is not None
        revoke_token(tx.conn, row["owner_token_id"], actor="t")
    headers = {**auth(tokens.admin), "X-HIE-Institution": "H1"}
    answer = client.post("/fhir/Observation", json=observation(HEART_RATE, "r"), headers=headers)
    assert answer.status_code == 201
    assert [deliverer.handle(e) for e in events(database)] == [0]


def test_a_dead_subscriber_costs_one_try_per_round_not_one_per_delivery(
    client: TestClient, tokens: Tokens, database: Database, deliverer: Deliverer
) -> None:
    with socket.socket() as closed:  # a port nobody listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    subscribe(client, tokens.h1, f"http://127.0.0.1:{port}/hook", HEART_RATE)
    deliverer.activate()
    for tag in ("x", "y", "z"):
        post(client, tokens.h1, HEART_RATE, tag)
    assert [deliverer.handle(e) for e in events(database)] == [1, 1, 1]
    with httpx.Client(timeout=5) as http:
        assert deliverer.send_due(http) == 1  # the other two wait with it
    with database.connection() as conn:
        rows = conn.execute(
            "select state, attempts, last_error from subscription_delivery order by created_at"
        ).fetchall()
    assert [(r["state"], r["attempts"], r["last_error"]) for r in rows] == [
        ("pending", 1, "ConnectError"),
        ("pending", 0, None),
        ("pending", 0, None),
    ]


def test_other_events_are_passed_over_and_a_body_that_is_no_event_is_refused(
    deliverer: Deliverer,
) -> None:
    cda = {"type": "record.accepted", "record": {"kind": "cda", "document_id": "d", "version": 1}}
    rejected = {"type": "record.rejected", "record": None}
    deleted = {"type": "record.accepted", "record": {"kind": "fhir", "deleted": True}}
    assert [deliverer.handle(e) for e in (cda, rejected, deleted)] == [0, 0, 0]
    for bad in ("text", [], {"type": "record.accepted", "record": {"kind": "fhir"}}):
        with pytest.raises(ValueError, match=r"not a hie\.event/1 event"):
            deliverer.handle(bad)
