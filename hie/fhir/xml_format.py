"""FHIR XML on the REST API: which format a request body is in and an answer is wanted in, and
the JSON form of a resource written as FHIR R4 XML.

HAPI-based clients send and ask for ``application/fhir+xml``. A body in XML is read by the
validators' reader (:func:`hie.validators.fhir_xml.read_fhir_xml`) into the JSON form, which is
what the server validates and stores; answers are written from the JSON form here, following the
FHIR R4 XML rules (hl7.org/fhir/R4/xml.html) with R4's own element definitions, the same data the
reader converts with (:mod:`hie.validators.fhir_rules.elements`):

* the resource type is the root element, in the ``http://hl7.org/fhir`` namespace;
* child elements come in the order R4 defines them (a choice such as ``valueQuantity`` at the
  place of ``value[x]``), the repeats of an element together;
* primitives are ``value`` attributes; the ``_name`` of JSON (id, extensions) goes into the same
  element, repeating primitives aligned by their ``null`` placeholders;
* ``id`` of elements and ``Extension.url`` are attributes (a resource's ``id`` is an element);
* contained resources, ``Bundle.entry.resource`` and other Resource-typed elements wrap the
  resource element; the narrative ``div`` is written as the XHTML it holds.

Only what R4 defines is written: a served resource passed validation, so it holds nothing else.
"""

from __future__ import annotations

import re
from itertools import zip_longest
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from hie.validators.fhir_rules.elements import Element, children, is_resource_type, order
from hie.validators.fhir_xml import FHIR_NS, XHTML_NS
from hie.validators.xml import hardened_parser

FHIR_XML = "application/fhir+xml"
# The media types of FHIR XML (R4 http.html#mime): the FHIR one, the generic XML ones, and the
# DSTU2 one older HAPI clients still send.
XML_TYPES = (FHIR_XML, "application/xml", "text/xml", "application/xml+fhir")
_JSON_RANGES = (
    "application/fhir+json",
    "application/json",
    "application/json+fhir",
    "*/*",
    "application/*",
)
# _format values (R4 http.html#parameters): the short names and the media types.
_FORMAT_XML = frozenset({"xml", *XML_TYPES})
_FORMAT_JSON = frozenset({"json", "application/fhir+json", "application/json"})

# What XML 1.0 cannot hold at all (control characters other than tab, newline and return): FHIR
# strings may not contain them either, so dropping them loses nothing a valid resource has.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def wants_xml(format_parameter: str | None, accept: str | None) -> bool:
    """Whether the answer is to be FHIR XML: ``_format`` decides when it names a format (HAPI
    ignores values it does not know, and so does this), otherwise ``Accept``. JSON is the
    default: without ``Accept``, with ``*/*``, or when JSON is ranked at least as high."""
    if format_parameter is not None:
        # An unencoded "+" in a query string reads as a space: application/fhir xml.
        value = format_parameter.split(";")[0].strip().lower().replace(" ", "+")
        if value in _FORMAT_XML:
            return True
        if value in _FORMAT_JSON:
            return False
    best_xml = best_json = 0.0
    first_xml = first_json = len(accept or "")  # where each best is listed, to break ties
    for position, media_range in enumerate((accept or "").split(",")):
        media, *params = (part.strip() for part in media_range.split(";"))
        quality = _quality(params)
        media = media.lower()
        if media in XML_TYPES and (quality, -position) > (best_xml, -first_xml):
            best_xml, first_xml = quality, position
        elif media in _JSON_RANGES and (quality, -position) > (best_json, -first_json):
            best_json, first_json = quality, position
    # As HAPI does, equal qualities go to the one listed first.
    return best_xml > 0 and (best_xml, -first_xml) > (best_json, -first_json)


def _quality(params: list[str]) -> float:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def to_fhir_xml(resource: dict[str, Any]) -> bytes:
    """``resource`` (JSON form) as a FHIR XML document, UTF-8 with an XML declaration.

    Raises ValueError when ``resource`` is not an R4 resource (it has no XML form)."""
    name = resource.get("resourceType")
    if not is_resource_type(name):
        raise ValueError(f"{name!r} is not an R4 resource type")
    root = etree.Element(f"{{{FHIR_NS}}}{name}", nsmap={None: FHIR_NS})
    _content(root, resource, str(name), resource=True)
    text: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + text


