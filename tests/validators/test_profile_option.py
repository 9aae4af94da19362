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


def entry_errors(bundle: dict[str, Any], *by_rule: tuple[str, str]) -> list[str]:
    context = Context(Conformance([NAMED_PATIENT]), platform_rules=False, entry_profiles=by_rule)
    report = validate_resource(bundle, catalog=CATALOG, context=context).report
    return sorted(f"{i.expression} {i.rule}" for i in report.errors)


def bundle_of(bundle_type: str) -> dict[str, Any]:
    patients = [{"resourceType": "Patient", "id": f"p{n}"} for n in range(2)]
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"http://hie.example.cn/fhir/Patient/p{n}", "resource": patient}
        for n, patient in enumerate(patients)
    ]
    if bundle_type == "transaction":
        for entry in entries:
            entry["request"] = {"method": "POST", "url": "Patient"}
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}


def test_a_bundle_rule_picks_the_entries_checked_against_a_profile() -> None:
    for bundle_type in ("collection", "transaction"):
        bundle = bundle_of(bundle_type)
        assert entry_errors(bundle) == []
        first = "Bundle.entry[0].resource"
        second = "Bundle.entry[1].resource"
        assert entry_errors(bundle, ("Patient:0", URL)) == [f"{first} fhir.profile.cardinality"]
        assert entry_errors(bundle, (":1", URL)) == [f"{second} fhir.profile.cardinality"]
        assert entry_errors(bundle, ("Patient", URL)) == [
            f"{first} fhir.profile.cardinality",
            f"{second} fhir.profile.cardinality",
        ]
        assert entry_errors(bundle, ("Observation", URL)) == []
