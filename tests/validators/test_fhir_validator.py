"""FHIR validation, layer by layer, on small R4 resources and the official R4 examples."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from hie.catalog import Catalog, default_catalog_path, read_catalog
from hie.validators.fhir import parse_json, validate_bundle_entries, validate_resource
from hie.validators.report import Report, Severity
from hie.validators.rules import RULES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"
CATALOG = read_catalog(default_catalog_path())


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text("utf-8"))
    return data


def check(resource: dict[str, Any], catalog: Catalog = CATALOG, **kw: Any) -> Report:
    return validate_resource(resource, catalog=catalog, **kw).report


def found(report: Report) -> set[tuple[str, str | None]]:
    return {(i.rule, i.expression) for i in report.issues}


# -- JSON ------------------------------------------------------------------------------------


def test_parse_json_locates_syntax_errors() -> None:
    resource, report = parse_json(b'{"resourceType": "Patient",\n  "gender": male}')
    assert resource is None
    [issue] = report.issues
    assert (issue.severity, issue.rule, issue.line, issue.column) == (
        Severity.FATAL, "fhir.json.syntax", 2, 13,
    )  # fmt: skip


def test_parse_json_rejects_bad_utf8_duplicates_and_non_resources() -> None:
    _, report = parse_json('{"resourceType": "Patient", "id": "张"}'.encode("gbk"))
    assert [(i.rule, i.line) for i in report.issues] == [("fhir.json.encoding", 1)]
    _, report = parse_json(b'{"resourceType": "Patient",\n "id": "a",\n "id": "b"}')
    assert [(i.rule, i.line, i.column) for i in report.issues] == [
        ("fhir.json.duplicate-key", 3, 2)
    ]
    for body in (b"[]", b'{"id": "x"}', b'{"resourceType": "Patient", "x": NaN}'):
        resource, report = parse_json(body)
        assert resource is None and report.issues[0].severity is Severity.FATAL
    resource, report = parse_json(b'\xef\xbb\xbf{"resourceType": "Patient"}')
    assert resource == {"resourceType": "Patient"} and not report.issues


# -- (a) structure ---------------------------------------------------------------------------


def test_valid_resources_pass_with_their_tables() -> None:
    for name, table in (
        ("patient-cn.json", "FHIR.Patient"),
        ("encounter-amb.json", "FHIR.Encounter"),
        ("condition-htn.json", "FHIR.Condition"),
        ("document-c0002.json", "C0002"),
    ):
        result = validate_resource(fixture(name), catalog=CATALOG)
        assert not result.report.rejected, result.report.issues
        assert result.table is not None and result.table.code == table
        assert result.model is not None


def test_structure_errors_have_fhirpath_locations() -> None:
    patient = fixture("patient-cn.json")
    patient.update(active="yes", birthDate="1990-02-30", foo=1, deceasedBoolean=False)
    patient["deceasedDateTime"] = "2019"
    patient["name"].append({})
    report = check(patient)
    assert {
        ("fhir.structure.json-type", "Patient.active"),
        ("fhir.structure.format", "Patient.birthDate"),
        ("fhir.structure.element", "Patient.foo"),
        ("fhir.structure.choice", "Patient.deceasedDateTime"),
        ("fhir.invariant.ele-1", "Patient.name[1]"),
    } <= found(report)
    assert validate_resource(patient, catalog=CATALOG).model is None


def test_arrays_and_objects_must_match_the_cardinality() -> None:
    condition = fixture("condition-htn.json")
    code, status = condition["code"], condition["clinicalStatus"]
    condition.update(code=[code], clinicalStatus=[status], recordedDate=["2020-01-01"])
    condition["note"] = {"text": "a repeating element written as one object"}
    condition["identifier"] = [{"system": "urn:oid:1.2.3", "value": "1", "period": [{}]}]
    assert {
        ("fhir.structure.json-type", "Condition.code"),
        ("fhir.structure.json-type", "Condition.clinicalStatus"),
        ("fhir.structure.json-type", "Condition.recordedDate"),
        ("fhir.structure.json-type", "Condition.identifier[0].period"),
        ("fhir.structure.cardinality", "Condition.note"),
    } <= found(check(condition))
    # One issue per wrong element: nothing more is said inside the array.
    arrays = {e for r, e in found(check(condition)) if e and e.startswith("Condition.code")}
    assert arrays == {"Condition.code"}
    message = next(i.message for i in check(condition).issues if i.expression == "Condition.code")
    assert "single-valued in R4 (max 1): write it as a JSON object, not an array" in message


def test_missing_required_element_in_a_document_entry() -> None:
    bundle = fixture("document-c0002.json")
    del bundle["entry"][0]["resource"]["status"]
    report = check(bundle)
    assert ("fhir.structure.cardinality", "Bundle.entry[0].resource.status") in found(report)


def test_r4_elements_missing_from_r4b_and_r4b_only_types() -> None:
    # MedicinalProduct is R4 only: walked against R4, not rejected for want of a model.
    product = {"resourceType": "MedicinalProduct", "name": [{"productName": "x"}]}
    report = check(product, catalog=Catalog([*CATALOG, *_extra("MedicinalProduct")]))
    assert not report.rejected
    assert "fhir.structure.not-modelled" in {i.rule for i in report.issues}
    # SubscriptionTopic exists in R4B only.
    report = check({"resourceType": "SubscriptionTopic", "url": "http://x", "status": "draft"})
    assert ("fhir.structure.resource-type", "SubscriptionTopic") in found(report)


def _extra(resource_type: str) -> list[Any]:
    from hie.catalog import Table

    return [Table(f"FHIR.{resource_type}", "x", "x", "FHIR R4", fhir_resource_type=resource_type)]


# -- (b) bindings ----------------------------------------------------------------------------


def test_required_bindings() -> None:
    patient = fixture("patient-cn.json")
    patient["gender"] = "1"  # GB/T 2261.1, not FHIR
    patient["identifier"][0]["use"] = "primary"
    patient["telecom"][0]["system"] = "mobile"
    report = check(patient)
    assert {
        ("fhir.binding.required", "Patient.gender"),
        ("fhir.binding.required", "Patient.identifier[0].use"),
        ("fhir.binding.required", "Patient.telecom[0].system"),
    } <= found(report)
    condition = fixture("condition-htn.json")
    condition["clinicalStatus"]["coding"][0]["code"] = "chronic"
    condition["verificationStatus"] = {"text": "confirmed"}
    report = check(condition)
    assert {
        ("fhir.binding.required", "Condition.clinicalStatus.coding[0].code"),
        ("fhir.binding.required", "Condition.verificationStatus"),
    } <= found(report)


def test_encounter_class_policy() -> None:
    encounter = fixture("encounter-amb.json")
    encounter["class"]["code"] = "OUTPATIENT"
    assert ("fhir.binding.encounter-class", "Encounter.class.code") in found(check(encounter))
    encounter["class"] = {"system": "http://example.org/visit-types", "code": "1"}
    report = check(encounter)
    assert not report.rejected
    assert [i.rule for i in report.warnings] == ["fhir.binding.encounter-class"]


# -- (c) invariants --------------------------------------------------------------------------


def test_invariants() -> None:
    encounter = fixture("encounter-amb.json")
    encounter["period"]["end"] = "2019-07-01T00:10:00Z"  # 08:10 in Beijing, before the start
    assert ("fhir.invariant.per-1", "Encounter.period") in found(check(encounter))
    # Different precision, same day: FHIRPath's comparison is empty, which HL7's validator
    # counts as a failed constraint; a later day is decided and fine.
    encounter["period"]["end"] = "2019-07-01"
    assert ("fhir.invariant.per-1", "Encounter.period") in found(check(encounter))
    encounter["period"]["end"] = "2019-07-02"
    assert not check(encounter).rejected

    patient = fixture("patient-cn.json")
    patient["contact"] = [{"gender": "female"}]
    patient["contained"] = [{"resourceType": "Organization", "id": "o1", "name": "医院"}]
    patient["generalPractitioner"] = [{"reference": "#missing"}]
    assert {
        ("fhir.invariant.pat-1", "Patient.contact[0]"),
        ("fhir.invariant.dom-3", "Patient.contained[0]"),
        ("fhir.invariant.ref-1", "Patient.generalPractitioner[0].reference"),
    } <= found(check(patient))
    patient["generalPractitioner"] = [{"reference": "#o1"}]
    del patient["contact"]
    assert not check(patient).rejected


def test_bundle_invariants() -> None:
    bundle = fixture("document-c0002.json")
    bundle["entry"][2]["fullUrl"] = bundle["entry"][1]["fullUrl"]
    del bundle["identifier"]
    bundle["entry"].append(bundle["entry"].pop(0))
    rules = {i.rule for i in check(bundle).errors}
    assert {"fhir.invariant.bdl-7", "fhir.invariant.bdl-9", "fhir.invariant.bdl-11"} <= rules
    transaction = fixture("transaction.json")
    del transaction["entry"][0]["request"]
    assert "fhir.invariant.bdl-3" in {i.rule for i in check(transaction).errors}


# -- (d) platform ----------------------------------------------------------------------------


def test_resident_id_check_digit_is_a_warning_that_never_echoes_the_number() -> None:
    patient = fixture("patient-cn.json")
    patient["identifier"][0]["value"] = "110105194912310021"
    report = check(patient)
    assert not report.rejected
    [issue] = [i for i in report.issues if i.rule == "fhir.platform.resident-id"]
    assert issue.severity is Severity.WARNING
    assert issue.expression == "Patient.identifier[0].value"
    assert "110105194912310021" not in json.dumps([i.to_json() for i in report.issues])


def test_identifier_aliases_and_icd10_codes() -> None:
    report = check(fixture("patient-cn.json"))
    aliases = [i for i in report.issues if i.rule == "fhir.platform.identifier-system"]
    assert [i.severity for i in aliases] == [Severity.INFORMATION, Severity.INFORMATION]
    condition = fixture("condition-htn.json")
    condition["code"]["coding"][0]["code"] = "高血压"
    condition["code"]["coding"].append({"system": "2.16.156.10011.2.3.3.11", "code": "I10"})
    report = check(condition)
    assert not report.rejected
    assert {
        ("fhir.platform.icd10", "Condition.code.coding[0].code"),
        ("fhir.platform.icd10", "Condition.code.coding[2].system"),
    } <= found(report)


# -- (e) catalog -----------------------------------------------------------------------------


def test_catalog_mapping() -> None:
    report = check({"resourceType": "Library", "status": "draft", "type": {"text": "x"}})
    [issue] = report.errors
    assert issue.rule == "fhir.catalog.resource-type" and "Library" in issue.message
    encounter = fixture("encounter-amb.json")
    report = check(encounter, declared=["FHIR.Patient"])
    assert not report.rejected
    assert [i.rule for i in report.warnings] == ["fhir.catalog.undeclared"]
    assert not check(encounter, declared=["FHIR.Encounter"]).issues
    bundle = fixture("document-c0002.json")
    bundle["entry"][0]["resource"]["type"]["coding"][0]["code"] = "C9999"
    assert ("fhir.catalog.document-type", "Bundle.entry[0].resource.type") in found(check(bundle))
    bundle["type"] = "collection"
    assert "fhir.catalog.bundle-type" in {i.rule for i in check(bundle).errors}


def test_transaction_entries_are_validated_one_by_one() -> None:
    transaction = fixture("transaction.json")
    results = validate_bundle_entries(transaction, catalog=CATALOG)
    assert results[2] is None  # DELETE: no resource
    assert results[0] is not None and not results[0].report.rejected
    assert results[0].table is not None and results[0].table.code == "FHIR.Patient"
    assert results[1] is not None
    assert ("fhir.binding.required", "Bundle.entry[1].resource.status") in found(results[1].report)
    whole = validate_resource(transaction, catalog=CATALOG)
    assert whole.table is None and whole.report.rejected
    assert ("fhir.binding.required", "Bundle.entry[1].resource.status") in found(whole.report)


def test_every_issue_names_a_registered_rule_and_nothing_raises() -> None:
    bad: list[Any] = [
        {"resourceType": "Patient", "name": "x", "contact": [None], "_gender": 3},
        {"resourceType": "Bundle", "type": "document", "entry": [{"resource": []}]},
        {"resourceType": "Observation", "status": "final", "code": {"coding": [{"code": 1}]},
         "valueQuantity": {"value": True}, "component": "x"},
        {"resourceType": "Patient", "extension": _nested_extension(3000)},
        {"resourceType": 7},
    ]  # fmt: skip
    for resource in bad:
        report = check(resource)
        assert report.rejected
        assert all(i.rule in RULES for i in report.issues)


def _nested_extension(depth: int) -> list[Any]:
    extension: dict[str, Any] = {"url": "http://x", "valueString": "x"}
    for _ in range(depth):
        extension = {"url": "http://x", "extension": [extension]}
    return [extension]


# -- the official R4 examples -----------------------------------------------------------------


def test_official_examples_never_raise(shared_data: Path) -> None:
    outcomes: Counter[str] = Counter()
    for path in sorted((shared_data / "fhir-r4-examples").iterdir()):
        resource, report = parse_json(path.read_bytes())
        if resource is not None:
            report = check(resource)
        assert all(i.rule in RULES for i in report.issues)
        rules = sorted({i.rule for i in report.errors})
        outcomes["accepted" if not rules else "+".join(rules)] += 1
    print("\nofficial R4 examples:", dict(outcomes.most_common()))
    # Every type in the catalog validates; the rest are rejected by the catalog, not crashes.
    assert outcomes["accepted"] >= 340
    assert outcomes["fhir.catalog.resource-type"] >= 305  # Consent joined the catalog (main)
    structural = {k: v for k, v in outcomes.items() if "structure" in k or "binding" in k}
    assert structural == {"fhir.catalog.resource-type+fhir.structure.cardinality": 1}


def test_the_servers_policy_is_never_stricter_than_hl7s(shared_data: Path) -> None:
    """Over the official examples: every example the server refuses for FHIR reasons (the
    catalog aside), hie validate's HL7 defaults refuse too. One deliberate exception: the server
    knows that a relative reference (Procedure/example) names a stored resource of that type,
    so it checks that type against the element's targets, which HL7's validator does only with
    -assumeValidRestReferences (two R4 examples point at types R4 does not allow there)."""
    from hie.validators.conformance import SERVER, STANDALONE

    refused: dict[str, set[str]] = {"server": set(), "hl7": set()}
    for path in sorted((shared_data / "fhir-r4-examples").glob("*-*.json")):
        resource, _ = parse_json(path.read_bytes())
        if resource is None:
            continue
        for name, context in (("server", SERVER), ("hl7", STANDALONE)):
            report = check(resource, context=context)
            if any(
                not i.rule.startswith("fhir.catalog.")
                and not (name == "server" and i.rule == "fhir.reference.target-type")
                for i in report.errors
            ):
                refused[name].add(path.name)
    print(f"\nofficial R4 examples refused: server {len(refused['server'])}, "
          f"HL7 defaults {len(refused['hl7'])}")  # fmt: skip
    assert refused["server"] <= refused["hl7"]
    assert len(refused["server"]) < len(refused["hl7"])


def test_values_the_models_let_through_are_refused() -> None:
    from hie.catalog import default_catalog_path, read_catalog
    from hie.validators.fhir import validate_resource

    catalog = read_catalog(default_catalog_path())

    def rules(resource: dict) -> set[str]:
        return {i.rule for i in validate_resource(resource, catalog=catalog).report.errors}

    assert "fhir.value.id" in rules({"resourceType": "Patient", "id": "x" * 65})
    assert "fhir.value.id" not in rules({"resourceType": "Patient", "id": "x" * 64})
    reference = {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8=", "size": 9}}],
    }
    assert "fhir.value.attachment" in rules(reference)
    reference["content"][0]["attachment"]["size"] = 5  # "hello"
    assert "fhir.value.attachment" not in rules(reference)
