"""CDA R2 structure against XML Schema: the project's own and, when the shared material is
present, HL7's normative one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hie.errors import ConfigError
from hie.validators.cda import CdaSchema, validate_cda
from hie.validators.cda_rules.schema import MAX_SCHEMA_ISSUES

VALID = "C0002-valid.xml"


def schema_issues(report):
    return [i for i in report.issues if i.rule == "cda.schema"]


def test_header_elements_out_of_order_are_located(cda, catalog) -> None:
    data = cda.edited(
        VALID,
        ("  <title>门（急）诊病历</title>\n", ""),
        (
            '  <languageCode code="zh-CN"/>\n',
            '  <languageCode code="zh-CN"/>\n  <title>x</title>\n',
        ),
    )
    result = validate_cda(data, catalog=catalog)
    assert result.schema_valid is False
    [issue] = schema_issues(result.report)
    assert issue.line == cda.line_of(data, "<title>x</title>")
    assert issue.expression == "/ClinicalDocument/title"
    assert issue.message.startswith("element `title` is not allowed here in `ClinicalDocument`")
    assert "expected here: `setId`, `versionNumber`, `copyTime`, `recordTarget`" in issue.message
    assert "{urn:hl7-org:v3}" not in issue.message  # readable names
    assert issue.code == "structure"


def test_a_bad_timestamp_format_is_a_value_error_with_the_attribute(cda, catalog) -> None:
    data = cda.edited(VALID, ('<birthTime value="19750321"/>', '<birthTime value="1975-03-21"/>'))
    report = validate_cda(data, catalog=catalog).report
    [issue] = schema_issues(report)
    assert issue.code == "value"
    assert issue.line == 24
    assert issue.expression == (
        "/ClinicalDocument/recordTarget/patientRole/patient/birthTime/@value"
    )
    # The header rule reports the same value in its own words: all layers report together.
    assert "cda.header.birth-time" in {i.rule for i in report.errors}


def test_schema_and_header_and_content_errors_come_together(cda, catalog) -> None:
    data = cda.edited(
        VALID,
        ('<realmCode code="CN"/>', '<realmCode code="US"/>'),
        ('<versionNumber value="1"/>', '<versionNumber value="one"/>'),
        ('<code code="10154-3"', '<code code="10155-0"'),
    )
    report = validate_cda(data, catalog=catalog).report
    assert {(i.rule, i.line) for i in report.errors} == {
        ("cda.header.realm", 3),
        ("cda.schema", 13),
        ("cda.content.section", cda.line_of(data, "<structuredBody>")),
    }


def test_a_document_without_the_hl7_namespace_is_still_read_for_precise_reasons(
    cda, catalog
) -> None:
    data = cda.edited(VALID, (' xmlns="urn:hl7-org:v3"', ""))
    result = validate_cda(data, catalog=catalog)
    rules = [i.rule for i in result.report.errors]
    assert rules[0] == "cda.document.namespace"
    assert "cda.schema" in rules
    assert result.table is not None and result.table.code == "C0002"  # and it says which type
    assert result.report.errors[0].line == 2


def test_a_root_that_is_not_a_clinical_document_is_rejected(catalog) -> None:
    result = validate_cda(b'<Bundle xmlns="http://hl7.org/fhir"/>', catalog=catalog)
    assert result.report.rejected
    assert result.table is None
    assert result.report.errors[0].rule == "cda.document.namespace"


def test_many_schema_errors_are_capped_with_a_count(cda, catalog) -> None:
    extra = '      <id root="not an oid!" extension="x"/>\n' * (MAX_SCHEMA_ISSUES + 50)
    data = cda.edited(VALID, ('      <telecom value="tel:', extra + '      <telecom value="tel:'))
    issues = schema_issues(validate_cda(data, catalog=catalog).report)
    assert len(issues) == MAX_SCHEMA_ISSUES + 1
    assert issues[-1].message == "50 more schema errors are not listed"


def test_compiled_schemas_are_cached_per_path() -> None:
    assert CdaSchema()._compiled is CdaSchema()._compiled


def test_a_schema_path_that_does_not_compile_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        CdaSchema(tmp_path / "missing.xsd")
    broken = tmp_path / "broken.xsd"
    broken.write_text("<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'><xs:element/>")
    with pytest.raises(ConfigError, match="does not compile"):
        CdaSchema(broken)


@pytest.mark.parametrize(
    "schema_file",
    ["normative/infrastructure/cda/CDA.xsd", "extensions/SDTC/infrastructure/cda/CDA_SDTC.xsd"],
)
def test_the_valid_fixtures_are_valid_cda_r2_under_hl7s_schemas(
    cda, catalog, cda_schema_dir: Path, schema_file: str
) -> None:
    schema = CdaSchema(cda_schema_dir / schema_file)
    for path in [*sorted(cda.folder.glob("*-valid.xml")), cda.folder / "C0002-replacement.xml"]:
        result = validate_cda(path.read_bytes(), catalog=catalog, schema=schema)
        assert result.schema_valid is True, (path.name, result.report.issues)
        assert not result.report.rejected, path.name


def test_hl7s_schema_locates_its_errors_too(cda, catalog, cda_schema_dir: Path) -> None:
    schema = CdaSchema(cda_schema_dir / "normative/infrastructure/cda/CDA.xsd")
    data = cda.edited(VALID, ('<versionNumber value="1"/>', '<versionNumber value="one"/>'))
    [issue] = schema_issues(validate_cda(data, catalog=catalog, schema=schema).report)
    assert issue.line == 13
    assert issue.expression == "/ClinicalDocument/versionNumber/@value"
    assert "CDA.xsd" in issue.message


def test_concurrent_validations_do_not_mix_their_errors(cda, catalog) -> None:
    # An lxml schema keeps its error log on the object: the shared compiled schema is locked.
    valid = cda.bytes(VALID)
    broken = cda.edited(VALID, ('<versionNumber value="1"/>', '<versionNumber value="one"/>'))

    def verdict(data: bytes) -> bool | None:
        return validate_cda(data, catalog=catalog).schema_valid

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(verdict, [valid, broken] * 40))
    assert results == [True, False] * 40


def test_errors_behind_a_refused_element_are_reported_in_the_same_run(cda, catalog) -> None:
    # libxml2 stops checking ClinicalDocument's children at <remark>; the rest is still checked.
    data = cda.edited(
        VALID,
        ("  <title>门（急）诊病历</title>\n", "  <title>门（急）诊病历</title>\n  <remark/>\n"),
        ('<versionNumber value="1"/>', '<versionNumber value="one"/>'),
        ('<signatureCode code="S"/>', '<signatureCode code="S"/>\n    <stamp/>'),
    )
    result = validate_cda(data, catalog=catalog)
    issues = schema_issues(result.report)
    assert [i.expression for i in issues] == [
        "/ClinicalDocument/remark",
        "/ClinicalDocument/versionNumber/@value",
        "/ClinicalDocument/legalAuthenticator/stamp",
    ]
    assert [i.line for i in issues] == [
        cda.line_of(data, "<remark/>"),
        cda.line_of(data, '<versionNumber value="one"/>'),
        cda.line_of(data, "<stamp/>"),
    ]
    # The caller's tree is the document as parsed: rounds work on a copy.
    assert result.tree.getroot().find("{urn:hl7-org:v3}remark") is not None


@pytest.mark.parametrize(
    "edit",
    [
        # a required element missing: every later sibling would be "not expected" after it
        ('  <typeId root="2.16.840.1.113883.1.3" extension="POCD_MT000040"/>\n', ""),
        # two required elements swapped
        (
            '  <id root="2.16.156.10011.1.1" extension="455755678-C0002-20190715-0001"/>\n'
            '  <code code="C0002"',
            '  <code code="C0002"',
        ),
    ],
)
def test_one_misplaced_or_missing_element_is_one_error_not_an_echo_per_sibling(
    cda, catalog, edit
) -> None:
    data = cda.edited(VALID, edit)
    assert len(schema_issues(validate_cda(data, catalog=catalog).report)) == 1


def test_a_misplaced_wst_header_element_is_named_as_such(cda, catalog) -> None:
    data = cda.edited(
        VALID, ('      <telecom value="tel:', '      <nativePlace/>\n      <telecom value="tel:')
    )
    [issue] = schema_issues(validate_cda(data, catalog=catalog).report)
    assert issue.message.startswith(
        "WS/T 500 header element `nativePlace` is not allowed here in `patientRole`; the "
        "standard places it in `patient`"
    )


def test_hl7s_schema_also_reports_everything_at_once(cda, catalog, cda_schema_dir: Path) -> None:
    schema = CdaSchema(cda_schema_dir / "normative/infrastructure/cda/CDA.xsd")
    data = cda.edited(
        VALID,
        ("  <title>门（急）诊病历</title>\n", "  <title>门（急）诊病历</title>\n  <remark/>\n"),
        ('<versionNumber value="1"/>', '<versionNumber value="one"/>'),
    )
    issues = schema_issues(validate_cda(data, catalog=catalog, schema=schema).report)
    assert [i.expression for i in issues] == [
        "/ClinicalDocument/remark",
        "/ClinicalDocument/versionNumber/@value",
    ]


def test_under_hl7s_schema_a_wst_header_element_is_named_as_not_in_that_schema(
    catalog, cda_schema_dir: Path
) -> None:
    schema = CdaSchema(cda_schema_dir / "normative/infrastructure/cda/CDA.xsd")
    corpus = Path(__file__).resolve().parents[1] / "fixtures" / "wst"
    data = (corpus / "C0004-prescription-patient-type-and-age.xml").read_bytes()
    messages = [
        i.message for i in schema_issues(validate_cda(data, catalog=catalog, schema=schema).report)
    ]
    assert any(
        m.startswith("WS/T 500 header element `age` in `patient` is not in this schema")
        for m in messages
    ), messages
    assert any(
        m.startswith("WS/T 500 header element `patientType` in `patientRole`") for m in messages
    )
