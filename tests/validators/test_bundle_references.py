"""References inside Bundles (HL7 resolution rules), Reference target types, narrative links."""

from __future__ import annotations

from typing import Any

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.conformance import SERVER, Context
from hie.validators.fhir import validate_resource

CATALOG = read_catalog(default_catalog_path())


def errors(resource: dict[str, Any], context: Context | None = None) -> set[tuple[str, str]]:
    report = validate_resource(resource, catalog=CATALOG, context=context or Context()).report
    return {
        (i.rule, i.expression or "") for i in report.errors if i.rule.startswith("fhir.reference.")
    }


def composition(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Composition",
        "id": "doc",
        "status": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11503-0"}]},
        "date": "2026-01-01",
        "title": "Discharge summary",
        "subject": {"reference": "Patient/p1"},
        "author": [{"reference": "Practitioner/d1"}],
        **extra,
    }


def document(*entries: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "document",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"},
        "timestamp": "2026-01-01T00:00:00Z",
        "entry": [{"fullUrl": url, "resource": resource} for url, resource in entries],
    }


PATIENT = {"resourceType": "Patient", "id": "p1"}
DOCTOR = {"resourceType": "Practitioner", "id": "d1"}


def test_a_document_whose_relative_references_resolve_against_the_restful_base_is_valid() -> None:
    bundle = document(
        ("http://example.org/fhir/Composition/doc", composition()),
        ("http://example.org/fhir/Patient/p1", PATIENT),
        ("http://example.org/fhir/Practitioner/d1", DOCTOR),
    )
    assert errors(bundle) == set()


def test_relative_references_do_not_resolve_from_urn_uuid_entries() -> None:
    bundle = document(
        ("urn:uuid:0d5e7f4a-0000-4000-8000-000000000001", composition()),
        ("urn:uuid:0d5e7f4a-0000-4000-8000-000000000002", PATIENT),
        ("urn:uuid:0d5e7f4a-0000-4000-8000-000000000003", DOCTOR),
    )
    found = errors(bundle)
    assert ("fhir.reference.bundle-resolve", "Bundle.entry[0].resource.subject") in found
    assert ("fhir.reference.bundle-resolve", "Bundle.entry[0].resource.author[0]") in found
    assert ("fhir.reference.document-orphan", "Bundle.entry[1]") in found


def test_urn_uuid_references_resolve_by_full_url() -> None:
    bundle = document(
        (
            "urn:uuid:0d5e7f4a-0000-4000-8000-000000000001",
            composition(
                subject={"reference": "urn:uuid:0d5e7f4a-0000-4000-8000-000000000002"},
                author=[{"reference": "urn:uuid:0d5e7f4a-0000-4000-8000-000000000003"}],
            ),
        ),
        ("urn:uuid:0d5e7f4a-0000-4000-8000-000000000002", PATIENT),
        ("urn:uuid:0d5e7f4a-0000-4000-8000-000000000003", DOCTOR),
    )
    assert errors(bundle) == set()


def test_a_document_entry_nothing_links_to_is_an_orphan() -> None:
    bundle = document(
        ("http://example.org/fhir/Composition/doc", composition()),
        ("http://example.org/fhir/Patient/p1", PATIENT),
        ("http://example.org/fhir/Practitioner/d1", DOCTOR),
        ("http://example.org/fhir/Organization/o1", {"resourceType": "Organization", "id": "o1"}),
    )
    assert errors(bundle) == {("fhir.reference.document-orphan", "Bundle.entry[3]")}


def test_two_entries_with_the_referenced_full_url_are_ambiguous_unless_versioned() -> None:
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "weight"},
    }
    sections = [{"title": "Vitals", "entry": [{"reference": "Observation/o1"}]}]
    versions = [
        {**observation, "meta": {"versionId": "1"}},
        {**observation, "meta": {"versionId": "2"}},
    ]
    bundle = document(
        ("http://example.org/fhir/Composition/doc", composition(section=sections)),
        ("http://example.org/fhir/Patient/p1", PATIENT),
        ("http://example.org/fhir/Practitioner/d1", DOCTOR),
        ("http://example.org/fhir/Observation/o1", versions[0]),
        ("http://example.org/fhir/Observation/o1", versions[1]),
    )
    assert ("fhir.reference.bundle-resolve", "Bundle.entry[0].resource.section[0].entry[0]") in (
        errors(bundle)
    )
    sections[0]["entry"] = [
        {"reference": "Observation/o1/_history/1"},
        {"reference": "Observation/o1/_history/2"},
    ]
    assert errors(bundle) == set()


