"""Damage that an XML Schema lets through, anywhere in the document: an attribute name in the wrong
case (ignored by every schema's open attribute wildcards, so the value is silently lost), spaces
around identifiers and structural codes (xs:token collapses them before checking), and timestamps
of a length or zone offset HL7's own pattern accepts but no reader can use."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from hie.validators.cda_rules.document import HL7_NS, CdaDocument, add_at, local_name
from hie.validators.report import Report, Severity
from hie.validators.rules import register

ATTRIBUTE_CASE = register(
    "cda.markup.attribute-case",
    summary="Attribute names are written as CDA spells them (XML names are case-sensitive: "
    "displayname is not displayName).",
    fix="Write the attribute name in CDA's spelling, e.g. displayName, codeSystem, "
    "codeSystemName, classCode, moodCode, typeCode; a misspelled attribute is ignored, so its "
    "value is lost.",
)
SPACES = register(
    "cda.markup.spaces",
    summary="Identifier roots, code-system OIDs and structural codes (classCode, moodCode, "
    "typeCode, determinerCode) carry no leading or trailing spaces.",
    fix='Remove the spaces inside the quotes: codeSystem="2.16.156.10011.2.3.3.4", not '
    'codeSystem=" 2.16.156.10011.2.3.3.4 "; a receiver compares these values as written.',
)
TIMESTAMP = register(
    "cda.markup.timestamp",
    summary="Every timestamp is yyyy[MM[dd[HH[mm[ss[.f]]]]]] in whole components, with an "
    "optional four-digit zone offset (+0800), and is a real date and time.",
    fix="Write timestamps as 20190715093000 or 20190715093000+0800: a 9-digit value has a digit "
    "too many or too few, and an offset has four digits (-0700, not -700).",
)

# Attribute names of CDA R2 (RIM attributes, data types, narrative block), in their spelling.
CDA_ATTRIBUTES = frozenset(
    {
        "ID", "IDREF", "abbr", "align", "alignment", "assigningAuthorityName", "axis", "border",
        "cellpadding", "cellspacing", "char", "charoff", "classCode", "code", "codeSystem",
        "codeSystemName", "codeSystemVersion", "colspan", "compression", "contextConductionInd",
        "contextControlCode", "currency", "determinerCode", "displayName", "displayable",
        "extension", "frame", "headers", "href", "inclusive", "independentInd",
        "institutionSpecified", "integrityCheck", "integrityCheckAlgorithm", "inversionInd",
        "isCriterionInd", "language", "listType", "mediaType", "moodCode", "name", "negationInd",
        "nullFlavor", "operator", "partType", "qualifier", "referencedObject", "representation",
        "revised", "root", "rowspan", "rules", "scope", "span", "styleCode", "summary",
        "typeCode", "unit", "updateMode", "use", "valign", "value", "width",
    }
)  # fmt: skip
_BY_LOWER = {name.lower(): name for name in CDA_ATTRIBUTES}
# Attributes compared as written by every receiver: spaces make them different values.
EXACT_ATTRIBUTES = ("root", "codeSystem", "classCode", "moodCode", "typeCode", "determinerCode")

# Elements whose @value is a TS; low/high/center only inside an interval of time.
_TIME_ELEMENTS = frozenset({"effectiveTime", "time", "birthTime", "copyTime", "deceasedTime"})
_INTERVAL_PARTS = frozenset({"low", "high", "center"})
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_TIMESTAMP = re.compile(
    r"(?P<digits>\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d+)?)?)?)?)?)?)"
    r"(?P<zone>[+-](?:0\d|1[0-4])[0-5]\d)?"
)


def check_markup(doc: CdaDocument, report: Report) -> None:
    """All three checks over every element in the HL7 namespace (or none, for namespace-less
    copies), in one pass over each element's attributes."""
    # A set of the elements themselves (not id()s): lxml keeps one proxy per node only while it
    # is referenced, so the set also keeps the proxies that iteration returns again.
    header_times = _header_times(doc)
    for element in _elements(doc):
        for name, value in element.items():
            if name in CDA_ATTRIBUTES:
                if name in EXACT_ATTRIBUTES and value != value.strip() and value.strip():
                    _spaces(element, name, value, report)
                elif name == "value" and element not in header_times and _is_timestamp(element):
                    _timestamp(element, value, report)
            elif not name.startswith("{") and name.lower() in _BY_LOWER:
                _attribute_case(element, name, report)


