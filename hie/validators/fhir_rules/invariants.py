"""FHIR R4 invariants that matter for ingest (``schemas/fhir/invariants.json``).

Each invariant is registered as ``fhir.invariant.<key>``. Those whose ``engine`` is ``fhirpath``
run the specification's own expression with fhirpathpy, compiled once. The others are written
here by hand because fhirpathpy lacks what their expression needs (``htmlChecks()``, or a
``descendants()`` over every type, which would also be slow) or because they apply to so many
elements that an evaluation each would be slow: dom-3, ref-1, per-1, txt-1, txt-2, ext-1. Those
whose ``engine`` is ``none`` are not checked (the file says why). ele-1 is checked during the walk
(:mod:`~hie.validators.fhir_rules.tree`). ``scripts/build_invariants.py`` generates the file from
every error-severity constraint of the R4 resources and data types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhirpathpy.engine.nodes import ResourceNode as FhirpathNode
from fhirpathpy.models import models
from lxml import etree  # type: ignore[import-untyped]

from hie.resources import schemas_dir
from hie.validators.fhir_rules.elements import is_resource_type, resource_types
from hie.validators.fhir_rules.fhirpath import LOCK, compile_r4
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


@dataclass(frozen=True)
class Invariant:
    key: str
    context: str
    severity: Severity
    human: str
    expression: str
    engine: str
    rule: str
    guard: str | None = None  # an element without which the expression is true

    @property
    def evaluate(self) -> Callable[..., Any] | None:
        """The compiled expression (None for one written by hand), compiled on first use:
        compiling all of them up front would cost every ``hie validate`` run half a second."""
        return _compiled(self.expression) if self.engine == "fhirpath" else None


@cache
def _compiled(expression: str) -> Callable[..., Any]:
    return compile_r4(expression)


@cache
def invariants() -> tuple[Invariant, ...]:
    """Read and register the invariants (once)."""
    data = json.loads((schemas_dir() / "fhir" / "invariants.json").read_text("utf-8"))
    result = []
    for item in data["invariants"]:
        rule = register(
            f"fhir.invariant.{item['key']}",
            summary=f"{item['key']}: {item['human']}",
            fix=item["fix"],
        )
        result.append(
            Invariant(
                item["key"],
                item["context"],
                Severity(item["severity"]),
                item["human"],
                item["expression"],
                item["engine"],
                rule.id,
                item.get("guard"),
            )
        )
    return tuple(result)


@dataclass(frozen=True)
class _Target:
    path: str
    value: Any
    owner: ResourceNode
    base: str | None  # the FHIRPath type of a non-resource value (None: a resource)


@cache
def _aliases() -> dict[str, tuple[str, ...]]:
    """Backbone paths and the content-reference paths that repeat them (Questionnaire.item:
    Questionnaire.item.item), under which the walk indexes the nested ones."""
    found: dict[str, list[str]] = {}
    for alias, target in models["r4"]["pathsDefinedElsewhere"].items():
        found.setdefault(target, []).append(alias)
    return {target: tuple(aliases) for target, aliases in found.items()}


@dataclass(frozen=True)
class _Plan:
    """The evaluated invariants grouped by what they apply to, so that a check costs what the
    resource holds rather than the number of invariants."""

    by_resource: dict[str, tuple[Invariant, ...]]  # resource type ("*": every one)
    by_type: dict[str, tuple[Invariant, ...]]  # data type code
    by_definition: dict[str, tuple[Invariant, ...]]  # backbone element path
    by_hand: tuple[Invariant, ...]  # those written here (_PYTHON)


@cache
def _plan() -> _Plan:
    by_resource: dict[str, list[Invariant]] = {}
    by_type: dict[str, list[Invariant]] = {}
    by_definition: dict[str, list[Invariant]] = {}
    by_hand = tuple(invariant for invariant in invariants() if invariant.key in _PYTHON)
    for invariant in invariants():
        if invariant.engine != "fhirpath" or invariant.key in _PYTHON:
            continue
        context = invariant.context
        if context == "DomainResource":
            for name in resource_types() - _NOT_DOMAIN:
                by_resource.setdefault(name, []).append(invariant)
        elif context == "Resource":
            by_resource.setdefault("*", []).append(invariant)
        elif is_resource_type(context):
            by_resource.setdefault(context, []).append(invariant)
        elif "." not in context:
            for type_code in _QUANTITY_TYPES if context == "Quantity" else (context,):
                by_type.setdefault(type_code, []).append(invariant)
        else:
            for definition in (context, *_aliases().get(context, ())):
                by_definition.setdefault(definition, []).append(invariant)

    def frozen(groups: dict[str, list[Invariant]]) -> dict[str, tuple[Invariant, ...]]:
        return {key: tuple(value) for key, value in groups.items()}

    return _Plan(frozen(by_resource), frozen(by_type), frozen(by_definition), by_hand)


def _targets(tree: Tree) -> Iterator[tuple[Invariant, _Target]]:
    """Every (invariant, place it applies to) of the invariants fhirpathpy evaluates."""
    plan = _plan()
    every = plan.by_resource.get("*", ())
    for resource in tree.resources:
        for invariant in plan.by_resource.get(resource.type, ()) + every:
            yield invariant, _Target(resource.path, resource.data, resource, None)
    for type_code, group in plan.by_type.items():
        for node in tree.of_type(type_code):
            for invariant in group:
                yield invariant, _Target(node.path, node.value, node.owner, type_code)
    for definition, group in plan.by_definition.items():
        for node in tree.at(definition):
            for invariant in group:
                yield invariant, _Target(node.path, node.value, node.owner, invariant.context)


def _fail(report: Report, invariant: Invariant, path: str, detail: str = "") -> None:
    report.add(
        invariant.severity,
        invariant.rule,
        f"{path}: {invariant.key}: {invariant.human}{detail}",
        code="invariant",
        expression=path,
    )


def _holds(invariant: Invariant, target: _Target) -> bool | None:
    """The expression's verdict, or None when fhirpathpy cannot evaluate it on this value."""
    if invariant.evaluate is None:
        return None
    shortcut = _SHORTCUTS.get(invariant.key)
    if shortcut is not None and (verdict := shortcut(target)) is not None:
        return verdict
    owner = target.owner
    root = owner
    while root.parent is not None and root.role == "contained":
        root = root.parent
    context = {"resource": owner.data, "rootResource": root.data}
    try:
        # The type tells fhirpathpy what a choice element (answer, value) and `is` mean.
        value = (
            target.value
            if target.base is None
            else FhirpathNode.create_node(target.value, target.base)  # type: ignore[no-untyped-call]
        )
        with LOCK:
            result = invariant.evaluate(value, context)
    # fhirpathpy raises plain Exceptions on values of unexpected shape (the walk has already
    # reported those); an invariant it cannot evaluate is skipped, never a crash.
    except Exception:
        return None
    # Only a definite false is a violation: an empty result (e.g. a comparison of values of
    # different precision) is not, so fhirpathpy's gaps never reject a valid resource.
    return bool(result != [False])


