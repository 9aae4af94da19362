"""FHIR resources in XML, converted into the JSON form every FHIR rule works on, with line numbers.

The XML is first parsed with the hardened parser (no DTD, no entities, bounded size and depth).
The tree is then converted element by element as the FHIR R4 XML and JSON formats define it,
driven by R4's own element definitions (:mod:`hie.validators.fhir_rules.elements`): a primitive's
``value`` attribute becomes a JSON boolean, number or string, its ``id`` and ``extension`` the
``_name`` object; an element R4 lets repeat becomes an array (with ``null`` placeholders aligning
``_name`` arrays); ``Extension.url`` and ``Element.id`` are attributes; ``contained``,
``Bundle.entry.resource`` and other Resource-typed elements wrap a resource element; the narrative
``div`` is kept as its XHTML string. What the XML format does not allow (unknown elements and
attributes, text, a value on a complex element, the wrong namespace) is a located ``fhir.xml``
error and is left out of the JSON, so the rule layers still check the rest.

Every element's line and column is kept by its JSON path (``Patient.name[0].given[1]``), so that
the later layers' issues, located by FHIRPath, also get the line and column of the XML.
"""

from __future__ import annotations

import bisect
import copy
import json
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cache
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from hie.validators.fhir_rules.elements import (
    R4B_ONLY_TYPES,
    Element,
    children,
    is_resource_type,
    order,
    repeats,
)
from hie.validators.fhir_rules.tree import EMPTY, RESOURCE_TYPE
from hie.validators.report import Issue, Report, Severity
from hie.validators.rules import register
from hie.validators.xml import parse_xml

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"

XML_FORM = register(
    "fhir.xml",
    summary="A FHIR resource in XML follows the FHIR XML format: elements in the "
    "http://hl7.org/fhir namespace (the narrative div in XHTML's), each element known to R4 and "
    "repeated only where R4 allows, values in value attributes of the right type, no other "
    "attributes and no text.",
    fix="Correct the element at the line and column given against the resource's definition in "
    'FHIR R4 (element names and case, <name value="..."/> rather than text, id and url as '
    "attributes); remove attributes FHIR does not define, such as xsi:schemaLocation; or send "
    "the resource as JSON.",
)

ELEMENT_ORDER = register(
    "fhir.xml.order",
    summary="The child elements of each FHIR XML element come in the order R4 defines them "
    "(inherited ones such as id, meta, text, contained, extension and modifierExtension first), "
    "and the repeats of an element are written together.",
    fix="Move the element named to where R4's definition of the resource or data type puts it "
    "(the order of the element table on the resource's page at hl7.org/fhir/R4), keeping all "
    "repeats of an element next to each other; serializers that write FHIR XML from a model "
    "do this for you.",
)

