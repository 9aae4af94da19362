"""Per-table content rules kept as data: required sections and entries."""

from __future__ import annotations

import pytest

from hie.errors import InvalidInput
from hie.validators import Severity
from hie.validators.cda import ContentRules, validate_cda
from hie.validators.cda_rules.content import default_content_rules

HEADER = b"table,requirement,code,name,section,severity\n"


def test_a_missing_required_section_names_table_code_and_name(cda, catalog) -> None:
    data = cda.bytes("broken-missing-section.xml")
    report = validate_cda(data, catalog=catalog).report
    sections = [i for i in report.errors if i.rule == "cda.content.section"]
    [issue] = sections
    assert "C0053" in issue.message and "11535-2" in issue.message and "出院诊断" in issue.message
    assert issue.code == "required"
    assert issue.line == cda.line_of(data, "<structuredBody>")
    assert issue.expression == "/ClinicalDocument/component/structuredBody/component/section"
    # The entry required inside that section is missing with it.
    assert [i.rule for i in report.errors] == ["cda.content.section", "cda.content.entry"]


def test_a_missing_required_entry_is_located_at_its_section(cda, catalog) -> None:
    text = cda.text("C0002-valid.xml")
    start = text.index("          <entry>", text.index('code="29548-5"'))
    end = text.index("</entry>\n", start) + len("</entry>\n")
    data = (text[:start] + text[end:]).encode()
    report = validate_cda(data, catalog=catalog).report
    [issue] = report.errors
    assert issue.rule == "cda.content.entry"
    assert "DE05.01.024.00" in issue.message and "29548-5" in issue.message
    assert issue.line == cda.line_of(data, '<code code="29548-5"') - 1  # the <section> line


def test_a_region_adds_a_rule_without_code_changes(cda, catalog) -> None:
    data = cda.bytes("C0002-valid.xml")
    rules = ContentRules.parse(
        HEADER + b"C0002,section,48765-2,\xe8\xbf\x87\xe6\x95\x8f\xe5\x8f\xb2,,warning\n"
        b"C0002,section,10154-3,\xe4\xb8\xbb\xe8\xaf\x89,,error\n"
    )
    report = validate_cda(data, catalog=catalog, content_rules=rules).report
    [issue] = report.issues
    assert (issue.rule, issue.severity) == ("cda.content.section", Severity.WARNING)
    assert "48765-2 过敏史" in issue.message
    assert not report.rejected


def test_the_shipped_rules_cover_the_counted_tables() -> None:
    rules = default_content_rules()
    for table in ("C0002", "C0003", "C0053", "HSDB04.01", "HSDB04.02"):
        assert any(r.requirement == "section" for r in rules.of(table)), table


def test_a_broken_rules_file_is_refused_with_every_problem_located() -> None:
    with pytest.raises(InvalidInput) as caught:
        ContentRules.parse(
            HEADER + b"C0002,chapter,10154-3,x,,error\n"
            b"C0002,section,ABC,x,,error\n"
            b"C0002,entry,DE05.01.024.00,x,29548-5,fatal\n"
        )
    problems = {(p.line, p.field) for p in caught.value.problems}
    assert problems == {(2, "requirement"), (3, "code"), (4, "severity")}


def test_a_rules_file_without_its_columns_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        ContentRules.parse(b"table,code\nC0002,10154-3\n")
    assert {p.field for p in caught.value.problems} == {
        "requirement",
        "name",
        "section",
        "severity",
    }


def test_every_shipped_rule_cites_the_part_and_table_it_comes_from() -> None:
    for item in default_content_rules().rules:
        assert item.source.startswith(("WS/T 500.", "WS/T 483.")), (item.line, item.table)
        assert "table" in item.source, item.line
        part = item.source.split()[1].split("-")[0]  # "500.34"
        if item.table.startswith("C00"):
            assert part == f"500.{int(item.table[1:])}", (item.line, item.table, part)


def test_a_rule_row_s_source_is_quoted_and_notes_are_skipped(cda, catalog) -> None:
    rules = ContentRules.parse(
        b"table,requirement,code,name,section,severity,source\n"
        b"# a note, with commas, citing nothing\n"
        b"C0002,section,48765-2,x,,warning,WS/T 500.2-2016 table\n"
    )
    assert [r.line for r in rules.rules] == [3]
    [issue] = validate_cda(
        cda.bytes("C0002-valid.xml"), catalog=catalog, content_rules=rules
    ).report.issues
    assert issue.message.endswith("[WS/T 500.2-2016 table]")


@pytest.mark.parametrize(
    ("table", "section"),
    [("C0006", "30954-2"), ("C0001", "11450-4"), ("C0034", "46241-6")],
)
def test_sections_the_standard_does_not_have_are_not_required(table, section) -> None:
    assert section not in {r.code for r in default_content_rules().of(table)}


def test_the_c0049_admission_diagnosis_section_is_only_warned_about() -> None:
    [rule] = [r for r in default_content_rules().of("C0049") if r.code == "46241-6"]
    assert rule.severity is Severity.WARNING
