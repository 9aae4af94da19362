"""Extensions: known, in their context, in the right element, shaped as their definition says."""

from __future__ import annotations

from typing import Any

from hie.catalog import Catalog, Table
from hie.validators.conformance import SERVER, Conformance, Context, Policy
from hie.validators.fhir import validate_resource
from hie.validators.fhir_rules.extensions import compile_definition

CATALOG = Catalog(
    Table(f"FHIR.{t}", t, t, "FHIR R4", fhir_resource_type=t)
    for t in ("Patient", "Organization", "DeviceRequest")
)
HL7 = "http://hl7.org/fhir/StructureDefinition/"
LOCAL = "https://fhir.example-hospital.cn/StructureDefinition/"
ANIMAL = {
    "url": f"{HL7}patient-animal",
    "extension": [{"url": "species", "valueCodeableConcept": {"text": "dog"}}],
}


def extension_rules(
    resource: dict[str, Any], context: Context | None = None
) -> set[tuple[str, str]]:
    report = validate_resource(resource, catalog=CATALOG, context=context or Context()).report
    return {
        (i.rule, i.expression or "") for i in report.errors if i.rule.startswith("fhir.extension.")
    }


def patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", **elements}


def test_an_extension_nobody_defines_is_refused_unless_the_policy_accepts_it() -> None:
    local = patient(extension=[{"url": f"{LOCAL}religion", "valueString": "none"}])
    assert extension_rules(local) == {("fhir.extension.unknown", "Patient.extension[0]")}
    assert not extension_rules(local, Context(policy=Policy(any_extension=True)))
    assert not extension_rules(local, SERVER)  # the platform's ingest keeps local extensions
    domain = Context(policy=Policy(extension_domains=("https://fhir.example-hospital.cn/",)))
    assert not extension_rules(local, domain)
    other = Context(policy=Policy(extension_domains=("https://fhir.other.org/",)))
    assert extension_rules(local, other)


def test_an_extension_on_a_primitive_is_located_at_the_primitive() -> None:
    dob = patient(
        birthDate="1970-01-01",
        _birthDate={"extension": [{"url": f"{LOCAL}age", "valueInteger": 55}]},
    )
    assert extension_rules(dob) == {("fhir.extension.unknown", "Patient.birthDate.extension[0]")}


def test_extension_url_must_be_absolute_and_unversioned() -> None:
    relative = patient(extension=[{"url": "animal", "valueString": "dog"}])
    assert extension_rules(relative) == {("fhir.extension.url", "Patient.extension[0]")}
    versioned = patient(extension=[{"url": f"{HL7}patient-congregation|4.0.0", "valueString": "x"}])
    assert extension_rules(versioned) == {("fhir.extension.url", "Patient.extension[0]")}


def test_an_r4_extension_in_its_context_is_accepted_and_elsewhere_refused() -> None:
    assert not extension_rules(patient(extension=[ANIMAL]))
    organization = {"resourceType": "Organization", "id": "o1", "extension": [ANIMAL]}
    assert extension_rules(organization) == {
        ("fhir.extension.context", "Organization.extension[0]")
    }
    mothers = {"url": f"{HL7}humanname-mothers-family", "valueString": "García"}
    on_family = patient(name=[{"family": "López", "_family": {"extension": [mothers]}}])
    assert not extension_rules(on_family)
    on_name = patient(name=[{"family": "López", "extension": [mothers]}])
    assert extension_rules(on_name) == {("fhir.extension.context", "Patient.name[0].extension[0]")}


def test_a_regular_extension_in_modifier_extension_and_the_reverse_are_refused() -> None:
    misplaced = patient(modifierExtension=[ANIMAL])
    assert extension_rules(misplaced) == {
        ("fhir.extension.modifier", "Patient.modifierExtension[0]")
    }
    # R5's DeviceRequest.doNotPerform is a modifier: as a cross-version extension it is one too.
    do_not = {"url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-DeviceRequest.doNotPerform",
              "valueBoolean": True}  # fmt: skip
    request = {
        "resourceType": "DeviceRequest",
        "id": "d1",
        "status": "active",
        "intent": "order",
        "codeCodeableConcept": {"text": "pump"},
        "subject": {"reference": "Patient/p1"},
    }
    assert not extension_rules({**request, "modifierExtension": [do_not]})
    assert extension_rules({**request, "extension": [do_not]}) == {
        ("fhir.extension.modifier", "DeviceRequest.extension[0]")
    }


