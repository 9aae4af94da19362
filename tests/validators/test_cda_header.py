"""The Chinese header rules, one edit of a valid C0002 document at a time: each rule fires on its
own, at the right line and element, with the right severity."""

from __future__ import annotations

import pytest

from hie.validators import RULES, Severity
from hie.validators.cda import validate_cda

VALID = "C0002-valid.xml"
PATIENT = "/ClinicalDocument/recordTarget/patientRole/patient"

# (edit, rule, severity, text on the line of the issue, expression)
CASES = [
    pytest.param(
        ('<realmCode code="CN"/>', '<realmCode code="US"/>'),
        "cda.header.realm", Severity.ERROR, "<realmCode", "/ClinicalDocument/realmCode/@code",
        id="realm",
    ),
    pytest.param(
        ('extension="POCD_MT000040"', 'extension="POCD_XX000040"'),
        "cda.header.type-id", Severity.ERROR, "<typeId", "/ClinicalDocument/typeId/@extension",
        id="type-id",
    ),
    pytest.param(
        ('extension="POCD_MT000040"', 'extension="POCD_HD000040"'),
        "cda.header.type-id", Severity.WARNING, "<typeId", "/ClinicalDocument/typeId/@extension",
        id="type-id-hl7",
    ),
    pytest.param(
        (
            '<templateId root="2.16.156.10011.2.1.1.22"/>',
            '<templateId root="2.16.156.10011.2.1.1.22"/>\n  <templateId root="1.2.3"/>',
        ),
        "cda.header.template-id", Severity.ERROR, '<templateId root="1.2.3"',
        "/ClinicalDocument/templateId[2]", id="two-template-ids",
    ),
    pytest.param(
        ('<id root="2.16.156.10011.1.1" extension="455755678-C0002-20190715-0001"/>',
         '<id root="1.2.3.4" extension="455755678-C0002-20190715-0001"/>'),
        "cda.header.document-id", Severity.ERROR, '<id root="1.2.3.4"',
        "/ClinicalDocument/id/@root", id="document-id-root",
    ),
    pytest.param(
        ('<id root="2.16.156.10011.1.1" extension="455755678-C0002-20190715-0001"/>',
         '<id root="2.16.156.10011.1.1"/>'),
        "cda.header.document-id", Severity.ERROR, '<id root="2.16.156.10011.1.1"/>',
        "/ClinicalDocument/id/@extension", id="document-id-extension",
    ),
    pytest.param(
        ('<effectiveTime value="20190715093000"/>', '<effectiveTime value="20190231093000"/>'),
        "cda.header.effective-time", Severity.ERROR, "<effectiveTime value=",
        "/ClinicalDocument/effectiveTime/@value", id="effective-time-not-a-date",
    ),
    pytest.param(
        ('<confidentialityCode code="N"', '<confidentialityCode code="R"'),
        "cda.header.confidentiality", Severity.ERROR, "<confidentialityCode",
        "/ClinicalDocument/confidentialityCode/@code", id="confidentiality",
    ),
    pytest.param(
        ('<languageCode code="zh-CN"/>', '<languageCode code="en-US"/>'),
        "cda.header.language", Severity.ERROR, "<languageCode",
        "/ClinicalDocument/languageCode/@code", id="language",
    ),
    pytest.param(
        ('<id root="2.16.156.10011.1.19" extension="H32010600012345"/>',
         '<id root="1.2.840.99" extension="H32010600012345"/>'),
        "cda.header.patient-id", Severity.WARNING, '<id root="1.2.840.99"',
        "/ClinicalDocument/recordTarget/patientRole/id[2]/@root", id="patient-id-vendor-root",
    ),
    pytest.param(
        ('<id root="2.16.156.10011.1.19" extension="H32010600012345"/>',
         '<id root="2.16.156.10011.1.19"/>'),
        "cda.header.patient-id", Severity.ERROR, '<id root="2.16.156.10011.1.19"/>',
        "/ClinicalDocument/recordTarget/patientRole/id[2]/@extension",
        id="patient-id-extension",
    ),
    pytest.param(
        ('extension="320106197503211230"', 'extension="320106197503211231"'),
        "cda.header.resident-id", Severity.WARNING, "2.16.156.10011.1.3",
        f"{PATIENT}/id/@extension", id="resident-id-check-digit",
    ),
    pytest.param(
        ('<administrativeGenderCode code="1"', '<administrativeGenderCode code="3"'),
        "cda.header.gender", Severity.ERROR, "<administrativeGenderCode",
        f"{PATIENT}/administrativeGenderCode/@code", id="gender-code",
    ),
    pytest.param(
        ('<birthTime value="19750321"/>', '<birthTime value="19751332"/>'),
        "cda.header.birth-time", Severity.ERROR, "<birthTime", f"{PATIENT}/birthTime/@value",
        id="birth-time",
    ),
    pytest.param(
        ('<birthTime value="19750321"/>', ""),
        "cda.header.birth-time", Severity.WARNING, "<patient classCode", f"{PATIENT}/birthTime",
        id="birth-time-missing",
    ),
    pytest.param(
        ('<id root="2.16.156.10011.1.7" extension="D0107"/>',
         '<id root="2.16.156.10011.1.4" extension="D0107"/>'),
        "cda.header.author-id", Severity.ERROR, 'extension="D0107"',
        "/ClinicalDocument/author/assignedAuthor/id/@root", id="author-id",
    ),
    pytest.param(
        ('<id root="2.16.156.10011.1.5" extension="455755678"/>',
         '<id root="2.16.156.10011.1.5"/>'),
        "cda.header.custodian-id", Severity.ERROR, '<id root="2.16.156.10011.1.5"/>',
        "/ClinicalDocument/custodian/assignedCustodian/representedCustodianOrganization/id"
        "/@extension", id="custodian-id",
    ),
    pytest.param(
        ('<id root="2.16.156.10011.1.4" extension="D0003"/>',
         '<id root="2.16.156.10011.1.7" extension="D0003"/>'),
        "cda.header.legal-authenticator-id", Severity.ERROR, 'extension="D0003"',
        "/ClinicalDocument/legalAuthenticator/assignedEntity/id/@root",
        id="legal-authenticator-id",
    ),
    pytest.param(
        ("  <componentOf>",
         '  <relatedDocument typeCode="RPLC">\n    <parentDocument>\n'
         '      <id root="2.16.156.10011.1.1" extension="455755678-C0002-20190715-0001"/>\n'
         "    </parentDocument>\n  </relatedDocument>\n  <componentOf>"),
        "cda.header.replacement", Severity.ERROR, "    <parentDocument>\n      <id",
        "/ClinicalDocument/relatedDocument/parentDocument/id", id="replaces-itself",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "rule_id", "severity", "marker", "expression"), CASES)
