"""A FHIR document Bundle as a readable HTML page (ITI-68 with ``Accept: text/html``). Pure.

The header comes from the Composition and the resources it references inside the Bundle. Each
section's narrative (``text.div``) is not trusted: it is parsed by the platform's hardened XML
parser (no DTD, no entity expansion), and only the XHTML elements FHIR R4 allows in a narrative
become HTML elements, with no attribute but a numeric ``colspan``/``rowspan``. Anything else (a
``script``, an ``iframe``, event and ``style`` attributes) gives up its tag and keeps only its
text, escaped. A link keeps its words; its address is shown as plain text, and only when it is
a web address. An image is its ``alt`` text. A section without narrative lists its entries.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from hie.documents.render import page as frame
from hie.validators.xml import parse_xml

_XHTML = "{http://www.w3.org/1999/xhtml}"
# FHIR R4 narrative (xhtml constraint txt-1): the elements a narrative may hold, as HTML
# elements; the deprecated ones become their current equivalents. ``a`` and ``img`` are handled
# apart: they are how a narrative would reach outside the page.
_ALLOWED = (
    "abbr", "b", "blockquote", "caption", "cite", "code", "col", "colgroup", "dd", "dfn", "div",
    "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "i", "li", "ol", "p", "pre", "q", "samp",
    "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "ul", "var",
)  # fmt: skip
_ELEMENTS = {**{name: name for name in _ALLOWED}, "acronym": "abbr", "big": "strong", "tt": "code"}
_VOID = {"br": "<br>", "hr": "<hr>"}
_CELL_ATTRIBUTES = ("colspan", "rowspan")
_WEB = re.compile(r"https?://[^\s<>\"']+")
_GENDERS = {
    "male": "男 male",
    "female": "女 female",
    "other": "其他 other",
    "unknown": "未知 unknown",
}
_CJK = re.compile(r"[\u3400-\u9fff]")
NOT_SHOWN = "（此叙述无法显示 the narrative is not well-formed XHTML and is not shown）"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _local(element: Any) -> str | None:
    """An XHTML element's name (a narrative missing its namespace is read alike)."""
    tag = element.tag
    if not isinstance(tag, str):
        return None  # a comment or processing instruction
    if tag.startswith(_XHTML):
        return tag[len(_XHTML) :]
    return None if tag.startswith("{") else tag


def _children(element: Any) -> str:
    """The HTML of an element's content (its own tag is the caller's)."""
    parts = [frame.text(element.text)]
    for child in element:
        if isinstance(child.tag, str):
            parts.append(_element(child))
        parts.append(frame.text(child.tail))
    return "".join(parts)


def _element(element: Any) -> str:
    name = _local(element)
    if name in _VOID:
        return _VOID[name]
    if name == "img":
        alt = _str(element.get("alt"))
        return f"[{frame.text(alt)}]" if alt else ""
    if name == "a":
        words = _children(element)
        href = (element.get("href") or "").strip()
        if _WEB.fullmatch(href) and href != "".join(element.itertext()).strip():
            words += f" ({frame.text(href)})"  # the address as text, never a link
        return f"<span>{words}</span>"
    if name in _ELEMENTS:
        tag = _ELEMENTS[name]
        attributes = ""
        if tag in ("td", "th"):
            for attribute in _CELL_ATTRIBUTES:
                value = element.get(attribute)
                if value is not None and value.isdigit() and len(value) <= 3:
                    attributes += f' {attribute}="{value}"'
        return f"<{tag}{attributes}>{_children(element)}</{tag}>"
    return _children(element)  # an element a narrative may not hold: its text only


def narrative(div: str) -> str:
    """A ``text.div`` as safe HTML (a ``div``); a notice when it is not well-formed XML or is
    refused by the hardened parser (a DOCTYPE, entity declarations)."""
    parsed = parse_xml(div.encode())
    if parsed.tree is None:
        return f"<p>{frame.text(NOT_SHOWN)}</p>"
    root = parsed.tree.getroot()
    return f"<div>{_children(root)}</div>"


