"""Every fixture's verdict, and every issue naming a registered rule a developer can look up."""

from __future__ import annotations

import pytest

from hie.normalize.cda import normalize_cda
from hie.validators import RULES
from hie.validators.cda import validate_cda

VALID_TABLES = [
    "C0001", "C0002", "C0003", "C0004", "C0006", "C0007", "C0032", "C0034", "C0049", "C0053",
    "HSDA00.01", "HSDB04.01", "HSDB04.02",
]  # fmt: skip

# fixture → (rejected, table, rules of the issues, in order)
VERDICTS = {
    "C0002-replacement.xml": (False, "C0002", []),
    "warning-check-digit.xml": (False, "C0002", ["cda.header.resident-id"]),
    "warning-template-unconfirmed.xml": (False, "HSDB04.01", ["cda.header.template-code"]),
    "broken-realm.xml": (True, "C0002", ["cda.header.realm"]),
    "broken-template-code.xml": (True, "C0053", ["cda.header.template-code"]),
    "broken-missing-section.xml": (True, "C0053", ["cda.content.section", "cda.content.entry"]),
    "broken-gender.xml": (True, "C0002", ["cda.header.gender", "cda.header.gender"]),
    "broken-unknown-type.xml": (True, None, ["cda.catalog.unknown-type"]),
    "broken-malformed.xml": (True, None, ["xml.well-formed"]),
    "broken-invalid-utf8.xml": (True, None, ["xml.encoding"]),
    "hostile-billion-laughs.xml": (True, None, ["xml.doctype"]),
    "hostile-external-entity.xml": (True, None, ["xml.doctype"]),
    "hostile-external-dtd.xml": (True, None, ["xml.doctype"]),
}


@pytest.mark.parametrize("table", VALID_TABLES)
def test_each_valid_fixture_is_accepted_without_issues(cda, catalog, table: str) -> None:
    result = validate_cda(cda.bytes(f"{table}-valid.xml"), catalog=catalog, declared=[table])
    assert result.report.issues == []
    assert result.table is not None and result.table.code == table
    assert result.tree is not None


@pytest.mark.parametrize(("name", "verdict"), VERDICTS.items())
def test_each_broken_or_flagged_fixture_gets_its_verdict(cda, catalog, name, verdict) -> None:
    rejected, table, rules = verdict
    result = validate_cda(cda.bytes(name), catalog=catalog)
    assert result.report.rejected is rejected
    assert (result.table.code if result.table else None) == table
    assert [i.rule for i in result.report.issues] == rules


def test_the_fixtures_cover_every_file_in_the_folder(cda) -> None:
    names = {p.name for p in cda.folder.glob("*.xml")}
    assert names == set(VERDICTS) | {f"{t}-valid.xml" for t in VALID_TABLES}


def test_every_issue_names_a_registered_rule_with_summary_and_fix(cda, catalog) -> None:
    for path in sorted(cda.folder.glob("*.xml")):
        data = path.read_bytes()
        report = validate_cda(data, catalog=catalog, declared=[], kind="district").report
        for issue in report.issues:
            rule = RULES.get(issue.rule)
            assert rule is not None, (path.name, issue.rule)
            assert len(rule.summary) > 20 and len(rule.fix) > 20, issue.rule
            assert issue.code and issue.message
            assert issue.line is not None, (path.name, issue)


def test_no_single_line_deletion_makes_validation_or_normalization_raise(cda, catalog) -> None:
    lines = cda.text("C0053-valid.xml").splitlines(keepends=True)
    outcomes = set()
    for index in range(len(lines)):
        data = "".join(lines[:index] + lines[index + 1 :]).encode()
        result = validate_cda(data, catalog=catalog)
        outcomes.add(result.report.rejected)
        if not result.report.rejected:
            normalize_cda(result.tree, result.table)
    assert outcomes == {True, False}
