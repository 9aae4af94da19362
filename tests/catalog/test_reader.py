"""The shipped catalog is as report-spec.md describes it; broken ones are refused, with places."""

from __future__ import annotations

from pathlib import Path

import pytest

from hie.catalog import default_catalog_path, parse_catalog, read_catalog
from hie.errors import InvalidInput

HEADER = (
    "code,name_zh,name_en,standard,cda_template_id,template_id_confirmed,cda_code,"
    "fhir_resource_type,required_for,feeds\n"
)


def test_default_catalog_requires_53_wst500_tables_of_hospitals() -> None:
    catalog = read_catalog(default_catalog_path())
    hospital = catalog.required_for("hospital")
    assert [t.code for t in hospital] == [f"C{n:04d}" for n in range(1, 54)]
    for n, table in enumerate(hospital, start=1):
        assert table.cda_template_id == f"2.16.156.10011.2.1.1.{20 + n}"
        assert table.cda_code == table.code
        assert table.standard == "WS/T 500-2016"
    assert catalog.get("C0002").name_zh == "门（急）诊病历"  # type: ignore[union-attr]
    assert catalog.get("C0053").name_zh == "出院小结"  # type: ignore[union-attr]


def test_default_catalog_requires_20_wst483_tables_of_districts() -> None:
    catalog = read_catalog(default_catalog_path())
    district = [t.code for t in catalog.required_for("district")]
    assert len(district) == 20
    assert district[0] == "HSDA00.01"
    assert {"HSDB04.01", "HSDB04.02", "HSDC00.05"} <= set(district)
    # Only 成人健康体检's templateId is confirmed; the others must not reject documents alone.
    confirmed = [
        t.code for t in catalog if t.standard.startswith("WS/T 483") and t.template_id_confirmed
    ]
    assert confirmed == ["HSDC00.01"]
    assert catalog.by_template_id("2.16.156.10011.2.1.1.16").code == "HSDC00.01"  # type: ignore[union-attr]


def test_fhir_tables_are_optional_and_feed_the_counted_figures() -> None:
    catalog = read_catalog(default_catalog_path())
    fhir = [t for t in catalog if t.fhir_resource_type]
    assert all(t.code == f"FHIR.{t.fhir_resource_type}" and not t.required_for for t in fhir)
    assert catalog.by_resource_type("Encounter").feeds == {"outpatient_visits", "discharges"}  # type: ignore[union-attr]
    assert catalog.by_resource_type("Patient").feeds == {"health_records.basic"}  # type: ignore[union-attr]
    feeds = {t.code: t.feeds for t in catalog if t.feeds and not t.fhir_resource_type}
    assert feeds == {
        "C0002": {"outpatient_visits"},
        "C0003": {"outpatient_visits"},
        "C0053": {"discharges"},
        "HSDA00.01": {"health_records.basic"},
        "HSDB04.01": {"health_records.hypertension"},
        "HSDB04.02": {"health_records.diabetes"},
    }


def test_every_table_has_chinese_and_english_names() -> None:
    for table in read_catalog(default_catalog_path()):
        assert table.name_zh and table.name_en and table.name_zh != table.name_en


def test_broken_catalog_reports_every_problem_with_line_and_field() -> None:
    data = (
        HEADER
        + "C0001,病历概要,Summary,WS/T 500-2016,2.16.156.10011.2.1.1.21,yes,C0001,,hospital,\n"
        + "C0001,重复,Duplicate,WS/T 500-2016,,,C0099,,hospital,\n"
        + "C0002,门诊,Outpatient,WS/T 500-2016,2.16.x,maybe,C0002,,hopsital,visits\n"
        + ",,,,,,,,,\n"
        + "X1,无,None,local,,,,,,\n"
    ).encode()
    with pytest.raises(InvalidInput) as refused:
        parse_catalog(data, "region.csv")
    found = {(p.line, p.field) for p in refused.value.problems}
    assert found == {
        (3, "code"),  # duplicate of line 2
        (4, "cda_template_id"),
        (4, "template_id_confirmed"),
        (4, "required_for"),
        (4, "feeds"),
        (6, "cda_code"),  # no way to recognise the table
    }
    message = str(refused.value)
    assert "region.csv: line 3, field code: 'C0001' is already used on line 2" in message
    assert "'hopsital' is not an institution kind" in message


def test_missing_and_unknown_columns_are_named() -> None:
    data = b"code,name_zh,nom,standard\nC1,a,b,c\n"
    with pytest.raises(InvalidInput) as refused:
        parse_catalog(data)
    fields = {p.field for p in refused.value.problems if p.line == 1}
    assert {"name_en", "cda_template_id", "nom"} <= fields


def test_non_utf8_file_names_the_line() -> None:
    data = HEADER.encode() + "C0001,病历概要,x,y,,,C0001,,,\n".encode("gbk")
    with pytest.raises(InvalidInput) as refused:
        parse_catalog(data)
    assert refused.value.problems[0].line == 2
    assert "UTF-8" in refused.value.problems[0].message


def test_excel_bom_and_blank_lines_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_bytes(
        b"\xef\xbb\xbf" + HEADER.encode() + "\nZ1,甲,A,local,,,,Patient,district,\n".encode()
    )
    catalog = read_catalog(path)
    assert [t.code for t in catalog] == ["Z1"]
    assert catalog.required_for("district")[0].fhir_resource_type == "Patient"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read the file"):
        read_catalog(tmp_path / "nope.csv")
