"""The conditions of a Bundle resolved together (ifNoneExist, conditional update, conditional
references): each entry still gets the status it would get alone, entries see what earlier
entries of the same batch created, and several matches are a 412."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hie.cli import app
from tests.hospitals import Tokens, auth

SYSTEM = "urn:oid:2.16.156.10011.1.5"


def organization(value: str, system: str = SYSTEM, name: str = "医院") -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "identifier": [{"system": system, "value": value}],
        "name": name,
    }


def post(resource: dict[str, Any], condition: str | None = None) -> dict[str, Any]:
    request = {"method": "POST", "url": resource["resourceType"]}
    if condition is not None:
        request["ifNoneExist"] = condition
    return {"resource": resource, "request": request}


def statuses_and_ids(response: Any) -> list[tuple[str, str | None]]:
    found = []
    for entry in response.json()["entry"]:
        location = entry["response"].get("location") or ""
        resource_id = location.split("/_history/")[0].rsplit("/", 1)[-1] if location else None
        found.append((entry["response"]["status"].split()[0], resource_id))
    return found


def test_batch_of_conditional_creates_and_updates(client: TestClient, tokens: Tokens) -> None:
    h1, h2 = auth(tokens.h1), auth(tokens.h2)
    existing = client.post("/fhir/Organization", json=organization("B-OLD"), headers=h1).json()
    for _ in range(2):
        client.post("/fhir/Organization", json=organization("B-TWICE"), headers=h1)
    # Another institution's resource is never matched.
    client.post("/fhir/Organization", json=organization("B-NEW"), headers=h2)
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            post(organization("B-OLD"), f"identifier={SYSTEM}|B-OLD"),
            post(organization("B-TWICE"), f"identifier={SYSTEM}|B-TWICE"),
            post(organization("B-NEW"), f"identifier={SYSTEM}|B-NEW"),
            # The same condition again, and without the system: both find entry 2's resource.
            post(organization("B-NEW"), f"identifier={SYSTEM}|B-NEW"),
            post(organization("B-NEW"), "identifier=B-NEW"),
            # The value under another system is another identifier.
            post(organization("B-OLD", system="urn:other"), "identifier=urn:other|B-OLD"),
            {
                "resource": organization("B-OLD", name="改名"),
                "request": {"method": "PUT", "url": f"Organization?identifier={SYSTEM}|B-OLD"},
            },
            {
                "resource": organization("B-PUT"),
                "request": {"method": "PUT", "url": f"Organization?identifier={SYSTEM}|B-PUT"},
            },
            post(organization("B-PUT"), f"identifier={SYSTEM}|B-PUT"),
            # Not a single-value condition: resolved on its own, with the same outcome rules.
            post(organization("B-NEW"), f"identifier={SYSTEM}|B-NEW,{SYSTEM}|B-NONE"),
            post(organization("B-BAD"), "identifier:exact=B-BAD"),
        ],
    }
    response = client.post("/fhir", json=batch, headers=h1)
    assert response.status_code == 200
    found = statuses_and_ids(response)
    assert [status for status, _ in found] == [
        "200",
        "412",
        "201",
        "200",
        "200",
        "201",
        "200",
        "201",
        "200",
        "200",
        "400",
    ]
    assert found[0][1] == existing["id"] == found[6][1]
    assert found[2][1] == found[3][1] == found[4][1] == found[9][1]
    assert found[5][1] not in (existing["id"], found[2][1])
    assert found[7][1] == found[8][1]
    renamed = client.get(f"/fhir/Organization/{existing['id']}", headers=h1).json()
    assert renamed["name"] == "改名"
    # The whole batch again: everything is there, nothing new is created.
    again = statuses_and_ids(client.post("/fhir", json=batch, headers=h1))
    assert [s for s, _ in again] == ["200", "412", *["200"] * 8, "400"]
    assert [i for _, i in again][2:10] == [i for _, i in found][2:10]


def test_transaction_resolves_conditional_references(client: TestClient, tokens: Tokens) -> None:
    h1 = auth(tokens.h1)
    hospital = client.post("/fhir/Organization", json=organization("T-HOSP"), headers=h1).json()
    patient_url = "urn:uuid:7d0f6f1e-93a5-4c2f-9b53-0c7a3c1e0001"
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            post(organization("T-HOSP"), f"identifier={SYSTEM}|T-HOSP"),
            {
                "fullUrl": patient_url,
                "resource": {
                    "resourceType": "Patient",
                    "gender": "female",
                    "managingOrganization": {"reference": "Organization?identifier=T-HOSP"},
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {"code": "AMB"},
                    "subject": {"reference": patient_url},
                    "serviceProvider": {"reference": f"Organization?identifier={SYSTEM}|T-HOSP"},
                },
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }
    response = client.post("/fhir", json=transaction, headers=h1)
    assert response.status_code == 200, response.text
    found = statuses_and_ids(response)
    assert [s for s, _ in found] == ["200", "201", "201"]
    assert found[0][1] == hospital["id"]
    stored = client.get(f"/fhir/Patient/{found[1][1]}", headers=h1).json()
    assert stored["managingOrganization"]["reference"] == f"Organization/{hospital['id']}"
    encounter = client.get(f"/fhir/Encounter/{found[2][1]}", headers=h1).json()
    assert encounter["serviceProvider"]["reference"] == f"Organization/{hospital['id']}"
    assert encounter["subject"]["reference"] == f"Patient/{found[1][1]}"
    # A conditional reference matching nothing rejects the transaction, naming it.
    missing = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            post(
                {
                    "resourceType": "Patient",
                    "managingOrganization": {"reference": "Organization?identifier=T-NONE"},
                }
            )
        ],
    }
    refused = client.post("/fhir", json=missing, headers=h1)
    assert refused.status_code == 422
    assert "Organization?identifier=T-NONE" in refused.text


def test_references_to_a_type_the_element_does_not_allow_are_refused(
    client: TestClient, tokens: Tokens, tmp_path: Path
) -> None:
    # Observation.subject may name a Patient, Group, Device or Location, never an Organization:
    # by urn:uuid inside the transaction, by a conditional reference, or by a relative one.
    h1 = auth(tokens.h1)
    client.post("/fhir/Organization", json=organization("T-ORG"), headers=h1)
    org_url = "urn:uuid:7d0f6f1e-93a5-4c2f-9b53-0c7a3c1e0101"

    def observation(subject: str) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "weight"},
            "subject": {"reference": subject},
            "valueString": "72 kg",
        }

    for subject in (org_url, f"Organization?identifier={SYSTEM}|T-ORG"):
        transaction = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {**post(organization("T-ORG2")), "fullUrl": org_url},
                post(observation(subject)),
            ],
        }
        refused = client.post("/fhir", json=transaction, headers=h1)
        assert refused.status_code in (400, 422), refused.text
        issues = refused.json()["issue"]
        assert any(
            i["expression"] == ["Bundle.entry[1].resource.subject.reference"]
            and i["details"]["coding"][0]["code"] == "fhir.reference.target-type"
            for i in issues
        ), issues
        # hie validate's default verdict is the server's.
        path = tmp_path / "transaction.json"
        path.write_text(json.dumps(transaction))
        offline = CliRunner().invoke(app, ["validate", str(path)])
        assert offline.exit_code == 1
        assert "fhir.reference.target-type" in offline.stdout
    relative = observation("Organization/any")
    refused = client.post("/fhir/Observation", json=relative, headers=h1)
    assert refused.status_code in (400, 422), refused.text
    checked = client.post("/fhir/Observation/$validate", json=relative, headers=h1)
    assert "fhir.reference.target-type" in checked.text
    assert "Observation.subject.reference" in checked.text
