"""Codes decided without a terminology server: HL7's own code systems, the core's required
bindings, code systems loaded with --ig, and the rules of CodeSystem, ValueSet and ConceptMap."""

from __future__ import annotations

from typing import Any

from hie.catalog import Catalog, Table
from hie.validators.conformance import SERVER, STANDALONE, Conformance, Context, Policy
from hie.validators.fhir import validate_resource
from hie.validators.fhir_rules.elements import resource_types
from hie.validators.report import Report, Severity

# Every R4 type has a table: the platform's catalog of record types is not what is tested here.
CATALOG = Catalog(
    Table(f"FHIR.{t}", t, t, "FHIR R4", fhir_resource_type=t) for t in sorted(resource_types())
)
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def check(resource: dict[str, Any], context: Context = STANDALONE) -> Report:
    return validate_resource(resource, catalog=CATALOG, context=context).report


def errors(report: Report) -> set[tuple[str, str | None]]:
    return {(i.rule, i.expression) for i in report.errors}


def patient_with_identifier_type(code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": V2_0203, "code": code}
    if display is not None:
        coding["display"] = display
    return {
        "resourceType": "Patient",
        "identifier": [{"type": {"coding": [coding]}, "value": "110101199003077777"}],
    }


def test_codes_of_hl7_code_systems_are_checked() -> None:
    assert not check(patient_with_identifier_type("PRN", "Provider number")).issues
    assert not check(patient_with_identifier_type("PRN", "provider NUMBER")).rejected
    where = "Patient.identifier[0].type.coding[0]"
    report = check(patient_with_identifier_type("PRX"))
    assert errors(report) == {("fhir.code.unknown", f"{where}.code")}
    contract: dict[str, Any] = {
        "resourceType": "Contract",
        "legalState": {
            "coding": [{"system": "http://hl7.org/fhir/contract-legalstate", "code": "nope"}]
        },
    }
    assert ("fhir.code.unknown", "Contract.legalState.coding[0].code") in errors(check(contract))
    # Whether SNOMED CT has a concept needs a terminology server, local code systems are
    # unknown: not decided (a code that cannot be a concept identifier is, further below).
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "999999999999009"},
                {"system": "http://hospital.example.cn/lab", "code": "X1"},
            ]
        },
    }
    assert not check(observation).rejected


def test_wrong_display_is_an_error_for_hl7_and_a_warning_at_ingest() -> None:
    patient = patient_with_identifier_type("PRN", "Provider identifier")
    where = "Patient.identifier[0].type.coding[0].display"
    assert errors(check(patient)) == {("fhir.code.display", where)}
    report = check(patient, SERVER)
    assert not report.rejected
    assert [(i.rule, i.expression) for i in report.warnings] == [("fhir.code.display", where)]
    assert "Provider number" in report.warnings[0].message
    lenient = Context(policy=Policy(display_warnings=True))
    assert not check(patient, lenient).rejected


def test_required_bindings_of_every_core_element() -> None:
    # Not among the platform's hand-written bindings: generated from the R4 definitions.
    account = {"resourceType": "Account", "status": "open"}
    assert errors(check(account)) == {("fhir.binding.required", "Account.status")}
    account["status"] = "active"
    assert not check(account).rejected
    # A code given only as an extension (data absent) has no code.
    allergy: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "_category": [
            {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                        "valueCode": "unknown",
                    }
                ]
            }
        ],
        "patient": {"reference": "Patient/1"},
    }
    assert ("fhir.binding.required", "AllergyIntolerance.category[0]") in errors(check(allergy))
    # A required CodeableConcept needs a coding in the value set: text or a local code alone
    # is not enough.
    outcome_system = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
    event: dict[str, Any] = {
        "resourceType": "AdverseEvent",
        "actuality": "actual",
        "subject": {"reference": "Patient/1"},
        "outcome": {"text": "recovered"},
    }
    assert errors(check(event)) == {("fhir.binding.required", "AdverseEvent.outcome")}
    event["outcome"]["coding"] = [{"system": "http://hospital.example.cn/outcome", "code": "1"}]
    assert errors(check(event)) == {("fhir.binding.required", "AdverseEvent.outcome")}
    event["outcome"]["coding"].append({"system": outcome_system, "code": "resolved"})
    assert not check(event).rejected


def test_extensible_bindings_allow_other_code_systems() -> None:
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [{"coding": [{"system": "http://hospital.example.cn/visit", "code": "01"}]}],
    }
    assert not check(encounter).rejected


