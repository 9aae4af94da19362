"""``/fhir/Subscription``: create, read, update, delete, search; criteria checked on create with
the search API's parser; each token sees its own subscriptions (an admin's: all)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from hie.app import create_app
from hie.audit import flush_reads
from hie.config import Settings
from tests.hospitals import Tokens, auth
from tests.subscriptions.conftest import subscription

HOOK = "https://subscriber.example.org/hook"


def test_create_read_update_delete_and_search(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    body = subscription(HOOK, headers=("Authorization: Bearer to-the-subscriber",))
    created = client.post("/fhir/Subscription", json=body, headers=h1)
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert created.headers["Location"].endswith(f"/fhir/Subscription/{sid}/_history/1")
    assert created.json()["status"] == "requested"
    assert created.json()["channel"]["header"] == ["Authorization: Bearer to-the-subscriber"]

    read = client.get(f"/fhir/Subscription/{sid}", headers=h1)
    assert read.status_code == 200 and read.json()["criteria"] == body["criteria"]
    assert read.headers["ETag"] == 'W/"1"'
    as_xml = client.get(f"/fhir/Subscription/{sid}?_format=xml", headers=h1)
    assert as_xml.headers["content-type"].startswith("application/fhir+xml")
    assert b"<criteria value=" in as_xml.content

    changed = {**body, "id": sid, "criteria": "Observation?code=http://loinc.org|8310-5"}
    updated = client.put(f"/fhir/Subscription/{sid}", json=changed, headers=h1)
    assert updated.status_code == 200, updated.text
    assert updated.json()["meta"]["versionId"] == "2"
    assert updated.json()["criteria"].endswith("8310-5")

    found = client.get("/fhir/Subscription?status=requested", headers=h1).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [sid]

    assert client.delete(f"/fhir/Subscription/{sid}", headers=h1).status_code == 204
    assert client.get(f"/fhir/Subscription/{sid}", headers=h1).status_code == 404


def test_a_token_sees_only_its_own_subscriptions_and_an_admin_all(
    client: TestClient, tokens: Tokens
) -> None:
    mine = client.post("/fhir/Subscription", json=subscription(HOOK), headers=auth(tokens.h1))
    sid = mine.json()["id"]
    other = auth(tokens.h2)
    assert client.get(f"/fhir/Subscription/{sid}", headers=other).status_code == 404
    assert "entry" not in client.get("/fhir/Subscription", headers=other).json()
    assert client.delete(f"/fhir/Subscription/{sid}", headers=other).status_code == 404
    taken = client.put(
        f"/fhir/Subscription/{sid}", json={**subscription(HOOK), "id": sid}, headers=other
    )
    assert taken.status_code == 409
    admin = auth(tokens.admin)
    assert client.get(f"/fhir/Subscription/{sid}", headers=admin).status_code == 200
    listed = client.get("/fhir/Subscription", headers=admin).json()
    assert sid in [e["resource"]["id"] for e in listed["entry"]]


def test_invalid_criteria_are_refused_with_the_search_apis_message(
    client: TestClient, tokens: Tokens
) -> None:
    h1 = auth(tokens.h1)
    cases = {
        "Observation?colour=red": 'Unknown search parameter "colour"',
        "Observation?date=yesterday": "not a FHIR date",
        "Observation?code:sideways=x": "modifier",
        "Spaceship?code=x": "'Spaceship' is not served here",
        "?code=x": "does not start with a resource type",
    }
    for criteria, words in cases.items():
        answer = client.post("/fhir/Subscription", json=subscription(HOOK, criteria), headers=h1)
        assert answer.status_code == 400, criteria
        issue = answer.json()["issue"][0]
        assert words in issue["diagnostics"], (criteria, issue)
        assert issue["expression"] == ["Subscription.criteria"]
    assert "entry" not in client.get("/fhir/Subscription", headers=h1).json()


def test_channel_and_status_are_checked(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    email = subscription(HOOK)
    email["channel"] = {"type": "email", "endpoint": "mailto:a@example.org"}
    answer = client.post("/fhir/Subscription", json=email, headers=h1)
    assert answer.status_code == 400
    places = {i["expression"][0] for i in answer.json()["issue"]}
    assert places == {"Subscription.channel.type", "Subscription.channel.endpoint"}

    xml = subscription(HOOK)
    xml["channel"]["payload"] = "application/fhir+xml"
    answer = client.post("/fhir/Subscription", json=xml, headers=h1)
    assert answer.json()["issue"][0]["expression"] == ["Subscription.channel.payload"]

    as_xml = client.post(
        "/fhir/Subscription",
        content=b"<Subscription/>",
        headers={**h1, "Content-Type": "application/fhir+xml"},
    )
    assert as_xml.status_code == 415

    erred = {**subscription(HOOK), "status": "error"}
    answer = client.post("/fhir/Subscription", json=erred, headers=h1)
    assert answer.json()["issue"][0]["expression"] == ["Subscription.status"]

    # Not R4 at all (reason is required): the validator's verdict, as for any resource.
    answer = client.post(
        "/fhir/Subscription", json={k: v for k, v in subscription(HOOK).items() if k != "reason"}
    )
    assert answer.status_code in (401, 403)  # no token
    answer = client.post(
        "/fhir/Subscription",
        json={k: v for k, v in subscription(HOOK).items() if k != "reason"},
        headers=h1,
    )
    assert answer.status_code == 422


def test_without_a_broker_subscriptions_are_refused_with_the_reason(
    settings: Settings, tokens: Tokens
) -> None:
    with TestClient(create_app(settings)) as plain:
        answer = plain.post("/fhir/Subscription", json=subscription(HOOK), headers=auth(tokens.h1))
    assert answer.status_code == 400
    assert "HIE_BROKER_URL" in answer.json()["issue"][0]["diagnostics"]


def test_capability_statement_lists_subscription_with_rest_hook(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription")
    assert {i["code"] for i in entry["interaction"]} >= {"create", "read", "search-type"}
    assert "rest-hook" in entry["documentation"]


def test_every_interaction_is_audited_without_the_subscribers_secrets(
    client: TestClient, tokens: Tokens
) -> None:
    h1 = auth(tokens.h1)
    body = subscription(HOOK + "?key=hook-secret", headers=("Authorization: Bearer hdr-secret",))
    sid = client.post("/fhir/Subscription", json=body, headers=h1).json()["id"]
    client.get(f"/fhir/Subscription/{sid}", headers=h1)
    client.get("/fhir/Subscription", headers=h1)
    client.put(f"/fhir/Subscription/{sid}", json={**body, "id": sid}, headers=h1)
    client.post("/fhir/Subscription", json=subscription(HOOK, "Observation?x=1"), headers=h1)
    client.delete(f"/fhir/Subscription/{sid}", headers=h1)
    database = client.app.state.database  # type: ignore[attr-defined]
    flush_reads(database, timeout=10)
    with database.connection() as conn:
        rows = conn.execute(
            "select action, target, outcome, detail::text as detail from audit_event"
            " where action like 'subscription.%' order by id"
        ).fetchall()
    # Reads are written by the background writer: compared without their order.
    assert sorted((r["action"], r["target"], r["outcome"]) for r in rows) == sorted(
        [
            ("subscription.create", f"Subscription/{sid}", 0),
            ("subscription.read", f"Subscription/{sid}", 0),
            ("subscription.search", "Subscription", 0),
            ("subscription.update", f"Subscription/{sid}", 0),
            ("subscription.create", "Subscription", 4),  # refused: bad criteria
            ("subscription.delete", f"Subscription/{sid}", 0),
        ]
    )
    assert not any("secret" in r["detail"] for r in rows)
