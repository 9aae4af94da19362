"""Validation against profiles: claimed in meta.profile, global in an IG, or vital signs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.conformance import SERVER, STANDALONE, Conformance, Context, Policy
from hie.validators.fhir import validate_resource

CATALOG = read_catalog(default_catalog_path())
BASE = "http://hie.example.cn/fhir/StructureDefinition/"


def profile(
    name: str, type_: str, elements: list[Any], *, base: str = "", version: str = ""
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
            {"path": "Patient.active", "extension": 3, "binding": {"extension": [
                {"url": CROSS_VERSION + "binding.additional", "extension": "x"}]}},
            {"path": "Patient.address", "type": [{"code": "Address", "profile": "x",
                                                  "_profile": [None, 3]}, 4]},
            {"path": "Patient.telecom", "type": 5, "constraint": 6, "extension": {"x": 1}},
            {"path": "Patient.communication", "type": [{"code": "BackboneElement",
                                                        "profile": 7, "targetProfile": 8}]},
            {"path": "Patient.contact", "type": [{"code": "BackboneElement", "profile": [
                BASE + "Odd"], "_profile": [{"extension": [{"url":
                "http://hl7.org/fhir/StructureDefinition/elementdefinition-profile-element",
                "valueString": "Patient.contact"}]}]}]},
            {"path": "Patient.generalPractitioner", "type": [{"code": "Reference",
                                                             "targetProfile": [3, "x"]}]},
        ],
    )  # fmt: skip
    context = Context(Conformance([odd]), SERVER.policy)
    resource = patient(
        "Odd",
        name=[{"text": "x"}],
        link=[{"other": {"reference": "#"}}],
        _active={"extension": [3]},
        address=[{"city": "x"}],
        telecom=[{"system": "phone", "value": "1"}],
        communication=[{"language": {"text": "zh"}}],
        contact=[{"name": {"text": "y"}}],
        generalPractitioner=[{"reference": "Practitioner/1"}],
    )
    validate_resource(resource, catalog=CATALOG, context=context)
    validate_resource({"resourceType": "Patient", "meta": {"profile": [3, None]}}, catalog=CATALOG)


def checked(
    resource: dict[str, Any], *resources: dict[str, Any], policy: Policy = SERVER.policy
) -> set[tuple[str, str]]:
    """Problems of ``resource`` validated against the first of ``resources`` (a profile), as
    ``hie validate --profile`` does, with the others loaded alongside."""
    context = Context(Conformance(resources), policy, (str(resources[0]["url"]),))
    return problems(resource, context)


def test_slicing_by_the_type_of_a_choice_named_without_its_type() -> None:
    payload = profile(
        "Payload",
        "Communication",
        [
            {"id": "Communication.payload", "path": "Communication.payload", "slicing": {
                "discriminator": [{"type": "type", "path": "content"}], "rules": "closed"}},
            {"id": "Communication.payload:text", "path": "Communication.payload",
             "sliceName": "text", "max": "1"},
            {"id": "Communication.payload:text.contentString",
             "path": "Communication.payload.contentString", "type": [{"code": "string"}]},
        ],
    )  # fmt: skip
    text = {"contentString": "hello"}
    resource = {"resourceType": "Communication", "status": "completed", "payload": [text]}
    assert checked(resource, payload) == set()
    resource["payload"] = [text, {"contentReference": {"reference": "Binary/1"}}]
    assert checked(resource, payload) == {("fhir.profile.slicing", "Communication.payload[1]")}


SYSTEM = "http://hie.example.cn/fhir/CodeSystem/lab"
LAB = profile(
    "Lab",
    "Observation",
    [{"id": "Observation.code", "path": "Observation.code",
      "patternCodeableConcept": {"coding": [{"system": SYSTEM, "code": "glu"}]}}],
)  # fmt: skip
BATCH = profile(
    "LabBatch",
    "Bundle",
    [
        {"id": "Bundle.entry", "path": "Bundle.entry", "slicing": {"discriminator": [
            {"type": "profile", "path": "resource"}], "rules": "closed"}},
        {"id": "Bundle.entry:lab", "path": "Bundle.entry", "sliceName": "lab", "min": 1,
         "max": "1"},
        {"id": "Bundle.entry:lab.resource", "path": "Bundle.entry.resource",
         "type": [{"code": "Resource", "profile": [LAB["url"]]}]},
        {"id": "Bundle.entry:patient", "path": "Bundle.entry", "sliceName": "patient"},
        {"id": "Bundle.entry:patient.resource", "path": "Bundle.entry.resource",
         "type": [{"code": "Resource",
                   "profile": ["http://hl7.org/fhir/StructureDefinition/Patient"]}]},
    ],
)  # fmt: skip


def lab_result(code: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": SYSTEM, "code": code}]}}  # fmt: skip


def batch(*resources: dict[str, Any]) -> dict[str, Any]:
    entries = [{"fullUrl": f"urn:uuid:{i:08d}-0000-4000-8000-000000000000", "resource": r}
               for i, r in enumerate(resources)]  # fmt: skip
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def test_bundle_entries_sliced_by_the_profile_of_their_resource() -> None:
    patient_entry = {"resourceType": "Patient"}
    assert checked(batch(patient_entry, lab_result("glu")), BATCH, LAB) == set()
    assert checked(batch(lab_result("glu"), lab_result("glu")), BATCH, LAB) == {
        ("fhir.profile.cardinality", "Bundle")
    }
    # an Observation of another code conforms to no slice: missing required slice, closed
    assert checked(batch(lab_result("hb")), BATCH, LAB) == {
        ("fhir.profile.cardinality", "Bundle"),
        ("fhir.profile.slicing", "Bundle.entry[0]"),
    }


def test_slicing_by_the_type_of_the_resource_a_reference_resolves_to() -> None:
    problem_list = profile(
        "ProblemList",
        "List",
        [
            {"id": "List.entry", "path": "List.entry", "slicing": {"discriminator": [
                {"type": "type", "path": "item.resolve()"}], "rules": "closed"}},
            {"id": "List.entry:condition", "path": "List.entry", "sliceName": "condition",
             "min": 1, "max": "1"},
            {"id": "List.entry:condition.item", "path": "List.entry.item", "type": [
                {"code": "Reference", "targetProfile": [
                    "http://hl7.org/fhir/StructureDefinition/Condition"]}]},
        ],
    )  # fmt: skip
    condition = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/1"}}
    resource = {
        "resourceType": "List",
        "status": "current",
        "mode": "working",
        "contained": [condition],
        "entry": [{"item": {"reference": "#c1"}}],
    }
    assert checked(resource, problem_list) == set()
    two = {**resource, "contained": [condition, {**condition, "id": "c2"}]}
    two["entry"] = [{"item": {"reference": "#c1"}}, {"item": {"reference": "#c2"}}]
    assert checked(two, problem_list) == {("fhir.profile.cardinality", "List")}
    resource["entry"] = [{"item": {"reference": "#c1"}}, {"item": {"reference": "Patient/1"}}]
    assert checked(resource, problem_list) == {("fhir.profile.slicing", "List.entry[1]")}


def test_a_discriminator_a_slice_leaves_open_is_not_tested() -> None:
    meaning = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"
    ranges = profile(
        "Ranges",
        "Observation",
        [
            {"id": "Observation.referenceRange", "path": "Observation.referenceRange",
             "slicing": {"discriminator": [{"type": "pattern", "path": "type"},
                                           {"type": "pattern", "path": "appliesTo"}],
                         "rules": "open"}},
            {"id": "Observation.referenceRange:treatment", "path": "Observation.referenceRange",
             "sliceName": "treatment", "min": 1, "max": "1"},
            {"id": "Observation.referenceRange:treatment.type",
             "path": "Observation.referenceRange.type",
             "patternCodeableConcept": {"coding": [{"system": meaning, "code": "treatment"}]}},
        ],
    )  # fmt: skip
    treatment = {"type": {"coding": [{"system": meaning, "code": "treatment"}]}, "text": "x"}
    resource = {**lab_result("glu"), "referenceRange": [treatment]}
    assert checked(resource, ranges) == set()
    resource["referenceRange"] = [treatment, treatment]
    assert checked(resource, ranges) == {("fhir.profile.cardinality", "Observation")}


def test_slices_taking_their_rules_from_a_library_of_sections() -> None:
    library = profile(
        "Sections",
        "Composition",
        [
            {"path": "Composition.section", "sliceName": "meds"},
            {"path": "Composition.section.code", "min": 1,
             "patternCodeableConcept": {"coding": [{"system": SYSTEM, "code": "meds"}]}},
            {"path": "Composition.section.title", "min": 1},
        ],
    )  # fmt: skip
    element = "http://hl7.org/fhir/StructureDefinition/elementdefinition-profile-element"
    summary = profile(
        "Summary",
        "Composition",
        [
            {"path": "Composition.section", "slicing": {"discriminator": [
                {"type": "pattern", "path": "code"}], "rules": "open"}},
            {"path": "Composition.section", "sliceName": "medications", "min": 1,
             "type": [{"code": "BackboneElement", "profile": [library["url"]], "_profile": [
                 {"extension": [{"url": element,
                                 "valueString": "Composition.section:meds"}]}]}]},
        ],
    )  # fmt: skip
    section = {"code": {"coding": [{"system": SYSTEM, "code": "meds"}]},
               "entry": [{"reference": "MedicationStatement/1"}]}  # fmt: skip
    resource: dict[str, Any] = {
        "resourceType": "Composition", "status": "final", "type": {"text": "summary"},
        "date": "2024-05-01", "author": [{"display": "Dr Li"}], "title": "Summary",
        "section": [{**section, "title": "Medications"}],
    }  # fmt: skip
    assert checked(resource, summary, library) == set()
    resource["section"] = [section]
    assert checked(resource, summary, library) == {
        ("fhir.profile.cardinality", "Composition.section[0]")
    }
    resource["section"] = []
    del resource["section"]
    assert checked(resource, summary, library) == {("fhir.profile.cardinality", "Composition")}


def test_an_element_with_several_type_profiles_conforms_to_one_of_them() -> None:
    postal = profile("PostalAddress", "Address", [{"path": "Address.postalCode", "min": 1}])
    typed = profile("TypedAddress", "Address", [{"path": "Address.type", "min": 1}])
    for definition in (postal, typed):
        definition["kind"] = "complex-type"
    person = profile(
        "AddressedPatient",
        "Patient",
        [{"path": "Patient.address", "type": [
            {"code": "Address", "profile": [postal["url"], typed["url"]]}]}],
    )  # fmt: skip
    resource = {"resourceType": "Patient", "address": [{"city": "Beijing", "type": "postal"}]}
    assert checked(resource, person, postal, typed) == set()
    resource["address"] = [{"city": "Beijing"}]
    assert checked(resource, person, postal, typed) == {
        ("fhir.profile.conforms", "Patient.address[0]")
    }
    # with one type profile its own findings are reported
    person["differential"]["element"][0]["type"][0]["profile"] = [postal["url"]]
    assert checked(resource, person, postal) == {("fhir.profile.cardinality", "Patient.address[0]")}


def test_a_resource_in_a_place_constrained_to_a_profile_or_type() -> None:
    named = profile("NamedPatient", "Patient", [{"path": "Patient.name", "min": 1}])
    params = profile(
        "PatientParameters",
        "Parameters",
        [{"path": "Parameters.parameter.resource", "type": [
            {"code": "Resource", "profile": [named["url"]]}]}],
    )  # fmt: skip
    resource: dict[str, Any] = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "resource": {"resourceType": "Patient", "name": [{"text": "Li"}]}}
        ],
    }
    assert checked(resource, params, named) == set()
    del resource["parameter"][0]["resource"]["name"]
    assert checked(resource, params, named) == {
        ("fhir.profile.cardinality", "Parameters.parameter[0].resource")
    }
    manifests = profile(
        "Manifests",
        "Bundle",
        [{"path": "Bundle.entry.resource", "type": [{"code": "Resource", "profile": [
            "http://hl7.org/fhir/StructureDefinition/DocumentManifest"]}]}],
    )  # fmt: skip
    assert checked(batch({"resourceType": "Patient"}), manifests) == {
        ("fhir.profile.conforms", "Bundle.entry[0].resource")
    }


def test_reference_urls_must_name_a_target_type_when_rest_references_are_taken_as_valid() -> None:
    subjects = profile(
        "PatientSubject",
        "Observation",
        [{"path": "Observation.subject", "type": [{"code": "Reference", "targetProfile": [
            "http://hl7.org/fhir/StructureDefinition/Patient"]}]}],
    )  # fmt: skip
    resource = {**lab_result("glu"), "subject": {"reference": "Group/12345"}}
    # HL7's default: not resolved, not judged.
    assert (
        checked(resource, subjects, policy=replace(SERVER.policy, valid_rest_references=False))
        == set()
    )
    trusting = replace(SERVER.policy, valid_rest_references=True)
    assert checked(resource, subjects, policy=trusting) == {
        ("fhir.profile.target", "Observation.subject")
    }
    resource["subject"] = {"reference": "Patient/1"}
    assert checked(resource, subjects, policy=trusting) == set()


def test_member_of_in_a_profile_constraint() -> None:
    criticality = {
        "resourceType": "ValueSet",
        "url": "http://hie.example.cn/fhir/ValueSet/low",
        "status": "active",
        "compose": {"include": [{"system": SYSTEM, "concept": [{"code": "low"}]}]},
    }
    basic = profile(
        "LowBasic",
        "Basic",
        [{"path": "Basic.code", "constraint": [{"key": "low-1", "severity": "error",
          "human": "the code is a low one",
          "expression": f"memberOf('{criticality['url']}')"}]}],
    )  # fmt: skip
    resource = {"resourceType": "Basic", "code": {"coding": [{"system": SYSTEM, "code": "low"}]}}
    assert checked(resource, basic, criticality) == set()
    resource["code"] = {"coding": [{"system": SYSTEM, "code": "high"}]}
    assert checked(resource, basic, criticality) == {("fhir.profile.constraint", "Basic.code")}
    # a value set that cannot be expanded offline: the constraint is not judged
    basic["differential"]["element"][0]["constraint"][0]["expression"] = (
        "memberOf('http://snomed.info/sct?fhir_vs')"
    )
    assert checked(resource, basic) == set()


CROSS_VERSION = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ElementDefinition."
ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


def test_must_have_value_and_value_alternatives() -> None:
    present = profile("ActiveKnown", "Patient", [{"path": "Patient.active", "extension": [
        {"url": CROSS_VERSION + "mustHaveValue", "valueBoolean": True}]}])  # fmt: skip
    alternative = profile("ActiveOrAbsent", "Patient", [{"path": "Patient.active", "extension": [
        {"url": CROSS_VERSION + "valueAlternatives", "valueCanonical": ABSENT}]}])  # fmt: skip
    absent = {"extension": [{"url": ABSENT, "valueCode": "unknown"}]}
    resource: dict[str, Any] = {"resourceType": "Patient", "_active": absent}
    assert checked(resource, present) == {("fhir.profile.value-present", "Patient.active")}
    assert checked(resource, alternative) == set()
    assert checked({"resourceType": "Patient", "active": True}, present) == set()
    masked = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-nullFlavor",
                             "valueCode": "MSK"}]}  # fmt: skip
    assert checked({"resourceType": "Patient", "_active": masked}, alternative) == {
        ("fhir.profile.value-present", "Patient.active")
    }


def test_min_length_and_required_additional_binding() -> None:
    additional = {
        "url": CROSS_VERSION + "binding.additional",
        "extension": [{"url": "purpose", "valueCode": "required"},
                      {"url": "valueSet", "valueCanonical": UNITS["url"]}],
    }  # fmt: skip
    strict = profile(
        "Strict",
        "Observation",
        [
            {"path": "Observation.id", "extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/minLength", "valueInteger": 5}]},
            {"path": "Observation.valueQuantity", "binding": {
                "strength": "example", "valueSet": UNITS["url"], "extension": [additional]}},
        ],
    )  # fmt: skip
    litres = {"value": 1, "system": "http://unitsofmeasure.org", "code": "L"}
    resource = {**lab_result("glu"), "id": "obs", "valueQuantity": litres}
    assert checked(resource, strict, UNITS) == {
        ("fhir.profile.range", "Observation.id"),
        ("fhir.profile.binding", "Observation.valueQuantity"),
    }
    resource = {**resource, "id": "obs-12", "valueQuantity": {**litres, "code": "mL"}}
    assert checked(resource, strict, UNITS) == set()


def test_a_profile_element_r4_does_not_have_is_ignored() -> None:
    typo = profile("Typo", "Patient", [{"path": "Patient.dateOfBirth", "min": 1}])
    assert checked({"resourceType": "Patient"}, typo) == set()