def test_loaded_code_systems_and_supplements() -> None:
    base: dict[str, Any] = {
        "resourceType": "CodeSystem",
        "url": "http://hospital.example.cn/cs/ward",
        "status": "active",
        "content": "complete",
        "concept": [{"code": "W1", "concept": [{"code": "W1a"}]}],
    }
    supplement: dict[str, Any] = {
        "resourceType": "CodeSystem",
        "url": "http://hospital.example.cn/cs/ward-zh",
        "status": "active",
        "content": "supplement",
        "supplements": "http://hospital.example.cn/cs/ward",
        "concept": [{"code": "W1", "designation": [{"language": "zh", "value": "一病区"}]}],
    }
    context = Context(Conformance([base, supplement]))

    def location(system: str, code: str) -> dict[str, Any]:
        return {
            "resourceType": "Location",
            "physicalType": {"coding": [{"system": system, "code": code}]},
        }

    assert not check(location(base["url"], "W1a"), context).rejected
    assert errors(check(location(base["url"], "W9"), context)) == {
        ("fhir.code.unknown", "Location.physicalType.coding[0].code")
    }
    assert errors(check(location(supplement["url"], "W1"), context)) == {
        ("fhir.code.system", "Location.physicalType.coding[0].system")
    }
    # A value set's URL is no code system either.
    value_set_url = "http://hl7.org/fhir/ValueSet/measure-type"
    assert ("fhir.code.system", "Location.physicalType.coding[0].system") in errors(
        check(location(value_set_url, "process"))
    )


def test_code_system_content_and_supplement_rules() -> None:
    not_present: dict[str, Any] = {
        "resourceType": "CodeSystem",
        "url": "http://hospital.example.cn/cs/x",
        "status": "active",
        "content": "not-present",
        "concept": [{"code": "a"}],
    }
    assert errors(check(not_present)) == {("fhir.terminology.content", "CodeSystem.concept[0]")}
    supplement: dict[str, Any] = {
        "resourceType": "CodeSystem",
        "url": "http://hospital.example.cn/cs/gender-zh",
        "status": "active",
        "content": "complete",
        "supplements": "http://hl7.org/fhir/administrative-gender",
        "concept": [{"code": "male"}, {"code": "man"}],
    }
    assert errors(check(supplement)) == {
        ("fhir.terminology.content", "CodeSystem.content"),
        ("fhir.terminology.content", "CodeSystem.concept[1]"),
    }


def test_code_system_properties() -> None:
    notselectable = "http://hl7.org/fhir/concept-properties#notSelectable"
    code_system: dict[str, Any] = {
        "resourceType": "CodeSystem",
        "url": "http://hospital.example.cn/cs/props",
        "status": "active",
        "content": "complete",
        "property": [
            {"code": "notSelectable", "uri": notselectable, "type": "boolean"},
            {"code": "rank", "type": "integer"},
            {"code": "ref", "type": "Coding"},
        ],
        "concept": [
            {
                "code": "a",
                "property": [
                    {"code": "notSelectable", "valueBoolean": True},
                    {"code": "rank", "valueInteger": 1},
                    {"code": "ref", "valueCoding": {"system": "http://x.example/cs", "code": "1"}},
                ],
            }
        ],
    }
    assert not check(code_system).rejected
    code_system["property"][0]["type"] = "dateTime"
    code_system["property"].append({"code": "rank", "type": "decimal"})
    code_system["concept"][0]["property"][1] = {"code": "rank", "valueString": "1"}
    assert errors(check(code_system)) == {
        ("fhir.terminology.property", "CodeSystem.property[0]"),
        ("fhir.terminology.property", "CodeSystem.property[3]"),
        ("fhir.terminology.property", "CodeSystem.concept[0].property[0]"),
        ("fhir.terminology.property", "CodeSystem.concept[0].property[1]"),
    }


def test_value_set_rules() -> None:
    coded: dict[str, Any] = {
        "resourceType": "CodeSystem",
        "url": "http://hospital.example.cn/cs/coded",
        "status": "active",
        "content": "complete",
        "property": [{"code": "site", "type": "Coding"}],
        "concept": [{"code": "s1"}],
    }
    value_set: dict[str, Any] = {
        "resourceType": "ValueSet",
        "url": "http://hospital.example.cn/vs/x",
        "status": "active",
        "compose": {
            "include": [
                {
                    "system": coded["url"],
                    "filter": [
                        {"property": "site", "op": "=", "value": f"{coded['url']}#s1"},
                        {"property": "notSelectable", "op": "=", "value": "false"},
                    ],
                },
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "filter": [{"property": "concept", "op": "is-a", "value": "_ActEncounterCode"}],
                },
            ]
        },
    }
    context = Context(Conformance([coded]))
    assert not check(value_set, context).rejected
    include = value_set["compose"]["include"]
    include[0]["filter"][0]["value"] = "s1"
    include[0]["filter"][1]["value"] = "1"
    include[1]["filter"][0]["value"] = "_NoSuchCode"
    include.append({"system": "#contained-cs"})
    where = "ValueSet.compose.include"
    assert errors(check(value_set, context)) >= {
        ("fhir.terminology.filter", f"{where}[0].filter[0]"),
        ("fhir.terminology.filter", f"{where}[0].filter[1]"),
        ("fhir.terminology.filter", f"{where}[1].filter[0]"),
        ("fhir.terminology.include-system", f"{where}[2]"),
    }
    include[0]["filter"][0]["value"] = f"{coded['url']}#s2"
    assert ("fhir.terminology.filter", f"{where}[0].filter[0]") in errors(check(value_set, context))


