"""A profile's differential paths are elements of the type it constrains."""

from __future__ import annotations

from typing import Any

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.conformance import Conformance, Context
from hie.validators.fhir import validate_resource

CATALOG = read_catalog(default_catalog_path())


def profile(type_: str, *paths: str) -> dict[str, Any]:
    return {
        "resourceType": "StructureDefinition",
        "url": f"http://hie.example.cn/fhir/StructureDefinition/{type_.lower()}-profile",
        "name": f"{type_}Profile",
        "status": "draft",
        "kind": "resource" if type_ != "Extension" else "complex-type",
        "abstract": False,
        "type": type_,
        "baseDefinition": f"http://hl7.org/fhir/StructureDefinition/{type_}",
        "derivation": "constraint",
        "differential": {"element": [{"id": p, "path": p} for p in paths]},
    }


def paths_refused(resource: dict[str, Any]) -> list[str]:
    report = validate_resource(resource, catalog=CATALOG, context=Context()).report
    return [i.expression or "" for i in report.errors if i.rule == "fhir.profile.path"]


def test_paths_of_the_type_choices_backbones_and_resources_are_accepted() -> None:
    observation = profile(
        "Observation",
        "Observation",
        "Observation.value[x]",
        "Observation.valueQuantity",
        "Observation.valueQuantity.code",
        "Observation.component.code",
        "Observation.subject.reference",
        "Observation.contained.id",
    )
    assert paths_refused(observation) == []
    extension = profile("Extension", "Extension", "Extension.extension.value[x]", "Extension.url")
    assert paths_refused(extension) == []


def test_a_path_the_type_does_not_have_is_refused() -> None:
    wrong = profile("Observation", "Observation", "Observation.valueBla", "Patient.name")
    assert paths_refused(wrong) == [
        "StructureDefinition.differential.element[1]",
        "StructureDefinition.differential.element[2]",
    ]


def extension(url: str, base: str, fixed_url: str) -> dict[str, Any]:
    derived = profile("Extension", "Extension.url")
    derived.update(url=url, baseDefinition=base)
    derived["differential"]["element"][0]["fixedUri"] = fixed_url
    return derived


def test_a_derived_profile_cannot_fix_a_value_its_base_fixes_otherwise() -> None:
    base_url = "http://hie.example.cn/fhir/StructureDefinition/ext-base"
    base = extension(base_url, "http://hl7.org/fhir/StructureDefinition/Extension", base_url)
    conformance = Conformance()
    conformance.add(base)
    context = Context(conformance)
    derived_url = "http://hie.example.cn/fhir/StructureDefinition/ext-derived"

    def refused(resource: dict[str, Any]) -> list[str]:
        report = validate_resource(resource, catalog=CATALOG, context=context).report
        return [i.expression or "" for i in report.errors if i.rule == "fhir.profile.fixed"]

    # A derived extension that keeps its base's URL only narrows it; one that fixes its own
    # URL contradicts the base (HL7's snapshot generator refuses it).
    assert refused(extension(derived_url, base_url, base_url)) == []
    assert refused(extension(derived_url, base_url, derived_url)) == [
        "StructureDefinition.differential.element[0].fixedUri"
    ]
    # Without the base loaded, nothing to compare with.
    unknown = extension(derived_url, "http://elsewhere.example/ext", derived_url)
    assert refused(unknown) == []


def test_a_type_profile_is_a_profile_of_the_elements_type() -> None:
    def refused(code: str, canonical: str) -> list[str]:
        observation = profile("Observation", "Observation.value[x]")
        element = observation["differential"]["element"][0]
        element["type"] = [{"code": code, "profile": [canonical]}]
        report = validate_resource(observation, catalog=CATALOG, context=Context()).report
        return [i.expression or "" for i in report.errors if i.rule == "fhir.profile.type-profile"]

    core = "http://hl7.org/fhir/StructureDefinition/"
    # Count is a type of its own in R4; SimpleQuantity is a profile of Quantity.
    assert refused("Quantity", core + "Count") == [
        "StructureDefinition.differential.element[0].type[0].profile[0]"
    ]
    assert refused("Quantity", core + "SimpleQuantity") == []
    assert refused("Count", core + "Count") == []
    assert refused("Resource", core + "Observation") == []