# The lexical forms FHIR R4 gives the primitives that are JSON numbers or booleans; the JSON
# number grammar equals FHIR's decimal, so json.loads reads a decimal as JSON input would.
_NUMBER_FORMS = {
    "integer": re.compile(r"-?(0|[1-9][0-9]*)"),
    "unsignedInt": re.compile(r"0|[1-9][0-9]*"),
    "positiveInt": re.compile(r"\+?[1-9][0-9]*"),
    "decimal": re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"),
}
_BOOLEANS = {"true": True, "false": False}
# Where each start tag begins: whatever else starts with "<" in well-formed XML is skipped.
_MARKUP = re.compile(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>|<![^>]*>|</|<", re.DOTALL)

_NEWLINE = re.compile("\n")

Position = tuple[int, int | None]


@dataclass(frozen=True)
class Locations:
    """The line and column of each element of the XML, by the JSON path of its value."""

    by_path: dict[str, Position] = field(default_factory=dict)

    def locate(self, expression: str | None) -> Position | None:
        """Where ``expression`` is, or its nearest enclosing element (an attribute, a missing
        child or a FHIRPath function is located at the element it belongs to)."""
        candidate = expression or ""
        while candidate:
            if candidate in self.by_path:
                return self.by_path[candidate]
            cut = max(candidate.rfind("."), candidate.rfind("["))
            if cut <= 0:
                return None
            candidate = candidate[:cut]
        return None

    def place(self, issue: Issue) -> Issue:
        """``issue`` with the line and column of its expression, unless it has them already."""
        if issue.line is not None:
            return issue
        found = self.locate(issue.expression)
        if found is None:
            return issue
        return replace(issue, line=found[0], column=found[1])


@dataclass(frozen=True)
class FhirXml:
    """The resource in JSON form (None when there is none to validate), what the reading found,
    and where each element was."""

    resource: dict[str, Any] | None
    report: Report
    locations: Locations


def read_fhir_xml(data: bytes, *, max_bytes: int) -> FhirXml:
    """Read ``data`` as a FHIR XML resource; never raises on bad input.

    The resource is returned also when parts of it broke the XML format (those parts are left
    out and reported), so that the rest can still be validated.
    """
    parsed = parse_xml(data, max_bytes=max_bytes)
    report = parsed.report
    if parsed.tree is None:
        return FhirXml(None, report, Locations())
    root = parsed.tree.getroot()
    reader = _Reader(report, _Source(data, parsed.tree, list(root.iter(etree.Element))))
    try:
        resource = reader.root(root)
    except RecursionError:
        reader.error(root, "", "the XML is nested too deeply to read")
        resource = None
    return FhirXml(resource, report, Locations(reader.located))


def parse_fhir_xml(data: bytes, *, max_bytes: int) -> tuple[dict[str, Any] | None, Report]:
    """The resource as a JSON-form dict, or None with the reasons in the report (also when the
    XML breaks the FHIR XML format anywhere)."""
    read = read_fhir_xml(data, max_bytes=max_bytes)
    if read.report.rejected:
        return None, read.report
    return read.resource, read.report


class _Source:
    """Where elements and text are in the document. lxml keeps element lines only, so a scan of
    the text finds each start tag (in document order, as lxml lists the elements) for columns;
    lines alone when the text cannot be decoded."""

    def __init__(self, data: bytes, tree: Any, elements: list[Any]) -> None:
        self.text = ""
        self.offsets: dict[Any, int] = {}
        self.newlines: list[int] = []
        try:
            text = data.decode(tree.docinfo.encoding or "utf-8").removeprefix("\ufeff")
        except (LookupError, UnicodeDecodeError):
            return
        starts = [m.start() for m in _MARKUP.finditer(text) if m.group() == "<"]
        if len(starts) != len(elements):
            return
        self.text = text
        # Holding lxml's element proxies as keys keeps them alive, so their identity is stable.
        self.offsets = dict(zip(elements, starts, strict=True))
        self.newlines = [m.start() for m in _NEWLINE.finditer(text)]

    def _at(self, offset: int) -> Position:
        line = bisect.bisect_left(self.newlines, offset)
        line_start = self.newlines[line - 1] + 1 if line else 0
        return line + 1, offset - line_start + 1

    def element(self, node: Any) -> Position:
        offset = self.offsets.get(node)
        if offset is None:
            return int(getattr(node, "sourceline", 0) or 0) or 1, None
        return self._at(offset)

    def text_after(self, node: Any, text: str) -> Position:
        """Where ``text`` (the text or tail of an element) first appears after ``node``'s start
        tag; at the element when it cannot be found (e.g. written with character references)."""
        offset = self.offsets.get(node)
        found = self.text.find(text.strip()[:40], offset) if offset is not None else -1
        return self._at(found) if found >= 0 else self.element(node)


def _local(tag: str) -> tuple[str | None, str]:
    """(namespace, local name) of an lxml tag."""
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return None, tag


def _words(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Reader:
    def __init__(self, report: Report, source: _Source) -> None:
        self.report = report
        self.source = source
        self.located: dict[str, Position] = {}

    def position(self, node: Any) -> Position:
        return self.source.element(node)

    def error(
        self,
        node: Any,
        path: str,
        message: str,
        rule: str = XML_FORM.id,
        *,
        at: Position | None = None,
    ) -> None:
        line, column = at or self.position(node)
        self.report.add(
            Severity.ERROR,
            rule,
            f"{path}: {message}" if path else message,
            code="structure",
            line=line,
            column=column,
            expression=path or None,
        )

    def locate(self, node: Any, path: str) -> None:
        self.located[path] = self.position(node)

    def root(self, node: Any) -> dict[str, Any] | None:
        namespace, name = _local(node.tag)
        if namespace != FHIR_NS:
            where = f"namespace {namespace}" if namespace else "no namespace"
            self.error(node, "", f"the root element {name} is in {where}, not FHIR's {FHIR_NS}")
            return None
        return self.resource(node, name)

    def resource(self, node: Any, path: str) -> dict[str, Any] | None:
        """A resource element: its name is the resourceType."""
        name = _local(node.tag)[1]
        if not is_resource_type(name):
            if name in R4B_ONLY_TYPES:
                message = f"{name} is an R4B resource type, not an R4 (4.0.1) one"
            else:
                message = f"{name} is not an R4 resource type"
            self.error(node, path, message, RESOURCE_TYPE.id)
            return None
        self.locate(node, path)
        self.text(node, path)
        for attribute in node.attrib:
            if attribute != _XML_SPACE:
                self.error(node, path, f"a resource element has no attributes ({_attr(attribute)})")
        resource: dict[str, Any] = {"resourceType": name}
        self.content(node, path, name, resource, resource=True)
        return resource

    def text(self, node: Any, path: str) -> None:
        """FHIR XML has no text content: values are in value attributes."""
        if node.text and node.text.strip():
            self.error(
                node,
                path,
                f"text is not allowed here ({_words(node.text)!r}); FHIR XML "
                'puts values in value attributes: <element value="..."/>',
                at=self.source.text_after(node, node.text),
            )
        for child in node:
            if child.tail and child.tail.strip():
                anchor = child  # a comment: located at its line
                if isinstance(child.tag, str):
                    *_, anchor = child.iter(etree.Element)  # the tail follows the last element
                self.error(
                    node,
                    path,
                    f"text is not allowed here ({_words(child.tail)!r})",
                    at=self.source.text_after(anchor, child.tail),
                )

    def content(
        self,
        node: Any,
        path: str,
        definition: str,
        target: dict[str, Any],
        *,
        resource: bool = False,
    ) -> None:
        """The child elements of ``node`` (a resource, data type or backbone element) into
        ``target``, grouped by name, arrays where R4 lets the element repeat."""
        elements = children(definition)
        ranks = order(definition)
        groups: dict[str, tuple[Element, list[Any]]] = {}
        previous: tuple[int, Element] | None = None  # the element before, with its rank
        for child in node:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions
            element = self.known_child(child, path, definition, elements, resource=resource)
            if element is None:
                continue
            siblings = groups.setdefault(element.name, (element, []))[1]
            siblings.append(child)
            rank = ranks.get(element.choice or element.name)
            if rank is None:
                continue
            if previous is not None and rank < previous[0]:
                index = f"[{len(siblings) - 1}]" if repeats(definition, element.name) else ""
                self.misplaced(
                    child, f"{path}.{element.name}{index}", definition, element, previous[1]
                )
            previous = rank, element
        for name, (element, nodes) in groups.items():
            many = repeats(definition, name)
            if not many and len(nodes) > 1:
                for extra in nodes[1:]:
                    self.error(
                        extra,
                        f"{path}.{name}",
                        f"{name} appears more than once; {definition}.{name} does not repeat "
                        "in FHIR R4 (max 1)",
                    )
                nodes = nodes[:1]
            if element.primitive and element.type != "xhtml":
                self.primitives(element, nodes, path, target, many=many)
                continue
            values: list[Any] = []
            for child in nodes:
                child_path = f"{path}.{name}[{len(values)}]" if many else f"{path}.{name}"
                value = self.value(element, child, child_path)
                if value is not None:
                    values.append(value)
            if values:
                target[name] = values if many else values[0]

    def misplaced(
        self, node: Any, path: str, definition: str, element: Element, after: Element
    ) -> None:
        """As HL7's validator does, an element ranked below the one before it is reported: once
        per place the order goes back (a run of repeats that follows it counts once)."""
        self.error(
            node,
            path,
            f"element {element.name!r} is out of order (found after {after.name!r}): FHIR R4 "
            f"defines {definition}.{_defined(element)} before {definition}.{_defined(after)}, "
            "and XML must follow that order, with the repeats of an element together",
            ELEMENT_ORDER.id,
        )

    def known_child(
        self,
        child: Any,
        path: str,
        definition: str,
        elements: dict[str, Element],
        *,
        resource: bool,
    ) -> Element | None:
        namespace, name = _local(child.tag)
        element = elements.get(name)
        child_path = f"{path}.{name}"
        if element is not None and element.type == "xhtml":
            if namespace == XHTML_NS:
                return element
            self.error(
                child,
                child_path,
                f'the narrative div is in XHTML\'s namespace: <div xmlns="{XHTML_NS}">',
            )
            return None
        if namespace != FHIR_NS:
            where = f"namespace {namespace}" if namespace else "no namespace"
            self.error(child, child_path, f"element {name} is in {where}, not FHIR's {FHIR_NS}")
            return None
        attribute_only = not resource and name in _attributes(definition)
        if element is None or attribute_only:
            hint = f" ({name} is written as an attribute here)" if attribute_only else ""
            self.error(child, child_path, f"{definition} has no element {name!r} in FHIR R4{hint}")
            return None
        return element

    def value(self, element: Element, node: Any, path: str) -> Any:
        """The JSON value of a complex, backbone, resource or xhtml element."""
        self.locate(node, path)
        if element.type == "xhtml":
            return _xhtml(node)
        if element.resource:
            return self.wrapped_resource(node, path)
        self.text(node, path)
        target: dict[str, Any] = {}
        allowed = _attributes(element.definition)
        for attribute, value in node.attrib.items():
            if attribute in allowed:
                target[attribute] = value
            elif attribute == "value":
                self.error(
                    node,
                    path,
                    f"{element.name} is a complex element "
                    f"({element.type or 'backbone element'}): it has child elements, "
                    "not a value attribute",
                )
            elif attribute != _XML_SPACE:
                self.error(node, path, f"{element.name} has no attribute {_attr(attribute)}")
        self.content(node, path, element.definition, target)
        return target

    def wrapped_resource(self, node: Any, path: str) -> dict[str, Any] | None:
        """``<contained>``, ``<resource>``, ...: one resource element inside."""
        self.text(node, path)
        for attribute in node.attrib:
            if attribute != _XML_SPACE:
                self.error(node, path, f"{_local(node.tag)[1]} has no attribute {_attr(attribute)}")
        inner = [child for child in node if isinstance(child.tag, str)]
        if len(inner) != 1:
            found = "nothing" if not inner else f"{len(inner)} elements"
            self.error(node, path, f"holds one resource element (e.g. <Patient>), not {found}")
            return None
        namespace, name = _local(inner[0].tag)
        if namespace != FHIR_NS:
            where = f"namespace {namespace}" if namespace else "no namespace"
            self.error(inner[0], path, f"the resource {name} is in {where}, not FHIR's {FHIR_NS}")
            return None
        return self.resource(inner[0], path)

    def primitives(
        self, element: Element, nodes: list[Any], path: str, target: dict[str, Any], *, many: bool
    ) -> None:
        """Primitive elements: values into ``name``, ids and extensions into ``_name``."""
        name = element.name
        values: list[Any] = []
        extras: list[dict[str, Any] | None] = []
        for node in nodes:
            # an element that yields nothing is left out, so the next one takes its index
            suffix = f"[{len(values)}]" if many else ""
            value_path, extra_path = f"{path}.{name}{suffix}", f"{path}._{name}{suffix}"
            self.located[value_path] = self.located[extra_path] = self.position(node)
            value, extra = self.primitive(element, node, value_path, extra_path)
            if value is not None or extra is not None:
                values.append(value)
                extras.append(extra)
        if any(v is not None for v in values):
            target[name] = values if many else values[0]
        if any(e is not None for e in extras):
            target[f"_{name}"] = extras if many else extras[0]

    def primitive(
        self, element: Element, node: Any, path: str, extra_path: str
    ) -> tuple[Any, dict[str, Any] | None]:
        self.text(node, path)
        value: Any = None
        extra: dict[str, Any] = {}
        for attribute, lexical in node.attrib.items():
            if attribute == "value":
                value = self.lexical(element, node, path, lexical)
            elif attribute == "id":
                extra["id"] = lexical
            elif attribute != _XML_SPACE:
                self.error(
                    node,
                    path,
                    f"{element.name} has no attribute {_attr(attribute)} "
                    "(a primitive has value, id and extension only)",
                )
        extensions: list[Any] = []
        for child in node:
            if not isinstance(child.tag, str):
                continue
            namespace, child_name = _local(child.tag)
            child_path = f"{extra_path}.extension[{len(extensions)}]"
            if namespace != FHIR_NS or child_name != "extension":
                self.error(
                    child,
                    f"{path}.{child_name}",
                    f"{element.name} is a primitive "
                    f"({element.type}): it has no element {child_name!r}, only "
                    "extension",
                )
                continue
            extensions.append(self.value(children("Element")["extension"], child, child_path))
        if extensions:
            extra["extension"] = extensions
        if value is None and not extra and "value" not in node.attrib:
            self.error(
                node, path, "the element has no value attribute and no extension (ele-1)", EMPTY.id
            )
        return value, extra or None

    def lexical(self, element: Element, node: Any, path: str, lexical: str) -> Any:
        """The JSON value of a value attribute (None, with an error, when it has the wrong form)."""
        type_code = element.type
        if type_code == "boolean":
            if lexical in _BOOLEANS:
                return _BOOLEANS[lexical]
            self.error(node, path, f"value {_words(lexical)!r} is not a boolean: true or false")
            return None
        form = _NUMBER_FORMS.get(type_code)
        if form is None:
            return lexical
        if form.fullmatch(lexical):
            return json.loads(lexical.lstrip("+"), parse_float=Decimal)
        self.error(node, path, f"value {_words(lexical)!r} is not a valid {type_code}")
        return None


@cache
def _attributes(definition: str) -> frozenset[str]:
    """The elements FHIR XML writes as attributes of a (non-resource) element."""
    names = {"id"} if "id" in children(definition) else set()
    if definition == "Extension":
        names.add("url")
    return frozenset(names)


def _defined(element: Element) -> str:
    """The element's name in its definition: ``value[x]`` for ``valueQuantity``."""
    return f"{element.choice}[x]" if element.choice else element.name


def _attr(qualified: str) -> str:
    namespace, name = _local(qualified)
    return f"{name!r} (namespace {namespace})" if namespace else repr(name)


def _xhtml(node: Any) -> str:
    """The div as FHIR JSON has it: its XHTML, with only the namespaces it uses declared."""
    div = copy.deepcopy(node)
    div.tail = None
    etree.cleanup_namespaces(div)
    text: str = etree.tostring(div, encoding="unicode", with_tail=False)
    return text
