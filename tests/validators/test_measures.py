"""A MeasureReport against its Measure (loaded as a conformance resource)."""

from __future__ import annotations

import base64
import copy
from typing import Any

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.conformance import Conformance, Context
from hie.validators.fhir import validate_resource

CATALOG = read_catalog(default_catalog_path())
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
MEASURE_URL = "http://example.org/fhir/Measure/readmissions"


def population(code: str) -> dict[str, Any]:
    return {"code": {"coding": [{"system": POPULATION, "code": code}]}}


def measure(scoring: str) -> dict[str, Any]:
    return {
        "resourceType": "Measure",
        "url": MEASURE_URL,
        "status": "active",
        "scoring": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/measure-scoring", "code": scoring}
            ]
        },
        "group": [
            {
                "population": [population("initial-population"), population("numerator")],
                "stratifier": [{"code": {"text": "age-band"}}],
            }
        ],
    }


def report(**group: Any) -> dict[str, Any]:
    return {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": MEASURE_URL,
        "period": {"start": "2026-01-01", "end": "2026-03-31"},
        "group": [
            {
                "population": [
                    {**population("initial-population"), "count": 40},
                    {**population("numerator"), "count": 10},
                ],
                "stratifier": [{"code": [{"text": "age-band"}]}],
                **group,
            }
        ],
    }


def errors(resource: dict[str, Any], scoring: str = "proportion") -> set[tuple[str, str]]:
    context = Context(Conformance([measure(scoring)]))
    result = validate_resource(resource, catalog=CATALOG, context=context).report
    return {
        (i.rule, i.expression or "") for i in result.errors if i.rule.startswith("fhir.measure")
    }


def test_a_report_matching_its_measure_is_valid() -> None:
    assert errors(report(measureScore={"value": 0.25})) == set()


def test_without_the_measure_nothing_is_compared() -> None:
    result = validate_resource(report(), catalog=CATALOG, context=Context()).report
    assert not [i for i in result.errors if i.rule.startswith("fhir.measure")]


def test_populations_must_be_those_of_the_measure() -> None:
    wrong = report(measureScore={"value": 0.25})
    wrong["group"][0]["population"][1] = {**population("denominator"), "count": 40}
    assert errors(wrong) == {
        ("fhir.measure.population", "MeasureReport.group[0].population[1]"),
        ("fhir.measure.population", "MeasureReport.group[0]"),
    }


def test_stratifiers_must_be_those_of_the_measure() -> None:
    wrong = report(measureScore={"value": 0.25}, stratifier=[{"code": [{"text": "sex"}]}])
    assert errors(wrong) == {
        ("fhir.measure.stratifier", "MeasureReport.group[0].stratifier[0]"),
        ("fhir.measure.stratifier", "MeasureReport.group[0]"),
    }


def test_measure_score_follows_the_scoring() -> None:
    assert errors(report()) == {("fhir.measure.score", "MeasureReport.group[0]")}
    assert errors(report(measureScore={"value": 4})) == {
        ("fhir.measure.score", "MeasureReport.group[0].measureScore.value")
    }
    assert errors(report(measureScore={"value": 4}), "cohort") == {
        ("fhir.measure.score", "MeasureReport.group[0].measureScore")
    }


def test_subjects_are_listed_only_in_subject_list_reports() -> None:
    listed = report(measureScore={"value": 0.25})
    listed["group"][0]["population"][0]["subjectResults"] = {"reference": "#subjects"}
    assert errors(listed) == {("fhir.measure.subjects", "MeasureReport.group[0].population[0]")}
    subject_list = copy.deepcopy(listed)
    subject_list["type"] = "subject-list"
    subject_list["contained"] = [
        {
            "resourceType": "List",
            "id": "subjects",
            "status": "current",
            "mode": "snapshot",
            "entry": [{"item": {"reference": f"Patient/p{n}"}} for n in range(40)],
        }
    ]
    assert errors(subject_list) == set()
    subject_list["group"][0]["population"][0]["count"] = 41
    assert errors(subject_list) == {
        ("fhir.measure.subjects", "MeasureReport.group[0].population[0]")
    }


def test_groups_are_matched_by_code_when_there_are_several() -> None:
    two = report(measureScore={"value": 0.25})
    two["group"].append(copy.deepcopy(two["group"][0]))
    assert errors(two) == {
        ("fhir.measure.group", "MeasureReport.group[0]"),
        ("fhir.measure.group", "MeasureReport.group[1]"),
        ("fhir.measure.group", "MeasureReport"),
    }


def test_cql_criteria_name_definitions_of_the_library_they_name() -> None:
    cql = (
        "library Screening version '1'\ndefine \"Initial Population\": true\ndefine Adults: true\n"
    )
    library = {
        "resourceType": "Library",
        "url": "http://example.org/fhir/Library/screening",
        "name": "Screening",
        "status": "active",
        "type": {"coding": [{"code": "logic-library"}]},
        "content": [{"contentType": "text/cql", "data": base64.b64encode(cql.encode()).decode()}],
    }
    screening = {
        **measure("cohort"),
        "library": [library["url"]],
        "group": [
            {
                "population": [
                    {
                        **population("initial-population"),
                        "criteria": {
                            "language": "text/cql.identifier",
                            "expression": 'Screening."Initial Population"',
                        },
                    }
                ],
                "stratifier": [
                    {"criteria": {"language": "text/cql", "expression": name}}
                    for name in ("Screening.Adults", "Screening.Children", "Elsewhere.Children")
                ],
            }
        ],
    }
    context = Context(Conformance([library]))
    found = validate_resource(screening, catalog=CATALOG, context=context).report
    # Only the definition missing from a known library; a library not loaded is not judged.
    assert [(i.rule, i.expression) for i in found.errors if i.rule.startswith("fhir.measure")] == [
        ("fhir.measure.criteria", "Measure.group[0].stratifier[1].criteria")
    ]
