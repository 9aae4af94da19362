"""The deliverer's two halves in this process, fed the events the relay would publish (the outbox
rows as message bodies): matching follows search semantics and the owner token's reach, an event
seen twice is delivered once, a 500 is retried, repeated failure puts the subscription in error."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hie.events.model import message_of
from hie.storage import Database
from hie.storage.tokens import revoke_token
from hie.subscriptions.deliverer import Deliverer
from tests.hospitals import Tokens, auth
from tests.subscriptions.conftest import Subscriber, observation, subscription

HEART_RATE = "8867-4"
BODY_TEMPERATURE = "8310-5"


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
    # HAPI's shape: the payload PUT to <endpoint>/<Type>/<id>, a notification POSTed, empty.
    to_h1 = [r for r in subscriber.received if r.path.startswith("/h1")]
    assert [(r.method, r.path, r.headers["Authorization"]) for r in to_h1] == [
        ("PUT", f"/h1/Observation/{a}", "Bearer s1")
    ]
    assert to_h1[0].headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    assert subscriber.bodies("/admin") == [None, None]  # notifications without content
    assert {(r.method, r.path) for r in subscriber.received if r.path != to_h1[0].path} == {
        ("POST", "/admin")
    }
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


def test_a_subscription_past_its_end_matches_nothing_and_is_turned_off(
    client: TestClient, tokens: Tokens, database: Database, deliverer: Deliverer
) -> None:
    ended = subscribe(
        client, tokens.h1, "http://127.0.0.1:9/a", HEART_RATE, end="2020-01-01T00:00:00Z"
    )
    later = subscribe(
        client, tokens.h1, "http://127.0.0.1:9/b", HEART_RATE, end="2999-12-31T23:59:59+08:00"
    )
    assert deliverer.activate() == 1  # the one past its end is turned off instead
    status = {
        sid: client.get(f"/fhir/Subscription/{sid}", headers=auth(tokens.h1)).json()["status"]
        for sid in (ended, later)
    }
    assert status == {ended: "off", later: "active"}
    post(client, tokens.h1, HEART_RATE, "e1")
    assert [deliverer.handle(e) for e in events(database)] == [1]  # the later one only

    # An active subscription whose end passes matches nothing from then on, and is turned off.
    with database.transaction() as tx:
        tx.conn.execute(
            "update subscription set resource = jsonb_set(resource, '{end}', %s) where id = %s",
            ('"2021-06-01T08:00:00.123456789+08:00"', later),
        )
    post(client, tokens.h1, HEART_RATE, "e2")
    assert [deliverer.handle(e) for e in events(database)] == [0, 0]
    with database.connection() as conn:
        assert conn.execute(
            "select count(*) as n from subscription_delivery where state = 'pending'"
        ).fetchone() == {"n": 1}
    with httpx.Client(timeout=5) as http:
        assert deliverer.send_due(http) == 0  # its pending delivery is not sent either
    assert deliverer.expire() == [later]
    gone = client.get(f"/fhir/Subscription/{later}", headers=auth(tokens.h1)).json()
    assert gone["status"] == "off" and gone["end"].startswith("2021-06-01")


def test_end_must_be_an_instant(client: TestClient, tokens: Tokens) -> None:
    body = subscription("http://127.0.0.1:9/a", end="2020-01-01")
    answer = client.post("/fhir/Subscription", json=body, headers=auth(tokens.h1))
    assert answer.status_code == 422  # the R4 validator's verdict: no time, no zone
    assert "Subscription.end" in answer.text


def test_the_channel_extension_post_sends_the_resource_to_the_endpoint_itself(
    client: TestClient,
    tokens: Tokens,
    database: Database,
    deliverer: Deliverer,
    subscriber: Subscriber,
) -> None:
    subscribe(client, tokens.h1, f"{subscriber.url}/post", HEART_RATE, method="post")
    subscribe(client, tokens.h1, f"{subscriber.url}/put?key=k", HEART_RATE, method="put")
    bad = subscription(f"{subscriber.url}/x", method="patch")
    answer = client.post("/fhir/Subscription", json=bad, headers=auth(tokens.h1))
    assert answer.status_code == 400
    assert answer.json()["issue"][0]["expression"] == ["Subscription.channel.extension[0]"]
    deliverer.activate()
    oid = post(client, tokens.h1, HEART_RATE, "p")
    for event in events(database):
        deliverer.handle(event)
    send_all(deliverer)
    assert sorted((r.method, r.path, r.body["id"]) for r in subscriber.received) == [
        ("POST", "/post", oid),
        ("PUT", f"/put/Observation/{oid}?key=k", oid),
    ]


def test_a_batch_from_two_institutions_yields_exactly_the_matching_deliveries_once(
    client: TestClient, tokens: Tokens, database: Database, deliverer: Deliverer
) -> None:
    h1 = subscribe(client, tokens.h1, "http://127.0.0.1:9/h1", HEART_RATE)
    h2 = subscribe(client, tokens.h2, "http://127.0.0.1:9/h2", HEART_RATE)
    admin = subscribe(client, tokens.admin, "http://127.0.0.1:9/admin", BODY_TEMPERATURE)
    assert deliverer.activate() == 3
    a = post(client, tokens.h1, HEART_RATE, "a")
    b = post(client, tokens.h1, BODY_TEMPERATURE, "b")
    c = post(client, tokens.h2, HEART_RATE, "c")
    d = post(client, tokens.h2, BODY_TEMPERATURE, "d")
    post(client, tokens.h1, "29463-7", "e")  # body weight: nobody's criteria
    post(client, tokens.h2, "29463-7", "f")
    batch = events(database)
    assert len(batch) == 6

    def rows() -> set[tuple[str, str, str]]:
        with database.connection() as conn:
            found = conn.execute(
                "select subscription_id, institution_code, logical_id from subscription_delivery"
            ).fetchall()
        return {(r["subscription_id"], r["institution_code"], r["logical_id"]) for r in found}

    expected = {
        (h1, "H1", f"Observation/{a}"),  # H1's token sees H1 only: not c
        (h2, "H2", f"Observation/{c}"),  # H2's token sees H2 only: not a
        (admin, "H1", f"Observation/{b}"),  # the admin's sees both
        (admin, "H2", f"Observation/{d}"),
    }
    assert deliverer.handle_batch(batch) == 4
    assert rows() == expected
    assert deliverer.handle_batch(batch) == 0  # the batch redelivered: nothing twice
    assert rows() == expected
