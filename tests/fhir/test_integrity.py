"""Referential integrity with HAPI FHIR JPA's defaults: a write whose relative reference names a
missing resource is 400 with the element path; deleting a referenced resource is 409 naming
the referrers; inside a transaction in-Bundle and conditional references count; both checks
can be turned off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings
from tests.hospitals import Tokens, auth

SYSTEM = "urn:oid:2.16.156.10011.1.2"


def encounter(patient: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": patient},
        **extra,
    }


def patient(value: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}]}


def create(client: TestClient, token: str, resource: dict[str, Any]) -> str:
    response = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=auth(token))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_create_referring_to_a_missing_resource_is_400_with_the_path(
    client: TestClient, tokens: Tokens
) -> None:
    response = client.post(
        "/fhir/Encounter", json=encounter("Patient/no-such-patient"), headers=auth(tokens.h1)
    )
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["diagnostics"] == (
        "Resource Patient/no-such-patient not found, specified in path: Encounter.subject"
    )
    assert issue["expression"] == ["Encounter.subject"]
    # Nothing half-stored.
    found = client.get(
        "/fhir/Encounter", params={"subject": "Patient/no-such-patient"}, headers=auth(tokens.h1)
    ).json()
    assert found.get("total", 0) == 0


def test_create_referring_to_an_existing_resource_is_stored(
    client: TestClient, tokens: Tokens
) -> None:
    pid = create(client, tokens.h1, patient("INT-1"))
    assert create(client, tokens.h1, encounter(f"Patient/{pid}"))


def test_reference_to_another_institutions_resource_is_missing(
    client: TestClient, tokens: Tokens
) -> None:
    pid = create(client, tokens.h2, patient("INT-H2"))
    response = client.post(
        "/fhir/Encounter", json=encounter(f"Patient/{pid}"), headers=auth(tokens.h1)
    )
    assert response.status_code == 400


def test_update_and_patch_keep_references_resolved(client: TestClient, tokens: Tokens) -> None:
    pid = create(client, tokens.h1, patient("INT-UPD"))
    eid = create(client, tokens.h1, encounter(f"Patient/{pid}"))
    dangling = {**encounter("Patient/gone"), "id": eid}
    assert (
        client.put(f"/fhir/Encounter/{eid}", json=dangling, headers=auth(tokens.h1)).status_code
        == 400
    )
    patched = client.patch(
        f"/fhir/Encounter/{eid}",
        content=b'[{"op":"replace","path":"/subject/reference","value":"Patient/gone"}]',
        headers=auth(tokens.h1, **{"Content-Type": "application/json-patch+json"}),
    )
    assert patched.status_code == 400
    assert "Encounter.subject" in patched.json()["issue"][0]["diagnostics"]


def test_transaction_references_in_bundle_and_conditional_count(
    client: TestClient, tokens: Tokens
) -> None:
    create(client, tokens.h1, patient("INT-COND"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            # The Encounter comes first and refers to a Patient written after it.
            {
                "fullUrl": "urn:uuid:7f0c2c52-0000-4000-8000-000000000001",
                "resource": encounter("urn:uuid:7f0c2c52-0000-4000-8000-000000000002"),
                "request": {"method": "POST", "url": "Encounter"},
            },
            {
                "fullUrl": "urn:uuid:7f0c2c52-0000-4000-8000-000000000002",
                "resource": patient("INT-TX"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": encounter(f"Patient?identifier={SYSTEM}|INT-COND"),
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }
    response = client.post("/fhir", json=bundle, headers=auth(tokens.h1))
    assert response.status_code == 200, response.text


def test_transaction_with_a_dangling_reference_stores_nothing(
    client: TestClient, tokens: Tokens
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient("INT-TX-BAD"), "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": encounter("Patient/absent"),
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }
    assert client.post("/fhir", json=bundle, headers=auth(tokens.h1)).status_code == 400
    found = client.get(
        "/fhir/Patient", params={"identifier": f"{SYSTEM}|INT-TX-BAD"}, headers=auth(tokens.h1)
    ).json()
    assert found.get("total", 0) == 0


def test_batch_entry_with_a_dangling_reference_fails_alone(
    client: TestClient, tokens: Tokens
) -> None:
    pid = create(client, tokens.h1, patient("INT-BATCH"))
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": encounter("Patient/absent"),
                "request": {"method": "POST", "url": "Encounter"},
            },
            {
                "resource": encounter(f"Patient/{pid}"),
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }
    response = client.post("/fhir", json=batch, headers=auth(tokens.h1))
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0].startswith("400") and statuses[1].startswith("201")


def test_delete_of_a_referenced_resource_is_409_naming_the_referrer(
    client: TestClient, tokens: Tokens
) -> None:
    pid = create(client, tokens.h1, patient("INT-DEL"))
    eid = create(client, tokens.h1, encounter(f"Patient/{pid}"))
    response = client.delete(f"/fhir/Patient/{pid}", headers=auth(tokens.h1))
    assert response.status_code == 409
    issues = response.json()["issue"]
    assert len(issues) == 1  # one referrer, named once (subject and patient both index it)
    diagnostics = issues[0]["diagnostics"]
    assert diagnostics == (
        f"Unable to delete Patient/{pid} because at least one resource has a reference to this "
        f"resource. First reference found was resource Encounter/{eid} in path Encounter.subject"
    )
    assert client.get(f"/fhir/Patient/{pid}", headers=auth(tokens.h1)).status_code == 200
    # Once the referrer is gone, the delete goes through.
    assert client.delete(f"/fhir/Encounter/{eid}", headers=auth(tokens.h1)).status_code == 200
    assert client.delete(f"/fhir/Patient/{pid}", headers=auth(tokens.h1)).status_code == 200


def test_deleting_referrer_and_referenced_together_in_a_transaction(
    client: TestClient, tokens: Tokens
) -> None:
    pid = create(client, tokens.h1, patient("INT-DEL-TX"))
    eid = create(client, tokens.h1, encounter(f"Patient/{pid}"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": f"Patient/{pid}"}},
            {"request": {"method": "DELETE", "url": f"Encounter/{eid}"}},
        ],
    }
    response = client.post("/fhir", json=bundle, headers=auth(tokens.h1))
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def unchecked(fhir_settings: Settings, tokens: Tokens) -> Iterator[TestClient]:
    """The app with both checks turned off (HIE_ENFORCE_REFERENTIAL_INTEGRITY_ON_*=false)."""
    settings = fhir_settings.model_copy(
        update={
            "enforce_referential_integrity_on_write": False,
            "enforce_referential_integrity_on_delete": False,
        }
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_checks_can_be_turned_off(unchecked: TestClient, tokens: Tokens) -> None:
    eid = create(unchecked, tokens.h1, encounter("Patient/not-yet-here"))
    pid = create(unchecked, tokens.h1, patient("INT-OFF"))
    create(unchecked, tokens.h1, encounter(f"Patient/{pid}"))
    assert unchecked.delete(f"/fhir/Patient/{pid}", headers=auth(tokens.h1)).status_code == 200
    assert eid
