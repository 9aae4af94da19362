"""Public material through the API: the 704 official R4 examples (each stored or rejected with an
OperationOutcome, never a 500) and the Synthea transaction bundles (internal references
resolved; bundles whose conditional references point outside the folder are rejected, saying
so)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings
from tests.hospitals import Tokens, auth


@pytest.fixture(scope="module")
def lenient_client(fhir_settings: Settings, tokens: Tokens) -> Iterator[TestClient]:
    """A client that reports a server error as a 500 response instead of raising it."""
    with TestClient(create_app(fhir_settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _reason(body: dict[str, object]) -> str:
    issues = [i for i in body.get("issue", []) if isinstance(i, dict)]  # type: ignore[union-attr]
    errors = [i for i in issues if i.get("severity") in ("error", "fatal")] or issues
    if not errors:
        return "no issue"
    first = errors[0]
    coding = (first.get("details") or {}).get("coding") or [{}]
    return str(coding[0].get("code") or first.get("code"))


def submit(client: TestClient, token: str, resource: dict[str, object]) -> tuple[int, dict]:
    kind = resource["resourceType"]
    if kind == "Bundle" and resource.get("type") in ("transaction", "batch"):
        response = client.post("/fhir", json=resource, headers=auth(token))
    elif isinstance(resource.get("id"), str):
        response = client.put(f"/fhir/{kind}/{resource['id']}", json=resource, headers=auth(token))
    else:
        response = client.post(f"/fhir/{kind}", json=resource, headers=auth(token))
    return response.status_code, response.json() if response.content else {}


def test_every_official_example_is_stored_or_rejected_with_an_outcome(
    lenient_client: TestClient, tokens: Tokens, shared_data: Path
) -> None:
    folder = shared_data / "fhir-r4-examples"
    files = sorted(
        p for p in folder.glob("*.json") if p.name not in ("package.json", "MANIFEST.json")
    )
    assert len(files) == 704
    stored: Counter[str] = Counter()
    rejected: Counter[tuple[int, str]] = Counter()
    samples: dict[tuple[int, str], str] = {}
    crashed = []
    for path in files:
        resource = json.loads(path.read_bytes())
        status, body = submit(lenient_client, tokens.h1, resource)
        if status >= 500:
            crashed.append(path.name)
        elif status < 300:
            stored[str(resource["resourceType"])] += 1
            if resource.get("type") == "batch":  # entries may fail on their own
                for entry in body.get("entry", []):
                    if not entry["response"]["status"].startswith("2"):
                        assert entry["response"]["outcome"]["resourceType"] == "OperationOutcome"
        else:
            assert body.get("resourceType") == "OperationOutcome", path.name
            key = (status, _reason(body))
            rejected[key] += 1
            samples.setdefault(key, path.name)
    print(f"\nexamples: {sum(stored.values())} stored, {sum(rejected.values())} rejected")
    for (status, reason), n in rejected.most_common():
        print(f"  rejected {n:4d}  HTTP {status}  {reason}  (e.g. {samples[(status, reason)]})")
    assert not crashed, crashed
    assert sum(stored.values()) + sum(rejected.values()) == 704


def test_synthea_transactions_load_with_their_references_resolved(
    client: TestClient, tokens: Tokens, shared_data: Path
) -> None:
    folder = shared_data / "synthea-r4"
    loaded = refused = 0
    for path in sorted(folder.glob("*.json")):
        if path.name == "MANIFEST.json":
            continue
        bundle = json.loads(path.read_bytes())
        response = client.post("/fhir", content=path.read_bytes(), headers=auth(tokens.h2))
        conditional = any(
            "?identifier=" in json.dumps(e["resource"]) for e in bundle["entry"]
        ) and path.name.startswith("fdp-")
        if conditional:
            # Practitioner?identifier=… references need bundles that are not in the folder.
            assert response.status_code == 422, response.text
            diagnostics = " ".join(i["diagnostics"] for i in response.json()["issue"])
            assert "Practitioner?identifier=" in diagnostics
            refused += 1
            continue
        assert response.status_code == 200, response.text[:2000]
        entries = response.json()["entry"]
        assert len(entries) == len(bundle["entry"])
        assert all(e["response"]["status"] == "201 Created" for e in entries)
        loaded += 1
        # Every urn:uuid reference now names a stored resource of H2.
        first_id = entries[0]["response"]["location"].split("/_history")[0]
        patient = client.get(f"/fhir/{first_id}", headers=auth(tokens.h2)).json()
        encounters = client.get(
            "/fhir/Encounter",
            params={"patient": first_id, "_count": "1000"},
            headers=auth(tokens.h2),
        ).json()
        expected = sum(1 for e in bundle["entry"] if e["request"]["url"] == "Encounter")
        assert patient["resourceType"] == "Patient"
        assert encounters["total"] == expected
        for entry in encounters.get("entry", []):
            assert not entry["resource"]["subject"]["reference"].startswith("urn:")
    print(f"\nsynthea: {loaded} bundles loaded, {refused} refused (unresolved conditional refs)")
    assert loaded >= 30 and refused == 3