def test_a_restful_full_url_ends_with_the_resources_type_and_id() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "http://example.org/fhir/Patient/other", "resource": PATIENT},
            {
                "fullUrl": "http://example.org/fhir/Patient/p2",
                "resource": {"resourceType": "Patient"},
            },
            {"fullUrl": "http://example.org/fhir/Patient/p1", "resource": PATIENT},
        ],
    }
    assert errors(bundle) == {
        ("fhir.reference.full-url-id", "Bundle.entry[0]"),
        ("fhir.reference.full-url-id", "Bundle.entry[1]"),
    }


def test_a_matching_entry_of_another_type_is_an_error() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:0d5e7f4a-0000-4000-8000-000000000001",
                "resource": {
                    "resourceType": "Patient",
                    "generalPractitioner": [
                        {"reference": "Practitioner/0d5e7f4a-0000-4000-8000-000000000002"}
                    ],
                },
            },
            {
                "fullUrl": "urn:uuid:0d5e7f4a-0000-4000-8000-000000000002",
                "resource": {"resourceType": "Organization", "name": "Clinic"},
            },
        ],
    }
    assert errors(bundle) == {
        ("fhir.reference.bundle-type", "Bundle.entry[0].resource.generalPractitioner[0].reference")
    }


def test_reference_type_must_be_an_allowed_target() -> None:
    patient = {
        "resourceType": "Patient",
        "managingOrganization": {"reference": "Organization/o1", "type": "organization"},
        "generalPractitioner": [{"reference": "#dev"}],
        "contained": [{"resourceType": "Device", "id": "dev"}],
    }
    assert errors(patient) == {
        ("fhir.reference.target-type", "Patient.managingOrganization.type"),
        ("fhir.reference.target-type", "Patient.generalPractitioner[0].reference"),
    }


def test_an_unresolved_reference_of_another_type_is_left_to_the_server() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "weight"},
        "subject": {"reference": "Medication/m1"},
    }
    assert errors(observation) == set()


def observation_of(subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "weight"},
        "subject": {"reference": subject},
    }


def test_the_server_checks_the_type_a_relative_or_conditional_reference_names() -> None:
    # On the platform a relative reference names a stored resource of that type, and a
    # conditional one is resolved to one: either way the type is known.
    for subject in ("Organization/o1", "Organization?identifier=http://hie.example.cn/org|1"):
        assert errors(observation_of(subject), SERVER) == {
            ("fhir.reference.target-type", "Observation.subject.reference")
        }
    assert errors(observation_of("Patient?identifier=http://hie.example.cn/mrn|1"), SERVER) == set()
    assert errors(observation_of("Patient/p1"), SERVER) == set()


def test_a_transaction_entry_referring_to_an_entry_of_a_wrong_type_is_an_error() -> None:
    organization = "urn:uuid:0d5e7f4a-0000-4000-8000-000000000001"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": organization,
                "resource": {"resourceType": "Organization", "name": "Clinic"},
                "request": {"method": "POST", "url": "Organization"},
            },
            {
                "fullUrl": "urn:uuid:0d5e7f4a-0000-4000-8000-000000000002",
                "resource": observation_of(organization),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    expected = {("fhir.reference.target-type", "Bundle.entry[1].resource.subject.reference")}
    assert errors(bundle, SERVER) == expected
    assert errors(bundle) == expected  # the entry resolves in the Bundle: R4 itself says so


def test_narrative_anchor_links_must_resolve() -> None:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p id="name">Ann</p>'
            '<a href="#name">name</a> <a href="#gp">GP</a></div>',
        },
    }
    assert errors(patient) == {("fhir.reference.narrative-link", "Patient.text.div")}
    patient["text"]["div"] = (
        '<div xmlns="http://www.w3.org/1999/xhtml"><a href="urn:uuid:1">GP</a></div>'
    )
    assert errors(patient) == {("fhir.reference.narrative-link", "Patient.text.div")}
    patient["text"]["div"] = (
        '<div xmlns="http://www.w3.org/1999/xhtml"><a href="https://a.org">GP</a></div>'
    )
    assert errors(patient) == set()


def test_transaction_entries_referring_by_urn_uuid_pass() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0d5e7f4a-0000-4000-8000-000000000001",
                "resource": {"resourceType": "Patient", "gender": "female"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:0d5e7f4a-0000-4000-8000-000000000002",
                "resource": {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "AMB",
                    },
                    "subject": {"reference": "urn:uuid:0d5e7f4a-0000-4000-8000-000000000001"},
                },
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }
    assert errors(bundle, SERVER) == set()