def _content(node: Any, data: dict[str, Any], definition: str, *, resource: bool) -> None:
    """The elements of ``data`` (a resource, data type or backbone element) into ``node``."""
    elements = children(definition)
    ranks = order(definition)
    attributes = () if resource else _attributes(definition)
    found: dict[str, Element] = {}
    for key, value in data.items():
        name = key.removeprefix("_")
        if name in attributes:
            if key == name and isinstance(value, str):
                node.set(name, _text(value))
            continue
        element = elements.get(name)
        if element is not None:
            found.setdefault(name, element)
    # A stable sort: elements R4 gives no rank (none in a valid resource) keep their JSON order.
    placed = sorted(found.values(), key=lambda e: ranks.get(e.choice or e.name, len(ranks)))
    for element in placed:
        if element.primitive and element.type != "xhtml":
            _primitives(node, element, data.get(element.name), data.get(f"_{element.name}"))
        else:
            for item in _items(data.get(element.name)):
                _complex(node, element, item)


def _items(value: Any) -> list[Any]:
    """The occurrences of an element: a JSON array's items (a lone value counts as one)."""
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _primitives(node: Any, element: Element, values: Any, extras: Any) -> None:
    """Primitive elements: each value (JSON ``name``) with its id and extensions (``_name``);
    the two arrays of a repeating primitive are aligned by position, ``null`` filling gaps."""
    value_list = values if isinstance(values, list) else [values]
    extra_list = extras if isinstance(extras, list) else [extras]
    for value, extra in zip_longest(value_list, extra_list):
        if value is None and not isinstance(extra, dict):
            continue
        child = etree.SubElement(node, f"{{{FHIR_NS}}}{element.name}")
        if isinstance(extra, dict) and isinstance(extra.get("id"), str):
            child.set("id", _text(extra["id"]))
        if value is not None:
            child.set("value", _lexical(value))
        if isinstance(extra, dict):
            for extension in _items(extra.get("extension")):
                _complex(child, children("Element")["extension"], extension)


def _lexical(value: Any) -> str:
    """A JSON primitive as its FHIR XML value: booleans as true/false, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        # repr of a float is its shortest exact form, e.g. 0.1 or 1e-07, both FHIR decimals.
        return repr(value)
    return _text(str(value))


def _complex(node: Any, element: Element, value: Any) -> None:
    """A data type, backbone element, wrapped resource or narrative div."""
    if element.type == "xhtml":
        if isinstance(value, str):
            node.append(_xhtml(value))
        return
    if not isinstance(value, dict):
        return
    if element.resource:
        name = value.get("resourceType")
        if is_resource_type(name):
            wrapper = etree.SubElement(node, f"{{{FHIR_NS}}}{element.name}")
            inner = etree.SubElement(wrapper, f"{{{FHIR_NS}}}{name}")
            _content(inner, value, str(name), resource=True)
        return
    child = etree.SubElement(node, f"{{{FHIR_NS}}}{element.name}")
    _content(child, value, element.definition, resource=False)


def _attributes(definition: str) -> tuple[str, ...]:
    """What FHIR XML writes as attributes of an element: its ``id``, and ``Extension.url``."""
    names = ("id",) if "id" in children(definition) else ()
    return (*names, "url") if definition == "Extension" else names


def _xhtml(value: str) -> Any:
    """The narrative's div element from the XHTML string the JSON holds. A div that is not
    well-formed XHTML (a valid resource has none) is kept as the text of an empty div."""
    try:
        div = etree.fromstring(value.encode("utf-8"), hardened_parser())
    except (etree.XMLSyntaxError, ValueError):
        div = None
    if div is None or div.tag != f"{{{XHTML_NS}}}div":
        div = etree.Element(f"{{{XHTML_NS}}}div", nsmap={None: XHTML_NS})
        div.text = _text(value)
    div.tail = None
    return div


def _text(value: str) -> str:
    return _NOT_XML.sub("", value)
