"""Search result Bundles: matches of the searched types with ids, outcomes, links."""

from __future__ import annotations

from typing import Any

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.conformance import Context
from hie.validators.fhir import validate_resource

CATALOG = read_catalog(default_catalog_path())


def search_set(self_url: str | None, *entries: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"fullUrl": f"https://fhir.hie.example.cn/{r['resourceType']}/{n}", "resource": r}
            | ({"search": {"mode": mode}} if mode else {})
            for n, (mode, r) in enumerate(entries)
        ],
    }
    if self_url:
        bundle["link"] = [{"relation": "self", "url": self_url}]
    return bundle


def found(bundle: dict[str, Any]) -> set[tuple[str, str, str]]:
    report = validate_resource(bundle, catalog=CATALOG, context=Context()).report
    return {
        (i.severity.value, i.rule, i.expression or "")
        for i in report.issues
        if i.rule.startswith(("fhir.search-set.", "fhir.value.link"))
    }


PATIENT = {"resourceType": "Patient", "id": "0"}
OUTCOME = {
    "resourceType": "OperationOutcome",
    "id": "1",
    "issue": [{"severity": "information", "code": "informational"}],
}


def test_matches_of_the_searched_type_with_ids_and_an_outcome_are_valid() -> None:
    url = "https://fhir.hie.example.cn/fhir/Patient?name=王"
    assert found(search_set(url, ("match", PATIENT), ("outcome", OUTCOME))) == set()
    by_type = "https://fhir.hie.example.cn/fhir?_type=Patient,Observation"
    assert found(search_set(by_type, ("match", PATIENT))) == set()


def test_a_match_without_id_or_of_another_type_is_an_error() -> None:
    url = "https://fhir.hie.example.cn/fhir/Observation?code=8310-5"
    bundle = search_set(url, ("match", {"resourceType": "Patient"}))
    report = validate_resource(bundle, catalog=CATALOG, context=Context()).report
    messages = [i.message for i in report.errors if i.rule == "fhir.search-set.match"]
    assert len(messages) == 2
    assert "has an id" in messages[0]
    assert "does not answer a search for Observation" in messages[1]


def test_an_outcome_entry_is_an_operation_outcome() -> None:
    url = "https://fhir.hie.example.cn/fhir/Patient?name=王"
    assert found(search_set(url, ("outcome", PATIENT))) == {
        ("error", "fhir.search-set.outcome", "Bundle.entry[0].resource")
    }


def test_an_undescribed_search_set_is_worth_warnings() -> None:
    assert found(search_set(None, (None, PATIENT))) == {
        ("warning", "fhir.search-set.described", "Bundle"),
    }


def test_each_link_relation_occurs_once() -> None:
    url = "https://fhir.hie.example.cn/fhir/Patient?name=王"
    bundle = search_set(url, ("match", PATIENT))
    bundle["link"] += [{"relation": "next", "url": url + "&page=2"}] * 2
    assert found(bundle) == {("error", "fhir.value.link", "Bundle.link")}
