"""Which table a document is: templateId and code against the catalog, and the declaration."""

from __future__ import annotations

from dataclasses import replace

from hie.catalog import Catalog
from hie.validators import Severity
from hie.validators.cda import validate_cda

VALID = "C0002-valid.xml"


def test_an_unknown_type_is_rejected_naming_what_was_found(cda, catalog) -> None:
    data = cda.bytes("broken-unknown-type.xml")
    result = validate_cda(data, catalog=catalog)
    assert result.table is None
    [issue] = result.report.errors
    assert issue.rule == "cda.catalog.unknown-type"
    assert issue.message.startswith("not a Chinese shared document")
    assert "2.16.156.10011.2.1.1.99" in issue.message
    assert "X9999" in issue.message
    assert issue.line == cda.line_of(data, "<code code=")


def test_a_confirmed_template_disagreeing_with_the_code_names_both(cda, catalog) -> None:
    data = cda.bytes("broken-template-code.xml")
    result = validate_cda(data, catalog=catalog)
    [issue] = result.report.errors
    assert issue.rule == "cda.header.template-code"
    assert "2.16.156.10011.2.1.1.22" in issue.message and "C0002" in issue.message
    assert "C0053" in issue.message
    assert issue.line == 5
    assert issue.expression == "/ClinicalDocument/templateId/@root"


def test_an_unconfirmed_template_disagreeing_is_only_a_warning(cda, catalog) -> None:
    result = validate_cda(cda.bytes("warning-template-unconfirmed.xml"), catalog=catalog)
    assert not result.report.rejected
    assert [(i.rule, i.severity) for i in result.report.issues] == [
        ("cda.header.template-code", Severity.WARNING)
    ]
    assert result.table is not None and result.table.code == "HSDB04.01"  # the code decides


def test_a_vendor_template_with_a_known_code_disagrees(cda, catalog) -> None:
    data = cda.edited(VALID, ('root="2.16.156.10011.2.1.1.22"', 'root="1.2.156.112635.1"'))
    result = validate_cda(data, catalog=catalog)
    assert [i.rule for i in result.report.errors] == ["cda.header.template-code"]
    assert "1.2.156.112635.1" in result.report.errors[0].message
    assert result.table is not None and result.table.code == "C0002"


def test_a_known_template_with_an_unknown_code_disagrees(cda, catalog) -> None:
    data = cda.edited(VALID, ('<code code="C0002"', '<code code="C9999"'))
    result = validate_cda(data, catalog=catalog)
    [issue] = result.report.errors
    assert issue.rule == "cda.header.template-code"
    assert "C9999" in issue.message and "C0002" in issue.message


def test_a_type_code_outside_its_code_system_is_an_error(cda, catalog) -> None:
    data = cda.edited(
        VALID, ('codeSystem="2.16.156.10011.2.4"', 'codeSystem="2.16.840.1.113883.6.1"')
    )
    result = validate_cda(data, catalog=catalog)
    [issue] = result.report.errors
    assert issue.rule == "cda.header.type-code"
    assert issue.expression == "/ClinicalDocument/code/@codeSystem"


def test_a_table_outside_the_declaration_is_accepted_and_flagged(cda, catalog) -> None:
    data = cda.bytes(VALID)
    report = validate_cda(data, catalog=catalog, declared=["C0001", "C0053"]).report
    assert not report.rejected
    [issue] = report.issues
    assert (issue.rule, issue.severity) == ("cda.catalog.undeclared", Severity.WARNING)
    assert "C0002" in issue.message and "C0001, C0053" in issue.message
    assert validate_cda(data, catalog=catalog, declared=["C0002"]).report.issues == []
    assert validate_cda(data, catalog=catalog, declared=None).report.issues == []


def test_a_table_of_the_other_kind_is_information_only(cda, catalog) -> None:
    report = validate_cda(cda.bytes(VALID), catalog=catalog, kind="district").report
    assert [(i.rule, i.severity) for i in report.issues] == [
        ("cda.catalog.kind", Severity.INFORMATION)
    ]
    assert validate_cda(cda.bytes(VALID), catalog=catalog, kind="hospital").report.issues == []


def test_the_loaded_catalog_decides_not_the_code(cda, catalog) -> None:
    # A region's catalog without C0002 makes the same document an unknown type.
    regional = Catalog(t for t in catalog if t.code != "C0002")
    result = validate_cda(cda.bytes(VALID), catalog=regional)
    assert [i.rule for i in result.report.errors] == ["cda.catalog.unknown-type"]
    # And one whose C0002 template is unconfirmed turns a disagreement into a warning.
    unconfirmed = Catalog(
        replace(t, template_id_confirmed=False) if t.code == "C0002" else t for t in catalog
    )
    data = cda.bytes("broken-template-code.xml")
    assert validate_cda(data, catalog=catalog).report.rejected
    report = validate_cda(data, catalog=unconfirmed).report
    assert [i.severity for i in report.issues if i.rule == "cda.header.template-code"] == [
        Severity.WARNING
    ]
