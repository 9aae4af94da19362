"""Hardened parsing: hostile and broken XML become located fatal issues, never exceptions."""

from __future__ import annotations

import pytest

from hie.validators import Severity
from hie.validators.xml import parse_xml


def only_issue(data: bytes, **limits: int):
    parsed = parse_xml(data, **limits)
    assert parsed.tree is None
    assert len(parsed.report.issues) == 1, parsed.report.issues
    issue = parsed.report.issues[0]
    assert issue.severity is Severity.FATAL
    return issue


def test_a_valid_document_parses_without_issues(cda) -> None:
    parsed = parse_xml(cda.bytes("C0002-valid.xml"))
    assert parsed.report.issues == []
    assert parsed.tree.getroot().tag == "{urn:hl7-org:v3}ClinicalDocument"


@pytest.mark.parametrize(
    "name",
    ["hostile-billion-laughs.xml", "hostile-external-entity.xml", "hostile-external-dtd.xml"],
)
@pytest.mark.timeout(10)
def test_a_doctype_is_refused_outright(cda, name: str) -> None:
    issue = only_issue(cda.bytes(name))
    assert issue.rule == "xml.doctype"
    assert issue.code == "security"
    assert issue.line == 2


def test_an_external_entity_is_never_read(cda) -> None:
    # Even a harmless-looking DOCTYPE is refused; nothing of /etc/passwd may come back.
    parsed = parse_xml(cda.bytes("hostile-external-entity.xml"))
    assert "root:" not in str(parsed.report.to_operation_outcome())


def test_a_doctype_without_entities_is_refused_too() -> None:
    issue = only_issue(b'<?xml version="1.0"?>\n\n<!DOCTYPE a>\n<a/>')
    assert (issue.rule, issue.line) == ("xml.doctype", 3)


def test_over_the_size_limit_is_refused_before_parsing() -> None:
    issue = only_issue(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1000)
    assert issue.rule == "xml.size"
    assert issue.code == "too-costly"
    assert "2,007 bytes" in issue.message and "1,000" in issue.message


@pytest.mark.timeout(10)
def test_fifty_megabytes_are_refused_at_the_default_limit() -> None:
    issue = only_issue(b"<a>" + b" " * (50 * 1024 * 1024) + b"</a>")
    assert issue.rule == "xml.size"


@pytest.mark.timeout(10)
def test_ten_thousand_deep_nesting_is_refused_without_recursion() -> None:
    issue = only_issue(b"<a>" * 10_000 + b"</a>" * 10_000)
    assert issue.rule == "xml.depth"
    assert issue.line == 1


def test_a_lower_depth_limit_is_honoured_and_located() -> None:
    data = b"<a>\n<b>\n<c>\n<d/>\n</c>\n</b>\n</a>"
    issue = only_issue(data, max_depth=3)
    assert (issue.rule, issue.line) == ("xml.depth", 4)
    assert parse_xml(data, max_depth=4).tree is not None


def test_malformed_xml_is_located(cda) -> None:
    data = cda.bytes("broken-malformed.xml")
    issue = only_issue(data)
    assert issue.rule == "xml.well-formed"
    assert issue.line == cda.line_of(data, "</titel>")
    assert issue.column is not None and issue.column > 1
    assert "titel" in issue.message


def test_invalid_utf8_is_a_located_encoding_error(cda) -> None:
    data = cda.bytes("broken-invalid-utf8.xml")
    issue = only_issue(data)
    assert issue.rule == "xml.encoding"
    # The first non-ASCII byte is in the code's displayName on line 7.
    assert issue.line == 7


def test_a_wrong_declared_encoding_is_an_encoding_error() -> None:
    data = '<?xml version="1.0" encoding="GBK"?>\n<a>中文</a>'.encode()
    assert only_issue(data).rule == "xml.encoding"


def test_an_unknown_encoding_is_an_encoding_error() -> None:
    assert only_issue(b'<?xml version="1.0" encoding="NO-SUCH"?><a/>').rule == "xml.encoding"


def test_a_declared_gbk_document_in_gbk_is_read() -> None:
    parsed = parse_xml('<?xml version="1.0" encoding="GBK"?>\n<a>门诊</a>'.encode("gbk"))
    assert parsed.report.issues == []
    assert parsed.tree.getroot().text == "门诊"


@pytest.mark.parametrize("data", [b"", b"   \n", b"<a>", b"not xml at all", b"<a></b>"])
def test_empty_and_truncated_input_is_fatal(data: bytes) -> None:
    assert only_issue(data).rule == "xml.well-formed"


def test_an_undeclared_entity_reference_is_malformed() -> None:
    issue = only_issue(b"<a>\n&nbsp;</a>")
    assert (issue.rule, issue.line) == ("xml.well-formed", 2)
