"""The API driven by fhirpy, a FHIR client this project did not write, over a real uvicorn
server: CRUD, search with paging, a transaction, history, isolation between institutions."""

from __future__ import annotations

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

from tests.hospitals import Tokens


@pytest.fixture(scope="module")
def h1(live_server: str, tokens: Tokens) -> SyncFHIRClient:
    return SyncFHIRClient(live_server, authorization=f"Bearer {tokens.h1}")


@pytest.fixture(scope="module")
def h2(live_server: str, tokens: Tokens) -> SyncFHIRClient:
    return SyncFHIRClient(live_server, authorization=f"Bearer {tokens.h2}")


def test_crud_and_history(h1: SyncFHIRClient, h2: SyncFHIRClient) -> None:
    patient = h1.resource(
        "Patient",
        identifier=[{"system": "urn:oid:2.16.156.10011.1.2", "value": "HR-CRUD-1"}],
        gender="female",
        birthDate="1980-02-03",
    )
    patient.save()
    assert patient.id and patient.meta.versionId == "1"

    patient["gender"] = "male"
    patient.save()
    assert patient.meta.versionId == "2"
    patient.save()  # the same content again: no new version
    assert patient.meta.versionId == "2"

    read = h1.reference("Patient", patient.id).to_resource()
    assert read["gender"] == "male"

    history = h1.execute(f"Patient/{patient.id}/_history", method="get")
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    first = h1.execute(f"Patient/{patient.id}/_history/1", method="get")
    assert first["gender"] == "female"

    # Another institution neither sees nor finds it.
    with pytest.raises(ResourceNotFound):
        h2.reference("Patient", patient.id).to_resource()
    assert h2.resources("Patient").search(identifier="HR-CRUD-1").count() == 0

    patient.delete()
    with pytest.raises(ResourceNotFound):  # 410 Gone
        h1.reference("Patient", patient.id).to_resource()
    assert h1.resources("Patient").search(identifier="HR-CRUD-1").count() == 0
    types = h1.execute("Patient/_history", method="get", params={"_count": "10"})
    assert types["entry"][0]["request"]["method"] == "DELETE"


def test_search_pages_through_next_links(h1: SyncFHIRClient) -> None:
    patient = h1.resource("Patient", identifier=[{"system": "urn:test", "value": "paging"}])
    patient.save()
    for day in range(1, 26):
        h1.resource(
            "Observation",
            status="final",
            code={"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            subject={"reference": f"Patient/{patient.id}"},
            effectiveDateTime=f"2019-07-{day:02d}T08:00:00+08:00",
            valueQuantity={"value": 60 + day, "unit": "/min"},
        ).save()
    search = h1.resources("Observation").search(
        patient=f"Patient/{patient.id}", code="http://loinc.org|8867-4"
    )
    assert search.count() == 25
    everything = search.limit(10).fetch_all()  # three pages, following next links
    assert len(everything) == 25
    assert len({o.id for o in everything}) == 25
    july_tenth_on = search.search(date="ge2019-07-10").count()
    assert july_tenth_on == 16
    newest = search.sort("-date").limit(1).fetch()
    assert newest[0]["effectiveDateTime"].startswith("2019-07-25")
    included = h1.execute(
        "Observation",
        method="get",
        params={"patient": patient.id, "_include": "Observation:patient", "_count": "2"},
    )
    modes = [e["search"]["mode"] for e in included["entry"]]
    assert modes == ["match", "match", "include"]


def test_transaction_rewrites_references(h1: SyncFHIRClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
                "resource": {"resourceType": "Patient", "gender": "female"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:22222222-2222-4222-8222-222222222222",
                "resource": {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "AMB",
                    },
                    "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
                },
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }
    response = h1.execute("", method="post", data=bundle)
    assert response["type"] == "transaction-response"
    patient_path = response["entry"][0]["response"]["location"].split("/_history")[0]
    encounter_path = response["entry"][1]["response"]["location"].split("/_history")[0]
    encounter = h1.execute(encounter_path, method="get")
    assert encounter["subject"]["reference"] == patient_path
    found = h1.resources("Encounter").search(subject=patient_path, **{"class": "AMB"}).fetch()
    assert [e.id for e in found] == [encounter_path.split("/")[1]]


def test_invalid_resource_is_refused_with_an_outcome(h1: SyncFHIRClient) -> None:
    with pytest.raises(OperationOutcome):
        h1.resource("Patient", gender={"not": "a code"}).save()