class _Bundle:
    """The Bundle's resources, found by the references its Composition makes."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.by_reference: dict[str, dict[str, Any]] = {}
        for entry in _dicts(bundle.get("entry")):
            resource = _dict(entry.get("resource"))
            full_url = _str(entry.get("fullUrl"))
            if full_url:
                self.by_reference[full_url] = resource
            kind, rid = _str(resource.get("resourceType")), _str(resource.get("id"))
            if kind and rid:
                self.by_reference.setdefault(f"{kind}/{rid}", resource)

    def resolve(self, reference: Any) -> dict[str, Any]:
        ref = _str(_dict(reference).get("reference"))
        return self.by_reference.get(ref, {}) if ref else {}


def _human_name(resource: dict[str, Any]) -> str | None:
    names = _dicts(resource.get("name"))
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    if _str(name.get("text")):
        return _str(name.get("text"))
    given = [g for g in name.get("given") or [] if isinstance(g, str)]
    parts = [p for p in (_str(name.get("family")), *given) if p]
    if not parts:
        return None
    # A Chinese name is written family first with no space; a Western one, given first.
    if any(_CJK.search(p) for p in parts):
        return "".join(parts)
    return " ".join([*given, *[p for p in parts[:1] if p not in given]])


def _named(bundle: _Bundle, reference: Any) -> str | None:
    """Who or what a reference names: the resource's name, else the reference's display."""
    resource = bundle.resolve(reference)
    name = resource.get("name")
    if isinstance(name, str):
        return _str(name)  # an Organization
    return _human_name(resource) or _str(_dict(reference).get("display"))


def _moment(value: Any) -> str | None:
    """A FHIR date or dateTime as written, minutes at most (its own offset kept)."""
    text = _str(value)
    if text is None or len(text) <= 10:
        return text
    try:
        return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return text


def _period(period: dict[str, Any]) -> str | None:
    start, end = _moment(period.get("start")), _moment(period.get("end"))
    return f"{start or ''} – {end or ''}" if start or end else None


def _concept(concept: Any) -> str | None:
    """A CodeableConcept as its first code and its words (the coding's display, else text)."""
    concept = _dict(concept)
    coding = next(iter(_dicts(concept.get("coding"))), {})
    words = _str(coding.get("display")) or _str(concept.get("text"))
    return " ".join(p for p in (_str(coding.get("code")), words) if p) or None


def _header_rows(
    bundle: _Bundle, composition: dict[str, Any], institution: str | None
) -> frame.Rows:
    patient = bundle.resolve(composition.get("subject"))
    gender = _str(patient.get("gender"))
    encounter = bundle.resolve(composition.get("encounter"))
    period = next(
        (p for e in _dicts(composition.get("event")) if (p := _period(_dict(e.get("period"))))),
        _period(_dict(encounter.get("period"))),
    )
    authors = [a for a in (_named(bundle, r) for r in _dicts(composition.get("author"))) if a]
    return [
        (frame.PATIENT, _named(bundle, composition.get("subject"))),
        (frame.GENDER, _GENDERS.get(gender or "", gender)),
        (frame.BORN, _str(patient.get("birthDate"))),
        (frame.INSTITUTION, _named(bundle, composition.get("custodian")) or institution),
        (frame.AUTHOR, "、".join(authors) or None),
        (frame.DOCUMENT_TIME, _moment(composition.get("date"))),
        (frame.ENCOUNTER, period),
        (frame.TYPE, _concept(composition.get("type"))),
        (frame.STATUS, _str(composition.get("status"))),
    ]


def _entries(bundle: _Bundle, section: dict[str, Any]) -> str:
    """A section without narrative: its entries' references and the types they name."""
    items: list[str] = []
    for reference in _dicts(section.get("entry")):
        ref = _str(reference.get("reference")) or ""
        kind = _str(bundle.resolve(reference).get("resourceType"))
        if kind is None and "/" in ref and not ref.startswith("urn:"):
            kind = ref.rsplit("/", 2)[-2]
        words = " — ".join(p for p in (kind, _str(reference.get("display")), ref or None) if p)
        items.append(f"<li>{frame.text(words)}</li>")
    if not items:
        reason = _concept(section.get("emptyReason"))
        return f"<p>{frame.text(reason or '（无内容 empty）')}</p>"
    return f"<ul>{''.join(items)}</ul>"


def _sections(bundle: _Bundle, parent: dict[str, Any], depth: int) -> list[str]:
    html: list[str] = []
    for section in _dicts(parent.get("section")):
        html.append("<section>")
        title = _str(section.get("title")) or _concept(section.get("code"))
        if title:
            html.append(frame.heading(depth, title))
        div = _str(_dict(section.get("text")).get("div"))
        if div is not None:
            html.append(narrative(div))
        elif not section.get("section"):
            html.append(_entries(bundle, section))
        html += _sections(bundle, section, depth + 1)
        html.append("</section>")
    return html


def render_fhir_document(document: dict[str, Any], *, institution: str | None = None) -> str:
    """The page of a FHIR document Bundle: its Composition's header and its sections.
    ``institution`` names the custodian when the Composition does not."""
    entries = _dicts(document.get("entry"))
    composition = _dict(entries[0].get("resource")) if entries else {}
    bundle = _Bundle(document)
    title = _str(composition.get("title")) or _concept(composition.get("type")) or "FHIR document"
    sections = _sections(bundle, composition, 2)
    if composition.get("resourceType") != "Composition":
        sections = ["<p>此文档没有 Composition (no Composition to show)</p>"]
    return frame.page(title, _header_rows(bundle, composition, institution), sections)
