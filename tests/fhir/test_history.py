"""History at every level as HAPI FHIR JPA answers it: system-level ``/_history``, ``_since``
and ``_at`` on instance, type and system, paging with next and previous links, the caller's
institution only."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from fhirpy import SyncFHIRClient

from tests.hospitals import Tokens, auth

SYSTEM = "urn:oid:2.16.156.10011.1.2"


def patient(value: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}], **extra}


def instant_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pause() -> None:
    """Receipt times are the server's clock: make the next write strictly later."""
    time.sleep(0.02)


def ids(bundle: dict[str, Any]) -> list[str]:
    return [e["fullUrl"].split("/fhir/", 1)[1] for e in bundle.get("entry", [])]


def test_system_history_lists_every_type_newest_first(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    pause()
    start = instant_now()
    pause()
    pid = client.post("/fhir/Patient", json=patient("HIST-SYS"), headers=h1).json()["id"]
    pause()
    org = client.post(
        "/fhir/Organization", json={"resourceType": "Organization", "name": "HIST"}, headers=h1
    ).json()["id"]
    response = client.get("/fhir/_history", params={"_since": start}, headers=h1)
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["type"] == "history"
    assert ids(bundle) == [f"Organization/{org}", f"Patient/{pid}"]
    assert bundle["entry"][1]["request"] == {"method": "POST", "url": "Patient"}


def test_system_history_is_the_callers_institution_only(client: TestClient, tokens: Tokens) -> None:
    pause()
    start = instant_now()
    pause()
    client.post("/fhir/Patient", json=patient("HIST-H2"), headers=auth(tokens.h2))
    mine = client.get("/fhir/_history", params={"_since": start}, headers=auth(tokens.h1)).json()
    assert not mine.get("entry")
    theirs = client.get("/fhir/_history", params={"_since": start}, headers=auth(tokens.h2)).json()
    assert len(theirs["entry"]) == 1


def test_since_on_instance_and_type(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    made = client.post("/fhir/Patient", json=patient("HIST-SINCE"), headers=h1).json()
    pause()
    between = instant_now()
    pause()
    client.put(f"/fhir/Patient/{made['id']}", json={**made, "gender": "male"}, headers=h1)
    instance = client.get(
        f"/fhir/Patient/{made['id']}/_history", params={"_since": between}, headers=h1
    ).json()
    assert [e["response"]["etag"] for e in instance["entry"]] == ['W/"2"']
    of_type = client.get("/fhir/Patient/_history", params={"_since": between}, headers=h1).json()
    assert f"Patient/{made['id']}" in ids(of_type)
    assert all(e["resource"]["resourceType"] == "Patient" for e in of_type["entry"])


def test_at_gives_the_versions_current_then(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    made = client.post("/fhir/Patient", json=patient("HIST-AT"), headers=h1).json()
    pause()
    during_first = instant_now()
    pause()
    client.put(f"/fhir/Patient/{made['id']}", json={**made, "gender": "male"}, headers=h1)
    pause()
    during_second = instant_now()
    url = f"/fhir/Patient/{made['id']}/_history"
    first = client.get(url, params={"_at": during_first}, headers=h1).json()
    assert [e["response"]["etag"] for e in first["entry"]] == ['W/"1"']
    second = client.get(url, params={"_at": during_second}, headers=h1).json()
    assert [e["response"]["etag"] for e in second["entry"]] == ['W/"2"']
    system = client.get("/fhir/_history", params={"_at": during_first}, headers=h1).json()
    assert f"Patient/{made['id']}" in ids(system)
    versions = [e["response"]["etag"] for e in system["entry"] if e["fullUrl"].endswith(made["id"])]
    assert versions == ['W/"1"']


def test_bad_since_and_at_are_400(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    assert (
        client.get("/fhir/_history", params={"_since": "yesterday"}, headers=h1).status_code == 400
    )
    assert client.get("/fhir/_history", params={"_at": "soon"}, headers=h1).status_code == 400


def test_system_history_pages_with_next_and_previous(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    pause()
    start = instant_now()
    pause()
    for n in range(5):
        client.post("/fhir/Patient", json=patient(f"HIST-PAGE-{n}"), headers=h1)
    first = client.get("/fhir/_history", params={"_since": start, "_count": "2"}, headers=h1).json()
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert len(first["entry"]) == 2 and "previous" not in links
    seen = ids(first)
    url: str | None = links["next"]
    while url:
        page = client.get(url, headers=h1).json()
        seen += ids(page)
        page_links = {link["relation"]: link["url"] for link in page["link"]}
        assert "previous" in page_links
        url = page_links.get("next")
    assert len(seen) == 5 and len(set(seen)) == 5


def test_deleted_version_in_system_history(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    pause()
    start = instant_now()
    made = client.post("/fhir/Patient", json=patient("HIST-DEL"), headers=h1).json()
    client.delete(f"/fhir/Patient/{made['id']}", headers=h1)
    entries = client.get("/fhir/_history", params={"_since": start}, headers=h1).json()["entry"]
    assert entries[0]["request"] == {"method": "DELETE", "url": f"Patient/{made['id']}"}
    assert "resource" not in entries[0]


def test_system_history_in_a_batch_and_through_fhirpy(
    client: TestClient, live_server: str, tokens: Tokens
) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "_history?_count=1"}}],
    }
    entry = client.post("/fhir", json=batch, headers=auth(tokens.h1)).json()["entry"][0]
    assert entry["resource"]["type"] == "history"
    h1 = SyncFHIRClient(live_server, authorization=f"Bearer {tokens.h1}")
    bundle = h1.execute("_history", method="get", params={"_count": 3})
    assert bundle["type"] == "history" and len(bundle["entry"]) == 3