# -- the same verdict as the expression, computed in Python for the usual shapes -------------
#
# The Bundle and Quantity invariants run on every entry and every quantity: through fhirpathpy
# they were a quarter of a Synthea bundle's validation. Each shortcut answers only for plainly
# shaped values (JSON objects and strings where R4 puts them, no primitive extensions) and
# returns None for anything else, which fhirpathpy then evaluates as before;
# tests/validators/test_fhir_invariants.py holds both to the same verdicts.


def _present(data: dict[str, Any], name: str) -> bool | None:
    """``name.exists()`` for a complex element, or None for a shape left to fhirpathpy."""
    value = data.get(name)
    if value is None and name not in data:
        return False
    return True if isinstance(value, dict) and value else None


def _plain_entries(bundle: Any) -> list[dict[str, Any]] | None:
    entries = bundle.get("entry", []) if isinstance(bundle, dict) else None
    if isinstance(entries, list) and all(isinstance(e, dict) for e in entries):
        return entries
    return None


def _entries_all(target: _Target, element: str, types: tuple[str, ...]) -> bool | None:
    """bdl-3, bdl-4: ``entry.all(ELEMENT.exists() = (%resource.type = one of TYPES))``."""
    bundle_type = target.owner.data.get("type")
    entries = _plain_entries(target.value)
    if not isinstance(bundle_type, str) or entries is None:
        return None
    expected = bundle_type in types
    verdicts = [_present(entry, element) for entry in entries]
    if None in verdicts:
        return None
    return all(verdict == expected for verdict in verdicts)


def _bdl_7(target: _Target) -> bool | None:
    """``(type = 'history') or entry.where(fullUrl.exists())
    .select(fullUrl & resource.meta.versionId).isDistinct()``."""
    bundle_type = target.value.get("type")
    entries = _plain_entries(target.value)
    if not isinstance(bundle_type, str) or entries is None:
        return None
    if bundle_type == "history":
        return True
    keys = []
    for entry in entries:
        full_url = entry.get("fullUrl")
        if "_fullUrl" in entry or (full_url is None and "fullUrl" in entry):
            return None
        if full_url is None:
            continue
        resource = entry.get("resource", {})
        meta = resource.get("meta", {}) if isinstance(resource, dict) else None
        version = meta.get("versionId", "") if isinstance(meta, dict) else None
        if not isinstance(full_url, str) or not isinstance(version, str):
            return None
        if isinstance(meta, dict) and "_versionId" in meta:
            return None
        keys.append(full_url + version)
    return len(set(keys)) == len(keys)