def test_each_header_rule_fires_alone_and_located(
    cda, catalog, edit, rule_id, severity, marker, expression
) -> None:
    data = cda.edited(VALID, edit)
    report = validate_cda(data, catalog=catalog).report
    assert [(i.rule, i.severity) for i in report.issues] == [(rule_id, severity)], report.issues
    issue = report.issues[0]
    expected_line = cda.line_of(data, marker)
    if marker.startswith("    <parentDocument>"):
        expected_line += 1
    assert issue.line == expected_line
    assert issue.expression == expression
    assert report.rejected is severity.rejects
    assert RULES[rule_id].summary and RULES[rule_id].fix


def test_the_valid_document_has_no_issues(cda, catalog) -> None:
    result = validate_cda(cda.bytes(VALID), catalog=catalog)
    assert result.report.issues == []
    assert result.table is not None and result.table.code == "C0002"
    assert result.schema_valid is True


def test_gender_in_the_wrong_code_system_names_both_problems(cda, catalog) -> None:
    data = cda.bytes("broken-gender.xml")
    report = validate_cda(data, catalog=catalog).report
    assert {i.expression for i in report.errors} == {
        f"{PATIENT}/administrativeGenderCode/@code",
        f"{PATIENT}/administrativeGenderCode/@codeSystem",
    }
    assert {i.rule for i in report.errors} == {"cda.header.gender"}
    assert all(i.line == cda.line_of(data, "<administrativeGenderCode") for i in report.errors)


def test_a_resident_id_number_never_appears_in_a_message(cda, catalog) -> None:
    data = cda.bytes("warning-check-digit.xml")
    outcome = validate_cda(data, catalog=catalog).report.to_operation_outcome()
    assert "32010619750321" not in str(outcome)


def test_a_wrongly_formed_resident_id_is_a_warning_too(cda, catalog) -> None:
    data = cda.edited(VALID, ('extension="320106197503211230"', 'extension="3201061975"'))
    report = validate_cda(data, catalog=catalog).report
    assert not report.rejected
    assert [i.rule for i in report.warnings] == ["cda.header.resident-id"]


def test_a_fifteen_digit_legacy_resident_id_is_accepted(cda, catalog) -> None:
    data = cda.edited(VALID, ('extension="320106197503211230"', 'extension="320106750321123"'))
    assert validate_cda(data, catalog=catalog).report.issues == []


def test_effective_time_with_zone_offset_and_date_precision_are_accepted(cda, catalog) -> None:
    for value in ("20190715093000+0800", "20190715", "201907150930-0500"):
        data = cda.edited(
            VALID, ('<effectiveTime value="20190715093000"/>', f'<effectiveTime value="{value}"/>')
        )
        assert validate_cda(data, catalog=catalog).report.issues == [], value


def test_missing_header_elements_are_required_issues_at_the_parent(cda, catalog) -> None:
    data = cda.edited(
        VALID, ('  <realmCode code="CN"/>\n', ""), ('<languageCode code="zh-CN"/>', "")
    )
    report = validate_cda(data, catalog=catalog).report
    found = {(i.rule, i.code, i.line, i.expression) for i in report.issues}
    assert ("cda.header.realm", "required", 2, "/ClinicalDocument/realmCode") in found
    assert ("cda.header.language", "required", 2, "/ClinicalDocument/languageCode") in found


def test_all_header_errors_are_reported_together(cda, catalog) -> None:
    data = cda.edited(
        VALID,
        ('<realmCode code="CN"/>', '<realmCode code="US"/>'),
        ('<languageCode code="zh-CN"/>', '<languageCode code="en"/>'),
        ('<administrativeGenderCode code="1"', '<administrativeGenderCode code="M"'),
        ('<birthTime value="19750321"/>', '<birthTime value="19750230"/>'),
        (
            '<id root="2.16.156.10011.1.5" extension="455755678"/>',
            '<id root="1.2.3" extension="9"/>',
        ),
    )
    report = validate_cda(data, catalog=catalog).report
    lines = {i.rule: i.line for i in report.errors}
    assert lines == {
        "cda.header.realm": 3,
        "cda.header.language": 11,
        "cda.header.gender": 23,
        "cda.header.birth-time": 24,
        "cda.header.custodian-id": 42,
    }
