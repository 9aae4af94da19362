"""Value-level rules, R4 invariants and JSON format fidelity, as HL7's validator applies them."""

from __future__ import annotations

from typing import Any

from hie.catalog import Catalog, Table
from hie.validators.conformance import SERVER, Context, Policy
from hie.validators.fhir import parse_json, validate_resource
from hie.validators.fhir_rules.elements import resource_types
from hie.validators.fhir_xml import parse_fhir_xml
from hie.validators.report import Report

# Every R4 type has a table: the verdicts are about FHIR, not the platform's catalog.
CATALOG = Catalog(
    Table(f"FHIR.{t}", t, t, "FHIR R4", fhir_resource_type=t) for t in sorted(resource_types())
)
XHTML = "http://www.w3.org/1999/xhtml"
STRICT = Context(policy=Policy(examples=False, security_checks=True, html_in_markdown=False))


def check(resource: dict[str, Any], context: Context | None = None) -> Report:
    return validate_resource(resource, catalog=CATALOG, context=context or Context()).report


def errors(resource: dict[str, Any], context: Context | None = None) -> set[tuple[str, str]]:
    return {(i.rule, i.expression or "") for i in check(resource, context).errors}


def rules(resource: dict[str, Any], context: Context | None = None) -> set[str]:
    return {rule for rule, _ in errors(resource, context)}


# -- invariants generated from R4 ------------------------------------------------------------


def _question(link_id: str, conditions: int, **extra: Any) -> dict[str, Any]:
    when = [{"question": "q0", "operator": "exists", "answerBoolean": True}] * conditions
    return {"linkId": link_id, "type": "string", **({"enableWhen": when} if when else {}), **extra}


def test_questionnaire_items_with_several_conditions_say_how_to_combine_them() -> None:
    questionnaire: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "status": "draft",
        "item": [
            _question("q0", 0),
            _question("q1", 2),
            {"linkId": "g", "type": "group", "item": [_question("g1", 2)]},
        ],
    }
    # que-12, also on a nested item (indexed under its content reference, Questionnaire.item.item)
    assert {
        ("fhir.invariant.que-12", "Questionnaire.item[1]"),
        ("fhir.invariant.que-12", "Questionnaire.item[2].item[0]"),
    } <= errors(questionnaire)
    questionnaire["item"][1]["enableBehavior"] = "all"
    questionnaire["item"][2]["item"][0]["enableBehavior"] = "any"
    assert not check(questionnaire).rejected


def test_probability_of_a_risk_prediction_is_at_most_100() -> None:
    risk: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "prediction": [{"probabilityDecimal": 150}],
    }
    assert ("fhir.invariant.ras-2", "RiskAssessment.prediction[0]") in errors(risk)
    risk["prediction"][0]["probabilityDecimal"] = 0.25
    assert not check(risk).rejected


def test_period_start_of_lower_precision_on_the_same_day_as_the_end_fails_per_1() -> None:
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "period": {"start": "2023-06-21", "end": "2023-06-21T06:20:00Z"},
    }
    assert ("fhir.invariant.per-1", "Encounter.period") in errors(encounter)
    encounter["period"]["start"] = "2023-06-20"
    assert not check(encounter).rejected


def test_an_extension_has_a_value_or_extensions_but_not_both() -> None:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "extension": [
            {
                "url": "http://hospital.example.cn/fhir/ext/a",
                "valueString": "x",
                "extension": [{"url": "b", "valueString": "y"}],
            }
        ],
    }
    assert ("fhir.invariant.ext-1", "Patient.extension[0]") in errors(patient)
    del patient["extension"][0]["extension"]
    assert "fhir.invariant.ext-1" not in rules(patient)


def test_structure_definition_constraints() -> None:
    definition: dict[str, Any] = {
        "resourceType": "StructureDefinition",
        "url": "http://hospital.example.cn/fhir/StructureDefinition/p",
        "name": "P",
        "status": "draft",
        "kind": "resource",
        "abstract": False,
        "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "derivation": "constraint",
        "differential": {
            "element": [
                {"id": "Patient", "path": "Patient", "slicing": {"rules": "open"}},
                {
                    "id": "Patient.active",
                    "path": "Patient...active",
                    "defaultValueBoolean": True,
                    "type": [{"code": "boolean"}, {"code": "boolean"}],
                },
            ]
        },
    }
    found = rules(definition)
    # sdf-20 (slicing at the root), sdf-21 (default value), eld-13 (types unique), eld-19
    # (a whole-path match, as HL7's engine does, not a search)
    for key in ("sdf-20", "sdf-21", "eld-13", "eld-19"):
        assert f"fhir.invariant.{key}" in found


def test_narrative_image_refers_to_a_contained_resource() -> None:
    composition: dict[str, Any] = {
        "resourceType": "Composition",
        "contained": [{"resourceType": "Binary", "id": "img", "contentType": "image/png"}],
        "status": "final",
        "type": {"text": "x"},
        "date": "2021-02-01",
        "author": [{"display": "y"}],
        "title": "z",
        "section": [
            {
                "text": {
                    "status": "additional",
                    "div": f'<div xmlns="{XHTML}"><img src="#img" alt="a"/></div>',
                }
            }
        ],
    }
    assert "fhir.invariant.dom-3" not in rules(composition)
    composition["section"][0]["text"]["div"] = f'<div xmlns="{XHTML}">a</div>'
    assert ("fhir.invariant.dom-3", "Composition.contained[0]") in errors(composition)


