"""FHIR R4 invariants that matter for ingest (``schemas/fhir/invariants.json``).

Each invariant is registered as ``fhir.invariant.<key>``. Those whose ``engine`` is ``fhirpath``
run the specification's own expression with fhirpathpy, compiled once. The others are written
here by hand because fhirpathpy lacks what their expression needs (``htmlChecks()``, or a
``descendants()`` over every type, which would also be slow): dom-3, ref-1, per-1, txt-1, txt-2.
ele-1 is checked during the walk (:mod:`~hie.validators.fhir_rules.tree`).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models
from lxml import etree  # type: ignore[import-untyped]

from hie.resources import schemas_dir
from hie.validators.fhir_rules.tree import ResourceNode, Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

XHTML = "http://www.w3.org/1999/xhtml"
# Not "basic html formatting" (txt-1): active content, forms, frames, document-level elements.
_FORBIDDEN_ELEMENTS = frozenset(
    {
        "script", "form", "input", "button", "select", "textarea", "iframe", "frame",
        "frameset", "object", "applet", "embed", "base", "link", "meta", "style", "head",
        "body", "html", "title", "noscript", "param", "option", "label", "fieldset",
    }
)  # fmt: skip
_QUANTITY_TYPES = ("Quantity", "Age", "Count", "Distance", "Duration", "SimpleQuantity",
                   "MoneyQuantity")  # fmt: skip
_NOT_DOMAIN = frozenset({"Bundle", "Binary", "Parameters"})

# fhirpathpy keeps per-evaluation state in module globals: evaluate one expression at a time.
_FHIRPATH_LOCK = threading.Lock()


def _has_value(inputs: list[Any]) -> list[bool]:
    """FHIRPath hasValue(), which fhirpathpy does not implement: a single primitive value."""
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], dict | list)]


_OPTIONS = {"userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}}}}


@dataclass(frozen=True)
class Invariant:
    key: str
    context: str
    severity: Severity
    human: str
    expression: str
    engine: str
    rule: str
    evaluate: Callable[..., Any] | None
    guard: str | None = None  # an element without which the expression is true


@cache
def invariants() -> tuple[Invariant, ...]:
    """Read, register and compile the invariants (once)."""
    data = json.loads((schemas_dir() / "fhir" / "invariants.json").read_text("utf-8"))
    result = []
    for item in data["invariants"]:
        rule = register(
            f"fhir.invariant.{item['key']}",
            summary=f"{item['key']}: {item['human']}",
            fix=item["fix"],
        )
        compiled = None
        if item["engine"] == "fhirpath":
            compiled = compile_fhirpath(item["expression"], models["r4"], _OPTIONS)
        result.append(
            Invariant(
                item["key"],
                item["context"],
                Severity(item["severity"]),
                item["human"],
                item["expression"],
                item["engine"],
                rule.id,
                compiled,
                item.get("guard"),
            )
        )
    return tuple(result)


def _targets(tree: Tree, context: str) -> Iterator[tuple[str, Any, ResourceNode]]:
    """(path, value, owning resource) of every place an invariant of ``context`` applies to."""
    if context == "DomainResource":
        for resource in tree.resources:
            if resource.type not in _NOT_DOMAIN:
                yield resource.path, resource.data, resource
    elif context[0].isupper() and "." not in context and context not in _DATATYPES:
        for resource in tree.resources:
            if resource.type == context:
                yield resource.path, resource.data, resource
    else:
        types = _QUANTITY_TYPES if context == "Quantity" else (context,)
        for type_code in types:
            for node in tree.of_type(type_code):
                yield node.path, node.value, node.owner
        if "." in context:
            for node in tree.at(context):
                yield node.path, node.value, node.owner


_DATATYPES = frozenset({"Narrative", "Reference", "Period", "ContactPoint", "Quantity",
                        "Attachment"})  # fmt: skip


def _fail(report: Report, invariant: Invariant, path: str, detail: str = "") -> None:
    report.add(
        invariant.severity,
        invariant.rule,
        f"{path}: {invariant.key}: {invariant.human}{detail}",
        code="invariant",
        expression=path,
    )


def _holds(invariant: Invariant, value: Any, owner: ResourceNode) -> bool | None:
    """The expression's verdict, or None when fhirpathpy cannot evaluate it on this value."""
    if invariant.evaluate is None:
        return None
    root = owner
    while root.parent is not None and root.role == "contained":
        root = root.parent
    context = {"resource": owner.data, "rootResource": root.data}
    try:
        with _FHIRPATH_LOCK:
            result = invariant.evaluate(value, context)
    # fhirpathpy raises plain Exceptions on values of unexpected shape (the walk has already
    # reported those); an invariant it cannot evaluate is skipped, never a crash.
    except Exception:
        return None
    return bool(result != [False])


def check_invariants(tree: Tree, report: Report) -> None:
    for invariant in invariants():
        check = _PYTHON.get(invariant.key)
        if check is not None:
            check(tree, invariant, report)
            continue
        if invariant.evaluate is None:
            continue
        for path, value, owner in _targets(tree, invariant.context):
            if invariant.guard is not None and invariant.guard not in value:
                continue
            if _holds(invariant, value, owner) is False:
                _fail(report, invariant, path)


