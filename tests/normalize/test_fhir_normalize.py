"""FHIR resources to normalized records, and identifier systems made canonical."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from hie.catalog import default_catalog_path, read_catalog
from hie.normalize.fhir import canonical_identifiers, normalize_resource, parse_date_time

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"
CATALOG = read_catalog(default_catalog_path())


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text("utf-8"))
    return data


def table(code: str) -> Any:
    found = CATALOG.get(code)
    assert found is not None
    return found


def test_patient_identity_from_an_alias_system() -> None:
    record = normalize_resource(fixture("patient-cn.json"), table("FHIR.Patient"))
    assert record.logical_id == "Patient/p1" and record.kind == "fhir"
    assert record.patient is not None
    assert record.patient.resident_id == "11010519491231002X"  # trimmed, upper-case X
    assert record.patient.health_record_number == "HR-3201-0001"
    assert (record.patient.gender, record.patient.birth_date) == ("male", date(1949, 12, 31))
    assert record.patient.person_key == "id:11010519491231002X"


def test_invalid_resident_id_counts_no_person_by_it() -> None:
    patient = fixture("patient-cn.json")
    patient["identifier"][0]["value"] = "110105194912310021"
    record = normalize_resource(patient, table("FHIR.Patient"))
    assert record.patient is not None and record.patient.resident_id is None
    assert record.patient.resident_id_invalid
    assert record.patient.person_key == "hr:HR-3201-0001"
    del patient["identifier"][1]
    assert normalize_resource(patient, table("FHIR.Patient")).patient.person_key is None  # type: ignore[union-attr]


def test_encounter_and_condition() -> None:
    encounter = normalize_resource(fixture("encounter-amb.json"), table("FHIR.Encounter"))
    assert (encounter.encounter_class, encounter.encounter_status) == ("AMB", "finished")
    assert encounter.encounter_start == datetime(2019, 7, 1, 0, 30, tzinfo=UTC)
    assert encounter.effective_time == encounter.encounter_start
    assert encounter.subject_reference == "Patient/p1"
    condition = normalize_resource(fixture("condition-htn.json"), table("FHIR.Condition"))
    assert condition.diagnosis_categories == ("I10",)  # the SNOMED code counts for nothing
    assert condition.subject_reference == "Patient/p1"
    effective = condition.effective_time
    assert effective is not None and effective.utcoffset() is not None
    assert effective.isoformat() == "2019-07-01T00:00:00+08:00"


def test_document_bundle_is_one_record_of_its_table() -> None:
    record = normalize_resource(fixture("document-c0002.json"), table("C0002"))
    assert record.table_code == "C0002" and record.logical_id == "Bundle/doc1"
    assert record.chain_id == "urn:oid:2.16.156.10011.1.1|455755678-20190701-0001"
    assert record.patient is not None
    assert record.patient.resident_id == "11010519491231002X"
    assert record.encounter_class == "AMB"
    assert record.effective_time == datetime(2019, 7, 1, 1, 30, tzinfo=UTC)


def test_canonical_identifiers_copies_and_rewrites_aliases_everywhere() -> None:
    patient = fixture("patient-cn.json")
    patient["generalPractitioner"] = [
        {"identifier": {"system": "2.16.156.10011.1.4", "value": "D01"}}
    ]
    stored = canonical_identifiers(patient)
    assert [i["system"] for i in stored["identifier"]] == [
        "urn:oid:2.16.156.10011.1.3",
        "urn:oid:2.16.156.10011.1.2",
    ]
    assert stored["generalPractitioner"][0]["identifier"]["system"] == "urn:oid:2.16.156.10011.1.4"
    assert patient["identifier"][0]["system"] == "urn:oid:2.16.840.1.113883.2.23.1.19.1"


def test_parse_date_time() -> None:
    assert parse_date_time("2019") == parse_date_time("2019-01-01")
    assert parse_date_time("2019-07-01T08:00:00Z") == datetime(2019, 7, 1, 8, tzinfo=UTC)
    assert parse_date_time("2019-13-01") is None and parse_date_time(None) is None
