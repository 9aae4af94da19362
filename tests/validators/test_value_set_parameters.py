"""Parameterised value sets: filter expressions over declared parameters."""

from __future__ import annotations

from typing import Any

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.conformance import Context
from hie.validators.fhir import validate_resource
from hie.validators.fhir_rules.value_set_parameters import EXPRESSION_EXTENSION, PARAMETER_EXTENSION

CATALOG = read_catalog(default_catalog_path())
WHERE = "ValueSet.compose.include[0].filter[0].extension[0].value.ofType(Expression)"


def value_set(expression: str, language: str = "text/fhirpath") -> dict[str, Any]:
    return {
        "resourceType": "ValueSet",
        "url": "http://hie.example.cn/fhir/ValueSet/active-or-not",
        "status": "active",
        "extension": [
            {
                "url": PARAMETER_EXTENSION,
                "extension": [
                    {"url": "name", "valueCode": "p-inactive"},
                    {"url": "documentation", "valueMarkdown": "inactive codes or not"},
                ],
            }
        ],
        "compose": {
            "include": [
                {
                    "system": "http://snomed.info/sct",
                    "filter": [
                        {
                            "property": "inactive",
                            "op": "=",
                            "_value": {
                                "extension": [
                                    {
                                        "url": EXPRESSION_EXTENSION,
                                        "valueExpression": {
                                            "language": language,
                                            "expression": expression,
                                        },
                                    }
                                ]
                            },
                        }
                    ],
                }
            ]
        },
    }


def issues(resource: dict[str, Any]) -> set[tuple[str, str, str]]:
    report = validate_resource(resource, catalog=CATALOG, context=Context()).report
    return {
        (i.severity.value, i.rule, i.expression or "")
        for i in report.issues
        if i.rule.startswith("fhir.value-set.")
    }


def test_an_expression_over_a_declared_parameter_is_valid() -> None:
    assert issues(value_set("%p-inactive")) == set()


def test_an_undeclared_parameter_is_an_error_and_the_declared_one_unused() -> None:
    assert issues(value_set("%p-inactive3")) == {
        ("error", "fhir.value-set.parameter-expression", WHERE),
        ("warning", "fhir.value-set.parameter-unused", "ValueSet"),
    }


def test_the_expression_is_fhirpath_that_parses() -> None:
    assert ("error", "fhir.value-set.parameter-expression", WHERE) in issues(
        value_set("$ and %p-inactive")
    )
    assert ("error", "fhir.value-set.parameter-expression", WHERE) in issues(
        value_set("%p-inactive", language="text/cql")
    )
