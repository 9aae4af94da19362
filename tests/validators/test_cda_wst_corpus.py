"""The WS/T 500 / WS/T 483 corpus (tests/fixtures/wst): documents written from the standards'
header (文档头) and section (文档体) tables, one per case. What the standard prescribes is
accepted, widespread deviations are warned about, and only real damage is rejected, each by its
rule, in the same run as ``hie validate`` (validate_bytes) as on the server (validate_cda)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.cda import validate_cda
from hie.validators.files import Options, scan, validate_bytes

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "wst"

# file → (rejected, table, rules of the issues in document order)
VERDICTS: dict[str, tuple[bool, str | None, list[str]]] = {
    # accepted, no issues: the standard's own header and section tables
    "C0001-summary-patient-header-elements.xml": (False, "C0001", []),
    "HSDA00.01-registration-education-level-wrapper.xml": (False, "HSDA00.01", []),
    "C0004-prescription-patient-type-and-age.xml": (False, "C0004", []),
    "C0014-labour-no-gender.xml": (False, "C0014", []),
    "C0015-vaginal-delivery-no-gender.xml": (False, "C0015", []),
    "C0016-caesarean-no-gender.xml": (False, "C0016", []),
    "C0006-exam-report-uncoded-section.xml": (False, "C0006", []),
    "C0034-admission-diagnoses-in-11450-4.xml": (False, "C0034", []),
    "C0002-empty-replacement-placeholder.xml": (False, "C0002", []),
    "C0003-age-without-birth-time.xml": (False, "C0003", []),
    "C0002-outpatient.ccd": (False, "C0002", []),
    # accepted with a warning: widespread deviations
    "C0007-lab-report-patienttype-lowercase.xml": (
        False,
        "C0007",
        ["cda.header.patient-type"],
    ),
    "C0049-discharge-admission-diagnosis-coded-11535-2.xml": (
        False,
        "C0049",
        ["cda.content.section"],
    ),
    "C0002-version-number-0-flag.xml": (False, "C0002", ["cda.header.version"]),
    # rejected: truly broken
    "C0002-missing-gender.xml": (True, "C0002", ["cda.header.gender"]),
    "broken-replacement-without-extension.xml": (True, "C0002", ["cda.header.replacement"]),
    "broken-attribute-name-case.xml": (True, "C0002", ["cda.markup.attribute-case"]),
    "broken-spaces-in-code-system-oid.xml": (True, "C0002", ["cda.markup.spaces"]),
    "broken-spaces-in-class-and-mood-code.xml": (
        True,
        "C0002",
        ["cda.markup.spaces", "cda.markup.spaces"],
    ),
    "broken-zone-offset-three-digits.xml": (
        True,
        "C0002",
        ["cda.markup.timestamp", "cda.markup.timestamp"],
    ),
    "broken-birth-time-nine-digits.xml": (True, "C0002", ["cda.header.birth-time"]),
    "broken-body-time-nine-digits.xml": (True, "C0034", ["cda.markup.timestamp"]),
    "broken-six-schema-errors.xml": (True, "C0002", ["cda.schema"] * 6),
    "broken-attributes-run-together.xml": (True, None, ["xml.well-formed"]),
    "broken-xml-declaration-space.xml": (True, None, ["xml.well-formed"]),
}


@pytest.fixture(scope="module")
def options() -> Options:
    return Options(read_catalog(default_catalog_path()))


def corpus_files() -> set[str]:
    return {p.name for p in CORPUS.iterdir() if p.is_file() and p.name != "README.md"}


def test_the_corpus_and_its_readme_list_the_same_files() -> None:
    assert corpus_files() == set(VERDICTS)
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    for name in VERDICTS:
        assert f"`{name}`" in readme, name


@pytest.mark.parametrize(("name", "verdict"), VERDICTS.items())
def test_each_document_gets_its_verdict(catalog, options, name: str, verdict) -> None:
    rejected, table, rules = verdict
    data = (CORPUS / name).read_bytes()
    result = validate_cda(data, catalog=catalog)
    assert result.report.rejected is rejected
    assert (result.table.code if result.table else None) == table
    assert [i.rule for i in result.report.issues] == rules
    assert all(i.line for i in result.report.issues)
    # hie validate's path gives the server's verdict, issue for issue.
    offline = validate_bytes(name, data, options)
    assert offline.report.issues == result.report.issues


def test_six_schema_errors_come_in_one_run_in_a_vendors_words(catalog) -> None:
    data = (CORPUS / "broken-six-schema-errors.xml").read_bytes()
    issues = list(validate_cda(data, catalog=catalog).report.issues)
    messages = [i.message for i in issues]
    assert [i.line for i in issues] == sorted(i.line or 0 for i in issues)
    assert [i.expression for i in issues] == [
        "/ClinicalDocument/versionNumber/@value",
        "/ClinicalDocument/recordTarget/patientRole/age",
        "/ClinicalDocument/recordTarget/patientRole/patient/hobby",
        "/ClinicalDocument/relatedDocument/@typeCode",
        "/ClinicalDocument/componentOf/encompassingEncounter/location",
        "/ClinicalDocument/component/structuredBody/component[1]/section/remark",
    ]
    assert messages[0].startswith("`versionNumber/@value` 'one' is not valid: it must be a whole")
    assert messages[1].startswith(
        "WS/T 500 header element `age` is not allowed here in `patientRole`; the standard "
        "places it in `patient`"
    )
    assert messages[2].startswith("element `hobby` is not allowed here in `patient`")
    assert "'APND', 'RPLC', 'XFRM'" in messages[3]
    assert "expected here: `id`, `code`, `effectiveTime`" in messages[4]
    assert messages[5].startswith("element `remark` is not allowed here in `section`")
    assert not any("{urn:hl7-org:v3}" in m or "##other" in m for m in messages)


def test_each_case_fails_without_the_part_of_the_standard_it_shows(catalog) -> None:
    """The accepted cases are accepted because of what they carry: take the WS/T addition away
    or break it, and the verdict changes (so the corpus tests the rules, not luck)."""
    labour = (CORPUS / "C0014-labour-no-gender.xml").read_text(encoding="utf-8")
    # a table whose header lists the gender still requires it
    as_outpatient = labour.replace('code code="C0014"', 'code code="C0002"').replace(
        "2.16.156.10011.2.1.1.34", "2.16.156.10011.2.1.1.22"
    )
    rules = [i.rule for i in validate_cda(as_outpatient.encode(), catalog=catalog).report.errors]
    assert "cda.header.gender" in rules
    # without its age, a patient with no birthTime is warned about
    no_age = labour.replace('<age unit="岁" value="32"/>', "")
    warnings = validate_cda(no_age.encode(), catalog=catalog).report.warnings
    assert [w.rule for w in warnings] == ["cda.header.birth-time"]


def test_a_folder_scan_takes_ccd_by_content_and_lists_what_it_skips(tmp_path: Path) -> None:
    folder = tmp_path / "upload"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "config").write_text("[core]\n")
    (folder / "C0002.ccd").write_bytes((CORPUS / "C0002-outpatient.ccd").read_bytes())
    (folder / "no-suffix").write_bytes((CORPUS / "C0002-outpatient.ccd").read_bytes())
    (folder / "notes.txt").write_text("待上传\n", encoding="utf-8")
    (folder / "page.html").write_text("<html><body/></html>")
    (folder / "empty.dat").write_bytes(b"")
    found = scan([str(folder)])
    assert [Path(f).name for f in found.files] == ["C0002.ccd", "no-suffix"]
    reasons = {Path(s.path).name: s.reason for s in found.skipped}
    assert reasons == {
        ".git": "hidden folder, not searched",
        "empty.dat": "empty file",
        "notes.txt": "neither CDA nor FHIR by its content (.txt)",
        "page.html": "XML but not a CDA ClinicalDocument nor a FHIR resource (.html)",
    }


def test_hie_validate_on_a_folder_names_the_files_it_skipped(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hie.cli import app

    (tmp_path / "C0002.ccd").write_bytes((CORPUS / "C0002-outpatient.ccd").read_bytes())
    (tmp_path / "notes.txt").write_text("待上传\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 0
    skipped = tmp_path / "notes.txt"
    assert f"skipped {skipped}: neither CDA nor FHIR by its content (.txt)" in result.stderr
    assert "1 file(s): 1 valid, 0 invalid" in result.stderr
    # Only skipped files: nothing to validate is a usage error that still says why.
    (tmp_path / "C0002.ccd").unlink()
    empty = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert empty.exit_code == 2
    assert "skipped" in empty.stderr and "no CDA or FHIR files found" in empty.stderr