def _bdl_5(target: _Target) -> bool | None:
    """``resource.exists() or request.exists() or response.exists()``."""
    if not isinstance(target.value, dict):
        return None
    verdicts = [_present(target.value, name) for name in ("resource", "request", "response")]
    if True in verdicts:
        return True
    return None if None in verdicts else False


def _bdl_8(target: _Target) -> bool | None:
    """``fullUrl.contains('/_history/').not()``."""
    full_url = target.value.get("fullUrl") if isinstance(target.value, dict) else None
    if not isinstance(full_url, str) or "_fullUrl" in target.value:
        return None
    return "/_history/" not in full_url


def _qty_3(target: _Target) -> bool | None:
    """``code.empty() or system.exists()`` (run only when the quantity has a code)."""
    value = target.value
    if not isinstance(value, dict) or not isinstance(value.get("code"), str):
        return None
    if "_code" in value or "_system" in value:
        return None
    system = value.get("system")
    if isinstance(system, str):
        return True
    return False if "system" not in value else None


def _contained_meta(target: _Target, names: tuple[str, ...]) -> bool | None:
    """dom-4, dom-5: none of the contained resources' ``meta`` has any of ``names``."""
    contained = target.value.get("contained")
    if not isinstance(contained, list) or not all(isinstance(c, dict) for c in contained):
        return None
    for item in contained:
        meta = item.get("meta", {})
        if not isinstance(meta, dict):
            return None
        if any(name in meta or f"_{name}" in meta for name in names):
            return None
    return True


def _dom_2(target: _Target) -> bool | None:
    """``contained.contained.empty()``."""
    contained = target.value.get("contained")
    if not isinstance(contained, list) or not all(isinstance(c, dict) for c in contained):
        return None
    return True if not any("contained" in item for item in contained) else None


_SHORTCUTS: dict[str, Callable[[_Target], bool | None]] = {
    "bdl-3": lambda t: _entries_all(t, "request", ("batch", "transaction", "history")),
    "bdl-4": lambda t: _entries_all(
        t, "response", ("batch-response", "transaction-response", "history")
    ),
    "bdl-5": _bdl_5,
    "bdl-7": _bdl_7,
    "bdl-8": _bdl_8,
    "qty-3": _qty_3,
    "dom-2": _dom_2,
    "dom-4": lambda t: _contained_meta(t, ("versionId", "lastUpdated")),
    "dom-5": lambda t: _contained_meta(t, ("security",)),
}


def check_invariants(tree: Tree, report: Report) -> None:
    for invariant in _plan().by_hand:
        _PYTHON[invariant.key](tree, invariant, report)
    for invariant, target in _targets(tree):
        guard = invariant.guard
        if guard is not None and not (isinstance(target.value, dict) and guard in target.value):
            continue
        if _holds(invariant, target) is False:
            _fail(report, invariant, target.path)


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
    # The narrative may be what refers to it (<img src="#photo">), as HL7's validator counts.
    for node in tree.of_type("Narrative"):
        div = node.value.get("div")
        if isinstance(div, str) and "#" in div and _container(node.owner) is container:
            found.update("#" + target for target in _NARRATIVE_LINK.findall(div))
    return found


_NARRATIVE_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']#([^"']+)["']""")


def _check_dom_3(tree: Tree, invariant: Invariant, report: Report) -> None:
    if not tree.contained:
        return  # contained resources are not validated: HL7 checks dom-3 as part of that
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
    """per-1 as HL7's FHIRPath engine evaluates ``start <= end``: values of different precision
    compare on what they share, and when that is equal the comparison is empty, which the
    validator counts as a failed constraint (2023-06-21 to 2023-06-21T06:20:00Z fails)."""
    first, last = _instant(start), _instant(end)
    if first is None or last is None:
        return True  # the format rule reports the value itself
    if first[0] == last[0]:
        return bool(first[1] <= last[1])
    common = min(len(start), len(end), 10)
    return start[:common] < end[:common]


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


def _check_ext_1(tree: Tree, invariant: Invariant, report: Report) -> None:
    for node in tree.of_type("Extension"):
        value = node.value
        nested = bool(value.get("extension"))
        typed = any(key.startswith("value") for key in value)
        if nested == typed:
            detail = " (it has both)" if nested else " (it has neither)"
            _fail(report, invariant, node.path, detail)


_PYTHON: dict[str, Callable[[Tree, Invariant, Report], None]] = {
    "ext-1": _check_ext_1,
    "dom-3": _check_dom_3,
    "ref-1": _check_ref_1,
    "per-1": _check_per_1,
    "txt-1": _check_narrative,
    "txt-2": _check_narrative,
}
