"""A CDA document as a readable HTML page (ITI-68 with ``Accept: text/html``). Pure.

The page frame and the header list are :mod:`hie.documents.render.page`'s, as for a FHIR document.

Nothing of the document reaches the page unescaped. Its narrative markup is not trusted: only the
CDA narrative block's own elements (paragraph, list, table, content, ...) become HTML elements,
each with no attribute but a numeric ``colspan``/``rowspan``; any other element (a ``script``
smuggled into a section, ``linkHtml``, ``renderMultiMedia``) gives up its tag and keeps only its
text, escaped.
"""

from __future__ import annotations

from typing import Any

from hie.documents.model import CdaHeader, read_header
from hie.documents.render import page as frame
from hie.normalize.cda import parse_timestamp

_HL7 = "{urn:hl7-org:v3}"
# CDA narrative block element → HTML element.
_ELEMENTS = {
    "paragraph": "p",
    "content": "span",
    "caption": "strong",
    "table": "table",
    "thead": "thead",
    "tbody": "tbody",
    "tfoot": "tfoot",
    "tr": "tr",
    "th": "th",
    "td": "td",
    "item": "li",
    "sub": "sub",
    "sup": "sup",
    "footnote": "small",
}
_CELL_ATTRIBUTES = ("colspan", "rowspan")
_GENDERS = {"1": "男 male", "2": "女 female", "0": "未知 unknown", "9": "未说明 unstated"}


def _local(element: Any) -> str | None:
    tag = element.tag
    if not isinstance(tag, str) or not tag.startswith(_HL7):
        return None
    return tag[len(_HL7) :]


def _narrative(element: Any) -> str:
    """The HTML of a narrative element's children (its own tag is the caller's)."""
    parts = [frame.text(element.text or "")]
    for child in element:
        name = _local(child)
        if name == "br":
            parts.append("<br>")
        elif name == "list":
            tag = "ol" if child.get("listType") == "ordered" else "ul"
            parts.append(f"<{tag}>{_narrative(child)}</{tag}>")
        elif name in _ELEMENTS:
            tag = _ELEMENTS[name]
            attributes = ""
            if tag in ("td", "th"):
                for attribute in _CELL_ATTRIBUTES:
                    value = child.get(attribute)
                    if value is not None and value.isdigit() and len(value) <= 3:
                        attributes += f' {attribute}="{value}"'
            parts.append(f"<{tag}{attributes}>{_narrative(child)}</{tag}>")
        elif isinstance(child.tag, str):
            parts.append(_narrative(child))  # an element not allowed: its text only
        parts.append(frame.text(child.tail or ""))
    return "".join(parts)


def _sections(parent: Any, depth: int) -> list[str]:
    html: list[str] = []
    for component in parent.findall(f"{_HL7}component"):
        section = component.find(f"{_HL7}section")
        if section is None:
            continue
        title = section.find(f"{_HL7}title")
        html.append("<section>")
        if title is not None:
            html.append(frame.heading(depth, "".join(title.itertext()).strip()))
        text = section.find(f"{_HL7}text")
        if text is not None:
            html.append(f"<div>{_narrative(text)}</div>")
        html += _sections(section, depth + 1)
        html.append("</section>")
    return html


def _moment(value: str | None) -> str | None:
    moment = parse_timestamp(value)
    if moment is None:
        return value
    if len((value or "").strip()) <= 8:
        return moment.date().isoformat()
    return moment.strftime("%Y-%m-%d %H:%M")


def _header_rows(header: CdaHeader) -> list[tuple[str, str | None]]:
    gender = header.gender_display or _GENDERS.get(header.gender or "", header.gender)
    period = None
    if header.encounter_low or header.encounter_high:
        period = f"{_moment(header.encounter_low) or ''} – {_moment(header.encounter_high) or ''}"
    return [
        (frame.PATIENT, header.patient_name),
        (frame.GENDER, gender),
        (frame.BORN, _moment(header.birth_time)),
        (frame.AGE, header.age),
        (frame.INSTITUTION, header.custodian_name or header.custodian_id),
        (frame.DEPARTMENT, header.department),
        (frame.AUTHOR, header.author_name),
        (frame.DOCUMENT_TIME, _moment(header.effective_time)),
        (frame.ENCOUNTER, period),
        (frame.TYPE, " ".join(p for p in (header.code, header.code_display) if p) or None),
    ]


def render_cda(tree: Any) -> str:
    """The page of a parsed CDA document: its WS/T 500 header and its sections' narrative."""
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    header = read_header(root)
    title = header.title or header.code_display or "CDA"
    body = root.find(f"{_HL7}component/{_HL7}structuredBody")
    sections = _sections(body, 2) if body is not None else []
    if body is None:
        sections = ["<p>此文档没有结构化正文 (no structured body to show)</p>"]
    return frame.page(title, _header_rows(header), sections)
