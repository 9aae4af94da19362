"""Validating against a profile the resource does not claim (hie validate --profile)."""

from __future__ import annotations

from typing import Any

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.conformance import Conformance, Context
from hie.validators.fhir import validate_resource

CATALOG = read_catalog(default_catalog_path())
URL = "http://hie.example.cn/fhir/StructureDefinition/named-patient"
NAMED_PATIENT = {
    "resourceType": "StructureDefinition",
    "url": URL,
    "name": "NamedPatient",
    "status": "active",
    "kind": "resource",
    "abstract": False,
    "type": "Patient",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
    "derivation": "constraint",
    "differential": {"element": [{"id": "Patient.name", "path": "Patient.name", "min": 1}]},
}


def rules(resource: dict[str, Any], *profiles: str) -> set[str]:
    context = Context(Conformance([NAMED_PATIENT]), profiles=profiles)
    report = validate_resource(resource, catalog=CATALOG, context=context).report
    return {i.rule for i in report.errors}


def test_a_requested_profile_applies_although_not_claimed() -> None:
    anonymous = {"resourceType": "Patient", "gender": "female"}
    assert rules(anonymous) == set()
    assert rules(anonymous, URL) == {"fhir.profile.cardinality"}
    assert rules({**anonymous, "name": [{"family": "王"}]}, URL) == set()


def test_a_requested_profile_for_another_type_or_unknown_is_an_error() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "体重"},
    }
    assert "fhir.profile.type" in rules(observation, URL)
    assert "fhir.profile.unknown" in rules({"resourceType": "Patient"}, URL + "-missing")
