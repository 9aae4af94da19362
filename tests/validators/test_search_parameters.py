"""Search parameters claimed by CapabilityStatements and derived SearchParameters."""

from __future__ import annotations

from typing import Any

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.conformance import Conformance, Context
from hie.validators.fhir import validate_resource

CATALOG = read_catalog(default_catalog_path())


def rules(resource: dict[str, Any], context: Context | None = None) -> set[tuple[str, str]]:
    report = validate_resource(resource, catalog=CATALOG, context=context or Context()).report
    # The catalog's own refusal (no upload table for these types) is not what is tested here.
    return {
        (i.rule, i.expression or "")
        for i in report.errors
        if not i.rule.startswith("fhir.catalog.")
    }


def capability(parameter_type: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "draft",
        "date": "2026-11-01",
        "kind": "instance",
        "implementation": {"description": "hie"},  # cpb-2, cpb-14: an instance says which
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Patient",
                        "searchParam": [
                            {
                                "name": "gender",
                                "definition": "http://hl7.org/fhir/SearchParameter/individual-gender",
                                "type": parameter_type,
                            }
                        ],
                    }
                ],
            }
        ],
    }


def derived(**changes: Any) -> dict[str, Any]:
    return {
        "resourceType": "SearchParameter",
        "url": "http://hie.example.cn/fhir/SearchParameter/organization-name",
        "name": "OrganizationName",
        "derivedFrom": "http://hl7.org/fhir/SearchParameter/Organization-name",
        "status": "active",
        "description": "Organizations by name",
        "code": "name",
        "base": ["Organization"],
        "type": "string",
        "expression": "Organization.name",
        **changes,
    }


def test_capability_statement_search_param_keeps_its_definitions_type() -> None:
    assert not rules(capability("token"))
    assert rules(capability("date")) == {
        ("fhir.search.type", "CapabilityStatement.rest[0].resource[0].searchParam[0]")
    }


def test_derived_search_parameter_keeps_type_and_narrows_base() -> None:
    assert not rules(derived())
    assert rules(derived(type="token")) == {("fhir.search.type", "SearchParameter.type")}
    assert rules(derived(base=["Organization", "Patient"])) == {
        ("fhir.search.base", "SearchParameter.base[1]")
    }


def test_derived_from_a_loaded_definition() -> None:
    own = derived(url="http://hie.example.cn/fhir/SearchParameter/base", type="token")
    del own["derivedFrom"]
    context = Context(Conformance([own]))
    child = derived(derivedFrom="http://hie.example.cn/fhir/SearchParameter/base")
    assert rules(child, context) == {("fhir.search.type", "SearchParameter.type")}
    assert not rules({**child, "type": "token"}, context)


def test_composite_needs_two_components() -> None:
    component = {
        "definition": "http://hl7.org/fhir/SearchParameter/Observation-code",
        "expression": "code",
    }
    composite = derived(type="composite", component=[component])
    del composite["derivedFrom"]
    assert rules(composite) == {("fhir.search.composite", "SearchParameter")}
    assert not rules({**composite, "component": [component, component]})
