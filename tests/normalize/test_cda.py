"""Normalization of CDA shared documents: each field of the record, from the fixtures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from hie.normalize.cda import normalize_cda, parse_date, parse_timestamp, timestamp_problem
from hie.validators.cda import validate_cda

SHANGHAI = ZoneInfo("Asia/Shanghai")
PLUS8 = timezone(timedelta(hours=8))


def record_of(cda, catalog, name: str | bytes, **kwargs):
    data = cda.bytes(name) if isinstance(name, str) else name
    result = validate_cda(data, catalog=catalog)
    assert not result.report.rejected, result.report.issues
    return normalize_cda(result.tree, result.table, **kwargs)


def test_an_outpatient_record_in_full(cda, catalog) -> None:
    record = record_of(cda, catalog, "C0002-valid.xml")
    assert record.kind == "cda"
    assert record.table_code == "C0002"
    assert record.logical_id == "2.16.156.10011.1.1^455755678-C0002-20190715-0001"
    assert record.set_id == "2.16.156.10011.1.1^455755678-C0002-20190715"
    assert record.version_number == 1
    assert record.replaces is None
    assert record.institution_code == "455755678"
    assert record.effective_time == datetime(2019, 7, 15, 9, 30, tzinfo=SHANGHAI)
    assert record.encounter_class == "AMB"
    assert record.encounter_start == datetime(2019, 7, 15, 9, 0, tzinfo=SHANGHAI)
    assert record.encounter_end == datetime(2019, 7, 15, 9, 45, tzinfo=SHANGHAI)
    assert record.author == "2.16.156.10011.1.7^D0107"
    assert record.diagnosis_categories == ("J20",)
    patient = record.patient
    assert patient is not None
    assert patient.resident_id == "320106197503211230"
    assert patient.resident_id_invalid is False
    assert patient.health_record_number == "320106000100012345"
    assert patient.health_card_number == "H32010600012345"
    assert patient.outpatient_number == "MZ201907150001"
    assert patient.inpatient_number is None
    assert patient.gender == "1"
    assert patient.birth_date == date(1975, 3, 21)
    assert patient.person_key == "id:320106197503211230"


def test_a_replacement_names_the_document_it_replaces(cda, catalog) -> None:
    original = record_of(cda, catalog, "C0002-valid.xml")
    replacement = record_of(cda, catalog, "C0002-replacement.xml")
    assert replacement.replaces == original.logical_id
    assert replacement.logical_id != original.logical_id
    assert replacement.version_number == 2


def test_a_discharge_summary_with_zone_offsets_and_patient_type(cda, catalog) -> None:
    record = record_of(cda, catalog, "C0053-valid.xml")
    assert record.effective_time == datetime(2019, 7, 20, 17, 0, tzinfo=PLUS8)
    assert record.encounter_class == "IMP"  # encompassingEncounter/code 3 住院 (CV09.00.404)
    assert record.encounter_start == datetime(2019, 7, 10, 17, 30, tzinfo=PLUS8)
    assert record.encounter_end == datetime(2019, 7, 20, 10, 0, tzinfo=PLUS8)
    assert record.patient is not None
    assert record.patient.inpatient_number == "ZY201907100088"
    assert record.patient.gender == "2"
    assert record.diagnosis_categories == ("K35",)


@pytest.mark.parametrize(
    ("name", "encounter_class"),
    [("C0003-valid.xml", "EMER"), ("C0049-valid.xml", None), ("C0001-valid.xml", None)],
)
def test_the_encounter_class_falls_back_on_the_table(cda, catalog, name, encounter_class) -> None:
    assert record_of(cda, catalog, name).encounter_class == encounter_class


def test_the_encounter_code_wins_over_the_table(cda, catalog) -> None:
    data = cda.edited(
        "C0002-valid.xml", ('<code code="AMB" codeSystem="2.16.840.1.113883.5.4"', '<code code="2"')
    )
    assert record_of(cda, catalog, data).encounter_class == "EMER"


@pytest.mark.parametrize(
    ("name", "categories"),
    [
        ("HSDB04.01-valid.xml", ("I10",)),
        ("HSDB04.02-valid.xml", ("E11",)),
        ("C0001-valid.xml", ("I10",)),
        ("C0007-valid.xml", ()),
    ],
)
def test_icd10_diagnosis_categories(cda, catalog, name, categories) -> None:
    assert record_of(cda, catalog, name).diagnosis_categories == categories


def test_only_the_icd10_system_and_its_sub_arcs_count(cda, catalog) -> None:
    sub_arc = 'codeSystem="2.16.156.10011.2.3.3.11.3"'
    data = cda.edited("C0002-valid.xml", (sub_arc, 'codeSystem="2.16.156.10011.2.3.3.11"'))
    assert record_of(cda, catalog, data).diagnosis_categories == ("J20",)
    data = cda.edited("C0002-valid.xml", (sub_arc, 'codeSystem="2.16.156.10011.2.3.3.111"'))
    assert record_of(cda, catalog, data).diagnosis_categories == ()


def test_a_bad_check_digit_keeps_no_resident_id_and_falls_back(cda, catalog) -> None:
    record = record_of(cda, catalog, "warning-check-digit.xml")
    assert record.patient is not None
    assert record.patient.resident_id is None
    assert record.patient.resident_id_invalid is True
    assert record.patient.person_key == "hr:320106000100012345"


def test_a_legacy_resident_id_is_normalized_to_18_characters(cda, catalog) -> None:
    data = cda.edited(
        "C0002-valid.xml", ('extension="320106197503211230"', 'extension="320106750321123"')
    )
    record = record_of(cda, catalog, data)
    assert record.patient is not None
    assert record.patient.resident_id == "320106197503211230"


def test_the_zone_of_timestamps_without_offset_is_a_parameter(cda, catalog) -> None:
    record = record_of(cda, catalog, "C0002-valid.xml", zone=UTC)
    assert record.effective_time == datetime(2019, 7, 15, 9, 30, tzinfo=UTC)


def test_the_normalized_record_serializes(cda, catalog) -> None:
    data = record_of(cda, catalog, "C0053-valid.xml").to_json()
    assert data["effective_time"] == "2019-07-20T17:00:00+08:00"
    assert data["patient"]["birth_date"] == "1989-06-30"


def test_missing_optional_parts_are_none(cda, catalog) -> None:
    text = cda.text("C0001-valid.xml")
    start, end = text.index("  <legalAuthenticator>"), text.index("  <component>")
    data = (text[:start] + text[end:]).replace('  <setId root="2.16.156.10011.1.1" ', "  <!-- ")
    data = data.replace('extension="455755678-C0001-20190701"/>', "-->")
    data = data.replace('  <versionNumber value="1"/>\n', "")
    record = record_of(cda, catalog, data.encode())
    assert record.set_id is None and record.version_number is None
    assert record.encounter_start is None and record.encounter_end is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20190715093000", datetime(2019, 7, 15, 9, 30, tzinfo=SHANGHAI)),
        ("20190715093000+0800", datetime(2019, 7, 15, 9, 30, tzinfo=PLUS8)),
        ("201907150930-0500", datetime(2019, 7, 15, 9, 30, tzinfo=timezone(-timedelta(hours=5)))),
        ("20190715", datetime(2019, 7, 15, tzinfo=SHANGHAI)),
        ("20190715093000.25", datetime(2019, 7, 15, 9, 30, 0, 250000, tzinfo=SHANGHAI)),
        ("20190231", None),
        ("20190715250000", None),
        ("2019-07-15", None),
        ("201907", None),
        ("20190715093000+2500", None),
    ],
)
def test_timestamps(value: str, expected: datetime | None) -> None:
    assert parse_timestamp(value) == expected
    if expected is not None:
        assert parse_timestamp(value).tzinfo is not None
    assert (timestamp_problem(value) is None) is (expected is not None)


def test_dates() -> None:
    assert parse_date("19750321") == date(1975, 3, 21)
    assert parse_date("19750321235959+0800") == date(1975, 3, 21)
    assert parse_date(None) is None
    assert parse_date("19750332") is None
