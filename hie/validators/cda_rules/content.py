"""Per-table content rules, kept as data (``schemas/cda/content-rules.csv``) so that a region adds
rules without code changes: required sections by LOINC code, required entries by data-element
code (WS 363), optionally within a given section."""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hie.catalog import Table
from hie.errors import InvalidInput, Problem
from hie.resources import schemas_dir
from hie.validators.cda_rules.document import (
    DATA_ELEMENT_SYSTEM,
    LOINC,
    CdaDocument,
    add_at,
    attribute,
    element_path,
)
from hie.validators.report import Report, Severity
from hie.validators.rules import register

SECTION = register(
    "cda.content.section",
    summary="The document has every section its table requires (by LOINC section code).",
    fix='Add the section named in the message: <component><section><code code="LOINC code" '
    'codeSystem="2.16.840.1.113883.6.1" displayName="name"/><title>name</title><text>…</text>'
    "…</section></component> in structuredBody.",
)
ENTRY = register(
    "cda.content.entry",
    summary="The document has every entry its table requires (by WS 363 data-element code).",
    fix='Add an <entry><observation classCode="OBS" moodCode="EVN"><code code="data-element '
    'id" codeSystem="2.16.156.10011.2.2.1"/><value …/></observation></entry> in the section '
    "named in the message.",
)

COLUMNS = ("table", "requirement", "code", "name", "section", "severity")
# Optional: where the rule comes from (part and table of the standard), shown in messages.
SOURCE = "source"
_SEVERITIES = {"error": Severity.ERROR, "warning": Severity.WARNING}
_LOINC_CODE = re.compile(r"\d{1,7}-\d")
_DATA_ELEMENT = re.compile(r"DE\d{2}\.\d{2}\.\d{3}\.\d{2}")
_STATEMENTS = (
    "act",
    "encounter",
    "observation",
    "observationMedia",
    "organizer",
    "procedure",
    "regionOfInterest",
    "substanceAdministration",
    "supply",
)


@dataclass(frozen=True)
class ContentRule:
    table: str
    requirement: str  # "section" or "entry"
    code: str  # LOINC section code, or WS 363 data-element id
    name: str
    section: str | None  # for an entry: the LOINC code of the section it must be in
    severity: Severity
    line: int  # where the rule is written, for an operator reading an issue
    source: str = ""  # the standard's part and table the rule is taken from


class ContentRules:
    """The content rules of every table, read from a CSV file."""

    def __init__(self, rules: Iterable[ContentRule]) -> None:
        self.rules = tuple(rules)
        self._by_table: dict[str, list[ContentRule]] = {}
        for item in self.rules:
            self._by_table.setdefault(item.table, []).append(item)

    def of(self, table_code: str) -> list[ContentRule]:
        return self._by_table.get(table_code, [])

    @classmethod
    def read(cls, path: Path) -> ContentRules:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(str(path), [Problem(f"cannot read: {exc.strerror}")]) from None
        return cls.parse(data, source=str(path))

    @classmethod
    def parse(cls, data: bytes, source: str = "content rules") -> ContentRules:
        """Every problem in the file is reported, naming line and column."""
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput(source, [Problem("not UTF-8; save the file as UTF-8")]) from None
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInput(source, [Problem("missing column", 1, c) for c in missing])
        problems: list[Problem] = []
        rules: list[ContentRule] = []
        for row in reader:
            line = reader.line_num
            values = {k: (row.get(k) or "").strip() for k in (*COLUMNS, SOURCE)}
            if not any(values.values()) or values["table"].startswith("#"):
                continue  # blank, or a note (the file cites its sources in them)
            parsed = _rule_from_row(values, line, problems)
            if parsed is not None:
                rules.append(parsed)
        if problems:
            raise InvalidInput(source, problems)
        return cls(rules)


def _rule_from_row(
    values: dict[str, str], line: int, problems: list[Problem]
) -> ContentRule | None:
    before = len(problems)
    requirement = values["requirement"]
    if not values["table"]:
        problems.append(Problem("is empty", line, "table"))
    if requirement not in ("section", "entry"):
        problems.append(Problem(f"{requirement!r} is not section or entry", line, "requirement"))
    code = values["code"]
    if requirement == "section" and not _LOINC_CODE.fullmatch(code):
        problems.append(Problem(f"{code!r} is not a LOINC code", line, "code"))
    if requirement == "entry" and not _DATA_ELEMENT.fullmatch(code):
        problems.append(Problem(f"{code!r} is not a data-element id DEnn.nn.nnn.nn", line, "code"))
    section = values["section"] or None
    if section and not _LOINC_CODE.fullmatch(section):
        problems.append(Problem(f"{section!r} is not a LOINC code", line, "section"))
    severity = _SEVERITIES.get(values["severity"] or "error")
    if severity is None:
        problems.append(
            Problem(f"{values['severity']!r} is not error or warning", line, "severity")
        )
    if len(problems) > before or severity is None:
        return None
    return ContentRule(
        values["table"],
        requirement,
        code,
        values["name"],
        section,
        severity,
        line,
        values[SOURCE],
    )


def default_content_rules_path() -> Path:
    return schemas_dir() / "cda" / "content-rules.csv"


@functools.cache
def default_content_rules() -> ContentRules:
    """The shipped rules, read once per process."""
    return ContentRules.read(default_content_rules_path())


def check_content(doc: CdaDocument, table: Table, rules: ContentRules, report: Report) -> None:
    """Every required section and entry of ``table`` that the document lacks."""
    table_rules = rules.of(table.code)
    if not table_rules:
        return
    body = doc.find("component/structuredBody")
    anchor = body if body is not None else doc.find("component")
    if anchor is None:
        anchor = doc.root
    sections = _sections(doc)
    for item in table_rules:
        if item.requirement == "section":
            if item.code not in sections:
                add_at(
                    report,
                    item.severity,
                    SECTION.id,
                    f"table {table.code} {table.name_zh} requires section {item.code} "
                    f"{item.name} (code {item.code} in LOINC {LOINC}); the document has none"
                    + _cited(item),
                    element=anchor,
                    path=element_path(anchor) + "/component/section",
                    code="required",
                )
            continue
        scopes = sections.get(item.section, []) if item.section else [anchor]
        if not any(_has_entry(doc, scope, item.code) for scope in scopes):
            where = f" in section {item.section}" if item.section else ""
            scope_element = scopes[0] if scopes else anchor
            add_at(
                report,
                item.severity,
                ENTRY.id,
                f"table {table.code} {table.name_zh} requires an entry {item.code} {item.name}"
                f"{where} (code {item.code} in {DATA_ELEMENT_SYSTEM}); the document has none"
                + _cited(item),
                element=scope_element,
                path=element_path(scope_element) + "/entry",
                code="required",
            )


def _cited(item: ContentRule) -> str:
    return f" [{item.source}]" if item.source else ""


def _sections(doc: CdaDocument) -> dict[str, list[Any]]:
    """Sections by LOINC code, nested sections included."""
    found: dict[str, list[Any]] = {}
    for section in doc.iter("section"):
        code_element = doc.find("code", section)
        code = attribute(code_element, "code")
        if code and attribute(code_element, "codeSystem") in (LOINC, None):
            found.setdefault(code, []).append(section)
    return found


def _has_entry(doc: CdaDocument, scope: Any, code: str) -> bool:
    for name in _STATEMENTS:
        for statement in doc.iter(name, scope):
            code_element = doc.find("code", statement)
            if (
                attribute(code_element, "code") == code
                and attribute(code_element, "codeSystem") == DATA_ELEMENT_SYSTEM
            ):
                return True
    return False