_HL7_PREFIX = "{" + HL7_NS + "}"


def _elements(doc: CdaDocument) -> Iterator[Any]:
    for element in doc.root.iter():
        tag = element.tag
        # comments and processing instructions have no string tag; other namespaces are skipped
        if isinstance(tag, str) and (tag.startswith(_HL7_PREFIX) or not tag.startswith("{")):
            yield element


def _header_times(doc: CdaDocument) -> set[Any]:
    """effectiveTime and birthTime of the header: the header rules judge them, in their words."""
    found = [doc.find("effectiveTime"), doc.find("recordTarget/patientRole/patient/birthTime")]
    return {e for e in found if e is not None}


def _attribute_case(element: Any, name: str, report: Report) -> None:
    # The narrative block (text) is free mark-up: vendors write HTML's id, class, ... there.
    if any(local_name(a) == "text" for a in element.iterancestors()) or local_name(element) == (
        "text"
    ):
        return
    spelled = _BY_LOWER[name.lower()]
    add_at(
        report,
        Severity.ERROR,
        ATTRIBUTE_CASE.id,
        f"attribute `{name}` on `{local_name(element)}` is not a CDA attribute: XML names are "
        f"case-sensitive, write `{spelled}` (as written, its value is ignored)",
        element=element,
        attr=name,
        code="structure",
    )


def _spaces(element: Any, name: str, value: str, report: Report) -> None:
    add_at(
        report,
        Severity.ERROR,
        SPACES.id,
        f"`{local_name(element)}/@{name}` {value!r} has leading or trailing spaces; write "
        f"{value.strip()!r}",
        element=element,
        attr=name,
        code="value",
    )


def _is_timestamp(element: Any) -> bool:
    if element.get("value") is None:
        return False
    xsi_type = (element.get(_XSI_TYPE) or "").split(":")[-1]
    if xsi_type:
        return xsi_type == "TS" or xsi_type.endswith("_TS")
    name = local_name(element)
    if name in _TIME_ELEMENTS:
        return True
    if name in _INTERVAL_PARTS:
        parent = element.getparent()
        parent_type = (parent.get(_XSI_TYPE) or "").split(":")[-1] if parent is not None else ""
        return parent is not None and (
            local_name(parent) in _TIME_ELEMENTS or parent_type.endswith("_TS")
        )
    return False


def timestamp_problem(value: str) -> str | None:
    """Why ``value`` is not a usable HL7 timestamp of any precision, or None."""
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        count = len(value) - len(value.lstrip("0123456789"))
        zone = re.search(r"[+-](\d*)$", value)
        if zone and len(zone[1]) != 4 and count >= 8:
            return f"{value!r} has a zone offset of {len(zone[1])} digits; write four (+0800)"
        hint = f" ({count} digits: one too many or too few?)" if count % 2 and count > 4 else ""
        return f"{value!r} is not a timestamp yyyy[MM[dd[HH[mm[ss]]]]][+zzzz]{hint}"
    whole = str(match["digits"]).split(".")[0]
    # yyyy, then MM dd HH mm ss as far as given; missing parts take their first valid value
    parts = [int(whole[:4])] + [int(whole[i : i + 2]) for i in range(4, len(whole), 2)]
    year, month, day, hour, minute, second = parts + [1, 1, 0, 0, 0][len(parts) - 1 :]
    try:
        datetime(year, month, day, hour, minute, second)  # noqa: DTZ001 (a calendar check)
    except ValueError:
        return f"{value!r} is not a real date and time"
    return None


def _timestamp(element: Any, value: str, report: Report) -> None:
    problem = timestamp_problem(value.strip())
    if problem is None:
        return
    add_at(
        report,
        Severity.ERROR,
        TIMESTAMP.id,
        f"`{local_name(element)}/@value`: {problem}",
        element=element,
        attr="value",
        code="value",
    )