# -- invariants written by hand ------------------------------------------------------------


def _contained_ids(resource: ResourceNode) -> set[str]:
    contained = resource.data.get("contained")
    if not isinstance(contained, list):
        return set()
    return {c["id"] for c in contained if isinstance(c, dict) and isinstance(c.get("id"), str)}


def _container(node: ResourceNode) -> ResourceNode:
    while node.role == "contained" and node.parent is not None:
        node = node.parent
    return node


def _check_ref_1(tree: Tree, invariant: Invariant, report: Report) -> None:
    for node in tree.of_type("Reference"):
        reference = node.value.get("reference")
        if not isinstance(reference, str) or not reference.startswith("#"):
            continue
        if reference == "#":
            if node.owner.role != "contained":
                _fail(report, invariant, f"{node.path}.reference", " ('#' outside contained)")
            continue
        if reference[1:] not in _contained_ids(_container(node.owner)):
            _fail(report, invariant, f"{node.path}.reference", f" (no contained {reference})")


def _local_references(tree: Tree, container: ResourceNode) -> set[str]:
    """Every '#...' reference or canonical written in ``container`` or its contained resources."""
    found: set[str] = set()
    for node in tree.of_type("Reference"):
        value = node.value.get("reference")
        if isinstance(value, str) and value.startswith("#") and _container(node.owner) is container:
            found.add(value)
    for type_code in ("canonical", "uri", "url"):
        for node in tree.of_type(type_code):
            value = node.value
            if value.startswith("#") and _container(node.owner) is container:
                found.add(value.split("|", 1)[0])
    return found


def _check_dom_3(tree: Tree, invariant: Invariant, report: Report) -> None:
    for resource in tree.resources:
        contained = resource.data.get("contained")
        if resource.role == "contained" or not isinstance(contained, list):
            continue
        references = _local_references(tree, resource)
        if "#" in references:
            continue  # a contained resource refers to the container: all are reachable
        for index, item in enumerate(contained):
            if isinstance(item, dict) and f"#{item.get('id')}" not in references:
                _fail(
                    report,
                    invariant,
                    f"{resource.path}.contained[{index}]",
                    f" (nothing refers to #{item.get('id')})",
                )


_DATE_TIME = re.compile(
    r"(?P<date>\d{4}(?:-\d{2}(?:-\d{2})?)?)"
    r"(?:T(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?P<zone>Z|[+-]\d{2}:\d{2})?)?"
)


def _instant(value: str) -> tuple[str, Any] | None:
    """(precision, comparable) of an R4 date/dateTime; None when unparseable."""
    from datetime import datetime

    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return None
    if match["time"] is None:
        return "date" + str(len(match["date"])), match["date"]
    if match["zone"] is None:
        return "local", value
    try:
        return "instant", datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def period_ordered(start: str, end: str) -> bool:
    """per-1 with FHIRPath's precision rule: values of different precision compare on what
    they share, and an undecided comparison is no violation."""
    first, last = _instant(start), _instant(end)
    if first is None or last is None:
        return True  # the format rule reports the value itself
    if first[0] == last[0]:
        return bool(first[1] <= last[1])
    common = min(len(start), len(end), 10)
    return start[:common] <= end[:common]


def _check_per_1(tree: Tree, invariant: Invariant, report: Report) -> None:
    for node in tree.of_type("Period"):
        start, end = node.value.get("start"), node.value.get("end")
        if isinstance(start, str) and isinstance(end, str) and not period_ordered(start, end):
            _fail(report, invariant, node.path)


@cache
def _xhtml_parser() -> Any:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _narrative_problem(div: str) -> tuple[str, str] | None:
    """(invariant key, detail) of what is wrong with a narrative div, or None."""
    try:
        root = etree.fromstring(div.encode("utf-8"), _xhtml_parser())
    except etree.XMLSyntaxError as exc:
        return "txt-1", f" (not well-formed XHTML: {exc.msg})"
    if root.tag != f"{{{XHTML}}}div":
        return "txt-1", ' (the root must be <div xmlns="http://www.w3.org/1999/xhtml">)'
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        local = etree.QName(element).localname
        if local in _FORBIDDEN_ELEMENTS:
            return "txt-1", f" (<{local}> is not allowed)"
        for name in element.attrib:
            if etree.QName(name).localname.lower().startswith("on"):
                return "txt-1", f" (attribute {etree.QName(name).localname} is not allowed)"
    if not "".join(root.itertext()).strip() and root.find(f".//{{{XHTML}}}img") is None:
        return "txt-2", ""
    return None


def _check_narrative(tree: Tree, invariant: Invariant, report: Report) -> None:
    for node in tree.of_type("Narrative"):
        div = node.value.get("div")
        if not isinstance(div, str):
            continue
        problem = _narrative_problem(div)
        if problem is not None and problem[0] == invariant.key:
            _fail(report, invariant, f"{node.path}.div", problem[1])


_PYTHON: dict[str, Callable[[Tree, Invariant, Report], None]] = {
    "dom-3": _check_dom_3,
    "ref-1": _check_ref_1,
    "per-1": _check_per_1,
    "txt-1": _check_narrative,
    "txt-2": _check_narrative,
}