def test_complex_extensions_have_their_defined_sub_extensions_and_no_value() -> None:
    bad_name = {
        **ANIMAL,
        "extension": [*ANIMAL["extension"], {"url": "colour", "valueString": "b"}],
    }
    assert extension_rules(patient(extension=[bad_name])) == {
        ("fhir.extension.content", "Patient.extension[0].extension[1]")
    }
    missing = {
        "url": ANIMAL["url"],
        "extension": [{"url": "breed", "valueCodeableConcept": {"text": "x"}}],
    }
    assert extension_rules(patient(extension=[missing])) == {
        ("fhir.extension.content", "Patient.extension[0]")
    }
    wrong_type = {"url": ANIMAL["url"], "extension": [{"url": "species", "valueString": "dog"}]}
    assert extension_rules(patient(extension=[wrong_type])) == {
        ("fhir.extension.content", "Patient.extension[0].extension[0].valueString")
    }
    simple = {"url": f"{HL7}patient-interpreterRequired", "valueString": "yes"}
    assert extension_rules(patient(extension=[simple])) == {
        ("fhir.extension.content", "Patient.extension[0].valueString")
    }
    # DSTU2's Patient.animal: its sub-extensions are the element's children.
    xver = {
        "url": "http://hl7.org/fhir/1.0/StructureDefinition/extension-Patient.animal",
        "extension": [{"url": "x-breed", "valueCodeableConcept": {"text": "retriever"}}],
    }
    assert ("fhir.extension.content", "Patient.modifierExtension[0].extension[0]") in (
        extension_rules(patient(modifierExtension=[xver]))
    )


DEFINITION = {
    "resourceType": "StructureDefinition",
    "url": f"{LOCAL}triage",
    "name": "Triage",
    "status": "active",
    "kind": "complex-type",
    "abstract": False,
    "type": "Extension",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
    "derivation": "constraint",
    "context": [{"type": "element", "expression": "Patient"}],
    "contextInvariant": ["active.exists()"],
    "differential": {
        "element": [
            {"id": "Extension", "path": "Extension", "max": "1"},
            {"id": "Extension.url", "path": "Extension.url", "fixedUri": f"{LOCAL}triage"},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "type": [{"code": "code"}]},
        ]
    },
}


def test_a_definition_loaded_with_the_resources_is_used() -> None:
    loaded = Context(Conformance([DEFINITION]))
    good = patient(active=True, extension=[{"url": f"{LOCAL}triage", "valueCode": "red"}])
    assert extension_rules(good) == {("fhir.extension.unknown", "Patient.extension[0]")}
    assert not extension_rules(good, loaded)
    wrong = patient(active=True, extension=[{"url": f"{LOCAL}triage", "valueString": "red"}])
    assert extension_rules(wrong, loaded) == {
        ("fhir.extension.content", "Patient.extension[0].valueString")
    }
    no_active = patient(extension=[{"url": f"{LOCAL}triage", "valueCode": "red"}])
    assert extension_rules(no_active, loaded) == {
        ("fhir.extension.context", "Patient.extension[0]")
    }


def test_a_differential_without_ids_is_compiled_by_slice_names() -> None:
    elements = [
        {"path": "Extension"},
        {"path": "Extension.extension", "sliceName": "a", "min": 1, "max": "1"},
        {"path": "Extension.extension.url", "fixedUri": "a"},
        {"path": "Extension.extension.valueString", "type": [{"code": "string"}]},
        {"path": "Extension.extension", "sliceName": "b", "max": "*"},
        {"path": "Extension.value[x]", "max": "0"},
    ]
    record = compile_definition({"type": "Extension", "differential": {"element": elements}})
    assert record == {
        "value": [],
        "subs": {"a": {"min": 1, "max": "1", "value": ["string"]}, "b": {"max": "*"}},
    }
    assert compile_definition({"type": "Patient"}) is None