def test_concept_map_source_codes_are_in_the_source_value_set() -> None:
    source: dict[str, Any] = {
        "resourceType": "ValueSet",
        "url": "http://hospital.example.cn/vs/wards",
        "status": "active",
        "compose": {
            "include": [
                {"system": "http://hospital.example.cn/cs/ward", "concept": [{"code": "W1"}]}
            ]
        },
    }
    concept_map: dict[str, Any] = {
        "resourceType": "ConceptMap",
        "url": "http://hospital.example.cn/cm/wards",
        "status": "active",
        "sourceCanonical": source["url"],
        "group": [
            {
                "source": "http://hospital.example.cn/cs/ward",
                "element": [
                    {"code": "W1", "target": [{"code": "x", "equivalence": "equivalent"}]},
                    {"code": "W2", "target": [{"code": "y", "equivalence": "equivalent"}]},
                ],
            }
        ],
    }
    context = Context(Conformance([source]))
    assert errors(check(concept_map, context)) == {
        ("fhir.terminology.concept-map-source", "ConceptMap.group[0].element[1].code")
    }
    # Without the source value set nothing can be decided.
    assert not check(concept_map).rejected


def test_odd_shapes_never_raise() -> None:
    for resource in (
        {"resourceType": "CodeSystem", "status": "active", "content": "complete", "concept": [1]},
        {"resourceType": "CodeSystem", "status": "active", "content": "x", "property": [{}]},
        {"resourceType": "ValueSet", "status": "active", "compose": {"include": [{}]}},
        {"resourceType": "ConceptMap", "status": "active", "sourceUri": "x", "group": [{}]},
        {"resourceType": "Patient", "_gender": "male", "gender": None},
    ):
        report = check(resource)
        assert all(i.severity is not Severity.FATAL for i in report.issues)


def observation_coded(code: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
    }


def test_a_snomed_code_that_is_no_concept_identifier_is_refused_offline() -> None:
    """No terminology server is needed to know that a letter, a wrong check digit or a
    description's partition is no SNOMED CT concept; expressions are left to a server."""
    where = ("fhir.code.snomed-id", "Observation.code.coding[0].code")
    for concept in ("276885007", "22298006", "35901911000001104", "404684003"):
        assert where not in errors(check(observation_coded(concept))), concept
    expression = "404684003:363698007=39057004"
    assert where not in errors(check(observation_coded(expression)))
    for wrong in ("276885007x", "276885008", "1", "0276885007", "6547210000124112"):
        assert where in errors(check(observation_coded(wrong))), wrong
    # The platform stores what HAPI stores (no external terminology): a warning there.
    stored = check(observation_coded("276885007x"), SERVER)
    assert not stored.errors and {i.rule for i in stored.warnings} == {where[0]}


def test_a_value_set_listing_snomed_codes_that_are_no_concepts_is_refused() -> None:
    value_set = {
        "resourceType": "ValueSet",
        "status": "active",
        "compose": {
            "include": [
                {
                    "system": "http://snomed.info/sct",
                    "concept": [{"code": "1"}, {"code": "22298006"}],
                }
            ]
        },
    }
    assert errors(check(value_set)) == {
        ("fhir.code.snomed-id", "ValueSet.compose.include[0].concept[0]")
    }


def test_a_snomed_filter_constraint_must_be_ecl() -> None:
    """ECL without refinements is parsed offline; refinements and long-form operators are left
    to a terminology server."""

    def refused(ecl: str) -> bool:
        value_set = {
            "resourceType": "ValueSet",
            "status": "active",
            "compose": {
                "include": [
                    {
                        "system": "http://snomed.info/sct",
                        "filter": [{"property": "constraint", "op": "=", "value": ecl}],
                    }
                ]
            },
        }
        return ("fhir.terminology.filter", "ValueSet.compose.include[0].filter[0]") in errors(
            check(value_set)
        )

    for valid in (
        "<< 404684003 |Clinical finding|",
        "(<< 19829001 AND << 301867009) MINUS << 195967001",
        "^ 700043003",
        "<< 404684003: 363698007 = << 39057004",
        "descendantOf 404684003",
    ):
        assert not refused(valid), valid
    for invalid in ("234234 << 234234", "<< 404684003 AND", "(< 404684003", "<<"):
        assert refused(invalid), invalid
