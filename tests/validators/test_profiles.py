"""Validation against profiles: claimed in meta.profile, global in an IG, or vital signs."""

from __future__ import annotations

from typing import Any

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.conformance import SERVER, STANDALONE, Conformance, Context
from hie.validators.fhir import validate_resource

CATALOG = read_catalog(default_catalog_path())
BASE = "http://hie.example.cn/fhir/StructureDefinition/"


def profile(
    name: str, type_: str, elements: list[dict[str, Any]], *, base: str = "", version: str = ""
) -> dict[str, Any]:
    definition = {
        "resourceType": "StructureDefinition",
        "url": BASE + name,
        "name": name,
        "status": "draft",
        "kind": "resource",
        "abstract": False,
        "type": type_,
        "baseDefinition": base or f"http://hl7.org/fhir/StructureDefinition/{type_}",
        "derivation": "constraint",
        "differential": {"element": elements},
    }
    if version:
        definition["version"] = version
    return definition


UNITS = {
    "resourceType": "ValueSet",
    "url": "http://hie.example.cn/fhir/ValueSet/dose-units",
    "status": "active",
    "compose": {"include": [{"system": "http://unitsofmeasure.org", "concept": [{"code": "mL"}]}]},
}
PATIENT = profile(
    "CnPatient",
    "Patient",
    [
        {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1},
        {"id": "Patient.identifier.system", "path": "Patient.identifier.system", "min": 1,
         "fixedUri": "urn:oid:2.16.156.10011.1.1"},
        {"id": "Patient.photo", "path": "Patient.photo", "max": "0"},
        {"id": "Patient.name.text", "path": "Patient.name.text", "maxLength": 10},
        {"id": "Patient.deceased[x]", "path": "Patient.deceased[x]",
         "type": [{"code": "boolean"}]},
    ],
)  # fmt: skip
# Derives from CnPatient: its rules apply too.
INPATIENT = profile(
    "CnInpatient",
    "Patient",
    [{"path": "Patient.birthDate", "min": 1}],
    base=BASE + "CnPatient",
    version="1.2.0",
)
MEDICATION_REQUEST = profile(
    "CnMedicationRequest",
    "MedicationRequest",
    [
        {"id": "MedicationRequest.dispenseRequest.quantity", "path":
         "MedicationRequest.dispenseRequest.quantity", "binding": {"strength": "required",
         "valueSet": UNITS["url"]}},
        {"id": "MedicationRequest.dispenseRequest.quantity.value", "path":
         "MedicationRequest.dispenseRequest.quantity.value", "maxValueDecimal": 999},
        {"id": "MedicationRequest.note", "path": "MedicationRequest.note",
         "constraint": [{"key": "cn-1", "severity": "error", "human": "a note has text",
                         "expression": "text.exists()"}]},
    ],
)  # fmt: skip
# Observation.category sliced by pattern: a "laboratory" category is required; closed.
OBSERVATION = profile(
    "CnLabObservation",
    "Observation",
    [
        {"id": "Observation.category", "path": "Observation.category", "slicing": {
            "discriminator": [{"type": "pattern", "path": "$this"}], "rules": "closed"}},
        {"id": "Observation.category:lab", "path": "Observation.category", "sliceName": "lab",
         "min": 1, "max": "1", "patternCodeableConcept": {"coding": [{"system":
         "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}},
    ],
)  # fmt: skip
CONTEXT = Context(
    Conformance([PATIENT, INPATIENT, MEDICATION_REQUEST, OBSERVATION, UNITS]), SERVER.policy
)


def problems(resource: dict[str, Any], context: Context = CONTEXT) -> set[tuple[str, str]]:
    report = validate_resource(resource, catalog=CATALOG, context=context).report
    return {
        (i.rule, i.expression or "")
        for i in report.errors
        if not i.rule.startswith("fhir.catalog.")
    }


def patient(claims: str = "CnPatient", **elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "meta": {"profile": [BASE + claims]}, **elements}


IDENTIFIER = [{"system": "urn:oid:2.16.156.10011.1.1", "value": "110101199001011234"}]


def test_a_resource_meeting_its_profile_is_valid() -> None:
    assert problems(patient(identifier=IDENTIFIER, deceasedBoolean=False)) == set()


def test_minimum_and_prohibited_elements_of_the_claimed_profile() -> None:
    found = problems(patient(photo=[{"contentType": "image/png"}]))
    assert found == {("fhir.profile.cardinality", "Patient")}
    report = validate_resource(patient(photo=[{"url": "x"}]), catalog=CATALOG, context=CONTEXT)
    messages = " ".join(i.message for i in report.report.errors)
    assert "Patient.identifier: minimum required = 1, but only found 0" in messages
    assert "Patient.photo" in messages


def test_fixed_value_max_length_and_choice_type() -> None:
    resource = patient(
        identifier=[{"system": "urn:oid:1.2.3", "value": "1"}],
        name=[{"text": "A name longer than ten"}],
        deceasedDateTime="2020-01-01",
    )
    assert problems(resource) == {
        ("fhir.profile.fixed", "Patient.identifier[0].system"),
        ("fhir.profile.range", "Patient.name[0].text"),
        ("fhir.profile.type", "Patient.deceasedDateTime"),
    }


def test_a_derived_profile_adds_its_rules_to_its_base_and_versions_resolve() -> None:
    # "1.2" names version 1.2.0; the base profile's identifier rule still applies.
    resource = patient("CnInpatient|1.2", identifier=IDENTIFIER)
    assert problems(resource) == {("fhir.profile.cardinality", "Patient")}
    assert problems(patient("CnInpatient", identifier=IDENTIFIER, birthDate="1990")) == set()


def test_an_unknown_profile_is_a_warning_only() -> None:
    report = validate_resource(patient("Unknown"), catalog=CATALOG, context=CONTEXT).report
    assert not report.rejected
    assert [i.rule for i in report.warnings] == ["fhir.profile.unknown"]


def medication_request(quantity: dict[str, Any], **elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "meta": {"profile": [BASE + "CnMedicationRequest"]},
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "amoxicillin"},
        "subject": {"reference": "Patient/1"},
        "dispenseRequest": {"quantity": quantity},
        **elements,
    }


def test_max_value_required_binding_and_constraint() -> None:
    good = {"value": 10, "system": "http://unitsofmeasure.org", "code": "mL"}
    assert problems(medication_request(good, note=[{"text": "after meals"}])) == set()
    bad = {"value": 1000, "system": "http://unitsofmeasure.org", "code": "L"}
    found = problems(medication_request(bad, note=[{"authorString": "Dr Li", "text": "x"}]))
    assert found == {
        ("fhir.profile.range", "MedicationRequest.dispenseRequest.quantity.value"),
        ("fhir.profile.binding", "MedicationRequest.dispenseRequest.quantity"),
    }


def observation(*categories: str) -> dict[str, Any]:
    system = "http://terminology.hl7.org/CodeSystem/observation-category"
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": {"profile": [BASE + "CnLabObservation"]},
        "status": "final",
        "code": {"text": "glucose"},
    }
    if categories:
        resource["category"] = [{"coding": [{"system": system, "code": c}]} for c in categories]
    return resource


def test_slicing_by_pattern_required_and_closed() -> None:
    assert problems(observation("laboratory")) == set()
    assert problems(observation()) == {("fhir.profile.cardinality", "Observation")}
    assert problems(observation("laboratory", "imaging")) == {
        ("fhir.profile.slicing", "Observation.category[1]")
    }


def test_global_profile_of_an_implementation_guide_applies_without_a_claim() -> None:
    guide = {
        "resourceType": "ImplementationGuide",
        "url": "http://hie.example.cn/fhir/ImplementationGuide/cn",
        "global": [{"type": "Patient", "profile": BASE + "CnPatient"}],
    }
    context = Context(Conformance([PATIENT, guide]), SERVER.policy)
    assert problems({"resourceType": "Patient"}, context) == {
        ("fhir.profile.cardinality", "Patient")
    }


def vital_sign(code: str, system: str = "http://loinc.org", **elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"}]}],
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/1"},
        "effectiveDateTime": "2024-05-01T08:00:00+08:00",
        **elements,
    }  # fmt: skip


CELSIUS = {"value": 36.8, "unit": "Cel", "system": "http://unitsofmeasure.org", "code": "Cel"}


def test_vital_signs_are_checked_against_the_r4_vital_signs_profiles() -> None:
    assert problems(vital_sign("8310-5", valueQuantity=CELSIUS), STANDALONE) == set()
    # SNOMED CT body temperature: the bodytemp profile still wants its LOINC code.
    snomed = vital_sign("276885007", "http://snomed.info/sct", valueQuantity=CELSIUS)
    assert problems(snomed, STANDALONE) == {("fhir.profile.cardinality", "Observation.code")}
    kelvin = {**CELSIUS, "unit": "K", "code": "K"}
    assert problems(vital_sign("8310-5", valueQuantity=kelvin), STANDALONE) == {
        ("fhir.profile.binding", "Observation.valueQuantity.code")
    }


def test_the_server_only_warns_about_vital_signs_profiles() -> None:
    resource = vital_sign("8867-4", valueQuantity={"value": 72, "unit": "beats/minute"})
    assert problems(resource, STANDALONE) == {
        ("fhir.profile.cardinality", "Observation.valueQuantity")
    }
    report = validate_resource(resource, catalog=CATALOG, context=SERVER).report
    assert not report.rejected
    assert {i.rule for i in report.warnings} >= {"fhir.profile.cardinality"}


def test_an_unrelated_observation_is_not_bound_to_vital_signs() -> None:
    report = validate_resource(
        {"resourceType": "Observation", "status": "final", "code": {"text": "glucose"}},
        catalog=CATALOG,
        context=SERVER,
    ).report
    assert not [i for i in report.issues if i.rule.startswith("fhir.profile.")]


def test_odd_profile_content_never_raises() -> None:
    odd = profile(
        "Odd",
        "Patient",
        [
            {"id": "Patient.name", "path": "Patient.name", "slicing": {"discriminator": [
                {"type": "value", "path": "resolve().x"}]}, "min": "x"},
            {"id": "Patient.name:a", "path": "Patient.name", "sliceName": "a", "min": 1},
            {"path": 3},
            "junk",
            {"id": "Patient.link.other", "path": "Patient.link.other", "constraint": [
                {"key": "x", "severity": "error", "expression": "((("}]},
        ],
    )  # fmt: skip
    context = Context(Conformance([odd]), SERVER.policy)
    resource = patient("Odd", name=[{"text": "x"}], link=[{"other": {"reference": "#"}}])
    validate_resource(resource, catalog=CATALOG, context=context)
    validate_resource({"resourceType": "Patient", "meta": {"profile": [3, None]}}, catalog=CATALOG)