# -- values ----------------------------------------------------------------------------------


def _response(questionnaire: str) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": questionnaire,
    }


def test_canonical_urls_are_absolute_unless_fragments() -> None:
    assert ("fhir.value.canonical", "QuestionnaireResponse.questionnaire") in errors(
        _response("Questionnaire/q1")
    )
    assert "fhir.value.canonical" not in rules(
        _response("http://hospital.example.cn/fhir/Questionnaire/q1|2")
    )
    value_set = {"resourceType": "ValueSet", "status": "draft", "url": "ValueSet/local"}
    assert ("fhir.value.canonical", "ValueSet.url") in errors(value_set)
    # The server only warns: a relative canonical resolves on the server that holds it.
    report = check(_response("Questionnaire/q1"), SERVER)
    assert not report.rejected
    assert "fhir.value.canonical" in {i.rule for i in report.warnings}


def test_code_systems_are_absolute_and_not_value_sets() -> None:
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": [
                {"system": "Location1", "code": "a"},
                {"system": "http://hl7.org/fhir/ValueSet/observation-codes", "code": "b"},
                {"system": "http://loinc.org", "code": "8867-4"},
            ]
        },
    }
    found = {path for rule, path in errors(observation) if rule == "fhir.value.code-system"}
    assert found == {"Observation.code.coding[0].system", "Observation.code.coding[1].system"}
    # The bare national OIDs vendors write are accepted (the platform's report spec), with advice.
    observation["code"]["coding"] = [{"system": "2.16.156.10011.2.4", "code": "C0002"}]
    report = check(observation)
    assert not report.rejected
    assert [i.rule for i in report.warnings] == ["fhir.value.code-system"]
    value_set = {
        "resourceType": "ValueSet",
        "status": "draft",
        "url": "http://hospital.example.cn/fhir/ValueSet/v",
        "compose": {"include": [{"system": "#cs"}]},
    }
    assert ("fhir.value.code-system", "ValueSet.compose.include[0].system") in errors(value_set)


def test_urn_uuids_are_valid_and_lower_case() -> None:
    def bundle(full_url: str) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"fullUrl": full_url, "resource": {"resourceType": "Basic", "code": {"text": "x"}}}
            ],
        }

    upper = "urn:uuid:68D043B5-9ECF-4559-A57A-396E0D452311"
    assert ("fhir.value.uuid", "Bundle.entry[0].fullUrl") in errors(bundle(upper))
    short = "urn:uuid:6a2ee390-978e-42c6-8f88-c17dff3bd8a"
    assert "fhir.value.uuid" in rules(bundle(short))
    assert "fhir.value.uuid" not in rules(bundle(upper.lower()))


def test_strings_are_at_most_one_megabyte() -> None:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"text": "名" * 400_000}],
    }  # 1.2 MB in UTF-8
    assert ("fhir.value.string-length", "Patient.name[0].text") in errors(patient)
    patient["name"][0]["text"] = "名" * 300_000
    assert "fhir.value.string-length" not in rules(patient)


def test_policy_switches_example_urls_html_in_strings_and_markdown() -> None:
    reference: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": {"url": "http://repository.example.org/doc/1"}}],
    }
    assert not check(reference).rejected
    assert ("fhir.value.example-url", "DocumentReference.content[0].attachment.url") in errors(
        reference, STRICT
    )
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"text": "Standard <script>x</script>"}],
    }
    assert not check(patient).rejected
    assert ("fhir.value.html-string", "Patient.name[0].text") in errors(patient, STRICT)
    patient["name"][0]["text"] = "a < b and c > d"
    assert not check(patient, STRICT).rejected
    communication: dict[str, Any] = {
        "resourceType": "Communication",
        "status": "completed",
        "note": [{"text": "see <resource type>\\<id>"}],
    }
    assert not check(communication).rejected
    assert ("fhir.value.html-markdown", "Communication.note[0].text") in errors(
        communication, STRICT
    )


# -- JSON and XML format ---------------------------------------------------------------------


def test_json_comments_are_an_error_unless_allowed() -> None:
    body = (
        b'{"resourceType": "Patient",\n  // a comment\n  "id": "p1",'
        b' "telecom": [{"system": "url", "value": "http://a//b"}]}'
    )
    resource, report = parse_json(body)
    assert resource is None
    issue = report.issues[0]
    assert (issue.rule, issue.line, issue.column) == ("fhir.json.comments", 2, 3)
    resource, report = parse_json(body, allow_comments=True)
    assert resource is not None and not report.issues
    assert resource["telecom"][0]["value"] == "http://a//b"  # // inside a string is no comment
    _, report = parse_json(b'{"resourceType": "Patient",}')  # trailing comma: still a syntax error
    assert report.issues[0].rule == "fhir.json.syntax"


def test_fhir_comments_are_not_r4_json_but_xml_comments_are_fine() -> None:
    patient = {"resourceType": "Patient", "fhir_comments": ["note"], "active": True}
    assert ("fhir.structure.element", "Patient.fhir_comments") in errors(patient)
    xml = (
        b'<Patient xmlns="http://hl7.org/fhir"><!-- a comment -->'
        b'<active value="true"/><!-- another --></Patient>'
    )
    resource, report = parse_fhir_xml(xml, max_bytes=10_000)
    assert resource is not None and not report.rejected
    assert not check(resource).rejected
