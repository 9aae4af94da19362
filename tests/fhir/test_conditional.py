"""Conditional delete and conditional read as HAPI FHIR JPA answers them, alone and in Bundles."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhirpy import SyncFHIRClient

from hie.app import create_app
from hie.config import Settings
from tests.hospitals import Tokens, auth

SYSTEM = "urn:oid:2.16.156.10011.1.2"


def patient(value: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": value}],
        **extra,
    }


def create(client: TestClient, token: str, resource: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=auth(token))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_conditional_delete_of_one_match(client: TestClient, tokens: Tokens) -> None:
    made = create(client, tokens.h1, patient("CDEL-1"))
    response = client.delete(
        "/fhir/Patient", params={"identifier": f"{SYSTEM}|CDEL-1"}, headers=auth(tokens.h1)
    )
    assert response.status_code == 200
    assert "Successfully deleted 1 resource(s)" in response.json()["issue"][0]["diagnostics"]
    assert client.get(f"/fhir/Patient/{made['id']}", headers=auth(tokens.h1)).status_code == 410


def test_conditional_delete_without_match_is_200_with_a_warning(
    client: TestClient, tokens: Tokens
) -> None:
    response = client.delete(
        "/fhir/Patient", params={"identifier": f"{SYSTEM}|CDEL-NONE"}, headers=auth(tokens.h1)
    )
    assert response.status_code == 200
    issue = response.json()["issue"][0]
    assert issue["severity"] == "warning" and issue["code"] == "not-found"
    assert "Nothing has been deleted" in issue["diagnostics"]


def test_conditional_delete_of_several_is_412_by_default(
    client: TestClient, tokens: Tokens
) -> None:
    first = create(client, tokens.h1, patient("CDEL-MANY"))
    create(client, tokens.h1, patient("CDEL-MANY"))
    response = client.delete(
        "/fhir/Patient", params={"identifier": f"{SYSTEM}|CDEL-MANY"}, headers=auth(tokens.h1)
    )
    assert response.status_code == 412
    assert "matched 2 resources" in response.json()["issue"][0]["diagnostics"]
    assert client.get(f"/fhir/Patient/{first['id']}", headers=auth(tokens.h1)).status_code == 200


def test_conditional_delete_needs_a_known_parameter(client: TestClient, tokens: Tokens) -> None:
    response = client.delete("/fhir/Patient", params={"no-such": "x"}, headers=auth(tokens.h1))
    assert response.status_code == 400
    bare = client.delete("/fhir/Patient", headers=auth(tokens.h1))
    assert bare.status_code == 400


def test_conditional_delete_stays_in_the_institution(client: TestClient, tokens: Tokens) -> None:
    other = create(client, tokens.h2, patient("CDEL-H2"))
    client.delete(
        "/fhir/Patient", params={"identifier": f"{SYSTEM}|CDEL-H2"}, headers=auth(tokens.h1)
    )
    assert client.get(f"/fhir/Patient/{other['id']}", headers=auth(tokens.h2)).status_code == 200


@pytest.fixture(scope="module")
def multiple(fhir_settings: Settings, tokens: Tokens) -> Iterator[TestClient]:
    settings = fhir_settings.model_copy(
        update={"allow_multiple_delete": True, "max_multiple_delete": 3}
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_multiple_delete_when_allowed_up_to_the_limit(multiple: TestClient, tokens: Tokens) -> None:
    for _ in range(3):
        create(multiple, tokens.h1, patient("CDEL-ALLOWED"))
    response = multiple.delete(
        "/fhir/Patient", params={"identifier": f"{SYSTEM}|CDEL-ALLOWED"}, headers=auth(tokens.h1)
    )
    assert response.status_code == 200
    assert "Successfully deleted 3 resource(s)" in response.json()["issue"][0]["diagnostics"]
    for _ in range(4):
        create(multiple, tokens.h1, patient("CDEL-TOO-MANY"))
    over = multiple.delete(
        "/fhir/Patient", params={"identifier": f"{SYSTEM}|CDEL-TOO-MANY"}, headers=auth(tokens.h1)
    )
    assert over.status_code == 412


def test_conditional_delete_in_a_transaction(client: TestClient, tokens: Tokens) -> None:
    made = create(client, tokens.h1, patient("CDEL-TX"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": f"Patient?identifier={SYSTEM}|CDEL-TX"}}],
    }
    response = client.post("/fhir", json=bundle, headers=auth(tokens.h1))
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["response"]["status"] == "200 OK"
    assert client.get(f"/fhir/Patient/{made['id']}", headers=auth(tokens.h1)).status_code == 410


def test_if_none_match_current_version_is_304(client: TestClient, tokens: Tokens) -> None:
    made = create(client, tokens.h1, patient("CREAD-1"))
    url = f"/fhir/Patient/{made['id']}"
    same = client.get(url, headers=auth(tokens.h1, **{"If-None-Match": 'W/"1"'}))
    assert same.status_code == 304 and same.content == b""
    assert same.headers["ETag"] == 'W/"1"'
    other = client.get(url, headers=auth(tokens.h1, **{"If-None-Match": 'W/"7"'}))
    assert other.status_code == 200 and other.json()["id"] == made["id"]


def test_if_modified_since(client: TestClient, tokens: Tokens) -> None:
    made = create(client, tokens.h1, patient("CREAD-2"))
    url = f"/fhir/Patient/{made['id']}"
    later = format_datetime(datetime.now(UTC) + timedelta(minutes=5), usegmt=True)
    earlier = format_datetime(datetime.now(UTC) - timedelta(days=1), usegmt=True)
    assert (
        client.get(url, headers=auth(tokens.h1, **{"If-Modified-Since": later})).status_code == 304
    )
    changed = client.get(url, headers=auth(tokens.h1, **{"If-Modified-Since": earlier}))
    assert changed.status_code == 200


def test_conditional_read_in_a_batch(client: TestClient, tokens: Tokens) -> None:
    made = create(client, tokens.h1, patient("CREAD-BATCH"))
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{made['id']}", "ifNoneMatch": 'W/"1"'}},
            {"request": {"method": "GET", "url": f"Patient/{made['id']}", "ifNoneMatch": 'W/"0"'}},
        ],
    }
    entries = client.post("/fhir", json=batch, headers=auth(tokens.h1)).json()["entry"]
    assert entries[0]["response"]["status"] == "304 Not Modified"
    assert "resource" not in entries[0]
    assert entries[1]["response"]["status"] == "200 OK" and entries[1]["resource"]["id"]


def test_conditional_delete_through_fhirpy(live_server: str, tokens: Tokens) -> None:
    h1 = SyncFHIRClient(live_server, authorization=f"Bearer {tokens.h1}")
    h1.resource("Patient", identifier=[{"system": SYSTEM, "value": "FHIRPY-CDEL"}]).save()
    h1.resources("Patient").search(identifier=f"{SYSTEM}|FHIRPY-CDEL").delete()
    assert h1.resources("Patient").search(identifier=f"{SYSTEM}|FHIRPY-CDEL").count() == 0
