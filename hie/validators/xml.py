"""Hardened XML parsing: what an upload may make the parser do, and located fatal issues for what
it may not.

Uploads come from outside, so the parser never expands entities, never reads a DTD, never touches
the network and refuses any DOCTYPE outright (billion laughs, external entities and external DTDs
all need one). Size and nesting depth are bounded. Every failure is a fatal :class:`Issue` with
line and column; nothing here raises on bad input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from hie.validators.report import Report, Severity
from hie.validators.rules import register

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# libxml2 refuses deeper documents itself unless huge_tree is set (which we never set), so a
# limit above this cannot be honoured.
LIBXML2_MAX_DEPTH = 256
DEFAULT_MAX_DEPTH = LIBXML2_MAX_DEPTH

SIZE = register(
    "xml.size",
    summary="A document may not be larger than the platform's byte limit.",
    fix="Send one document per request and keep it under the limit; move embedded images and "
    "PDFs to a separate report system and reference them.",
)
DOCTYPE = register(
    "xml.doctype",
    summary="A document may not contain a DOCTYPE declaration (no DTDs, no entity declarations).",
    fix="Remove the <!DOCTYPE ...> declaration: CDA documents are validated by XML Schema and "
    "need no DTD; write characters directly (UTF-8) instead of declared entities.",
)
DEPTH = register(
    "xml.depth",
    summary="Elements may not be nested deeper than the platform's depth limit.",
    fix="Flatten the structure: a CDA document nests sections and entries a few dozen levels "
    "deep at most.",
)
ENCODING = register(
    "xml.encoding",
    summary="The bytes must be valid in the document's declared encoding (UTF-8 by default).",
    fix='Save the document as UTF-8 and declare <?xml version="1.0" encoding="UTF-8"?>; '
    "a document declared as UTF-8 but saved as GBK/GB2312 fails here.",
)
WELL_FORMED = register(
    "xml.well-formed",
    summary="The document must be well-formed XML.",
    fix="Fix the XML syntax at the line and column given (unclosed or mismatched tags, "
    "unescaped '&' or '<' in text, bad attribute quoting).",
)

_ENCODING_MESSAGES = ("encoding", "Input is not proper UTF-8", "Char 0x", "not proper UTF")
_DOCTYPE_BYTES = re.compile(rb"<!DOCTYPE", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedXml:
    """The parsed tree (None when parsing failed) and what was found on the way."""

    tree: Any  # lxml.etree._ElementTree | None (lxml ships no type stubs)
    report: Report


def hardened_parser() -> Any:
    """A new parser per document: lxml parsers keep an error log and are not thread-safe."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=False,
    )


def parse_xml(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> ParsedXml:
    """Parse ``data`` safely. A fatal issue (and no tree) for anything the platform refuses."""
    report = Report()
    if len(data) > max_bytes:
        report.add(
            Severity.FATAL,
            SIZE.id,
            f"the document has {len(data):,} bytes; the limit is {max_bytes:,}",
            code="too-costly",
        )
        return ParsedXml(None, report)
    if not data.strip():
        report.add(Severity.FATAL, WELL_FORMED.id, "the document is empty", code="structure")
        return ParsedXml(None, report)
    try:
        tree = etree.ElementTree(etree.fromstring(data, hardened_parser()))
    except etree.XMLSyntaxError as exc:
        if _DOCTYPE_BYTES.search(data):
            # e.g. libxml2 stops a billion-laughs DTD itself: name the real cause
            _doctype_issue(report, data)
        else:
            _syntax_issue(report, exc, max_depth)
        return ParsedXml(None, report)
    except (ValueError, LookupError) as exc:  # e.g. an encoding lxml cannot look up
        report.add(
            Severity.FATAL, ENCODING.id, f"cannot decode the document: {exc}", code="structure"
        )
        return ParsedXml(None, report)
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        _doctype_issue(report, data)
        return ParsedXml(None, report)
    too_deep = _first_too_deep(tree.getroot(), max_depth)
    if too_deep is not None:
        report.add(
            Severity.FATAL,
            DEPTH.id,
            f"elements are nested more than {max_depth} levels deep",
            code="too-costly",
            line=too_deep or None,
        )
        return ParsedXml(None, report)
    return ParsedXml(tree, report)


def _doctype_issue(report: Report, data: bytes) -> None:
    match = _DOCTYPE_BYTES.search(data)
    line = data[: match.start()].count(b"\n") + 1 if match else None
    report.add(
        Severity.FATAL,
        DOCTYPE.id,
        "the document has a DOCTYPE declaration; DTDs and entity declarations are refused",
        code="security",
        line=line,
    )


def _syntax_issue(report: Report, exc: Any, max_depth: int) -> None:
    message = str(exc.msg) if getattr(exc, "msg", None) else str(exc)
    line, column = _position(exc)
    if "Excessive depth" in message:
        report.add(
            Severity.FATAL,
            DEPTH.id,
            f"elements are nested more than {min(max_depth, LIBXML2_MAX_DEPTH)} levels deep",
            code="too-costly",
            line=line,
            column=column,
        )
        return
    # lxml adds "(<string>, line N)"; the location goes into line and column instead.
    message = re.sub(r",? line \d+, column \d+.*$", "", message).strip()
    is_encoding = any(m in message for m in _ENCODING_MESSAGES)
    report.add(
        Severity.FATAL,
        ENCODING.id if is_encoding else WELL_FORMED.id,
        f"{'bad encoding' if is_encoding else 'malformed XML'}: {message}",
        code="structure",
        line=line,
        column=column,
    )


def _position(exc: Any) -> tuple[int | None, int | None]:
    position = getattr(exc, "position", None)
    if position and position[0]:
        return int(position[0]), int(position[1]) or None
    line = getattr(exc, "lineno", None)
    return (int(line) if line else None), None


def _first_too_deep(root: Any, max_depth: int) -> int | None:
    """The line of the first element deeper than ``max_depth``, or None. Iterative, not
    recursive, so a deep tree cannot exhaust the Python stack."""
    if max_depth >= LIBXML2_MAX_DEPTH:
        return None  # the parser already enforced it
    depth = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        if event == "start":
            depth += 1
            if depth > max_depth:
                return int(element.sourceline or 0)
        else:
            depth -= 1
    return None
