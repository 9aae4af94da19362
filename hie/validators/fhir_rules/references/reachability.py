"""Links between a document's or message's entries: each resolves, narrativeLink anchors
exist, and every entry is reachable from the Composition or MessageHeader."""

from __future__ import annotations

import re
from typing import Any

from hie.validators.conformance import Context
from hie.validators.fhir_rules.references.bundles import (
    Bundle,
    Entry,
    add_resolution,
    each,
    entry_of,
)
from hie.validators.fhir_rules.references.rules import FRAGMENT, ORPHAN
from hie.validators.fhir_rules.tree import Node, Tree
from hie.validators.report import Report, Severity

_NARRATIVE_LINK = "http://hl7.org/fhir/StructureDefinition/narrativeLink"
# uri/url elements that identify rather than point at a resource (HL7's list).
_NOT_LINKS = frozenset(
    {
        "Bundle.entry.fullUrl", "Coding.system", "Identifier.system", "Meta.profile",
        "Extension.url", "Quantity.system", "MessageHeader.source.endpoint",
        "MessageHeader.destination.endpoint", "Endpoint.address",
    }
)  # fmt: skip
_XHTML_ID = re.compile(r"\bid\s*=\s*([\"'])(.*?)\1", re.I | re.S)


def _links(
    tree: Tree, by_resource: dict[int, tuple[Bundle, Entry]]
) -> dict[int, list[tuple[str, str, bool]]]:
    """Each entry's (by id) outgoing links once each: (reference, path, is a narrativeLink)."""
    narrative_links: set[str] = set()
    for node in tree.of_type("Extension"):
        if isinstance(node.value, dict) and node.value.get("url") == _NARRATIVE_LINK:
            narrative_links.update((f"{node.path}.valueUrl", f"{node.path}.valueUri"))
    links: dict[int, list[tuple[str, str, bool]]] = {}
    nodes: list[tuple[Node, str | None, str]] = []
    for node in tree.of_type("Reference"):
        value = node.value.get("reference") if isinstance(node.value, dict) else None
        nodes.append((node, value if isinstance(value, str) else None, f"{node.path}"))
    for type_code in ("uri", "url"):
        for node in tree.of_type(type_code):
            name = node.definition.rsplit(".", 1)[-1]
            if node.definition in _NOT_LINKS or name == "system":
                continue
            nodes.append((node, node.value if isinstance(node.value, str) else None, node.path))
    for node, value, path in nodes:
        if not value or value.startswith("#"):
            continue
        located = entry_of(node.owner, by_resource)
        if located is None or located[0].type not in ("document", "message"):
            continue
        entry_links = links.setdefault(id(located[1]), [])
        if all(existing != value for existing, _, _ in entry_links):
            entry_links.append((value, path, path in narrative_links))
    return links


def check_interlinks(
    tree: Tree,
    bundles: list[Bundle],
    by_resource: dict[int, tuple[Bundle, Entry]],
    report: Report,
    context: Context,
    reported: set[str],
) -> None:
    links = _links(tree, by_resource)
    for bundle in bundles:
        if bundle.type not in ("document", "message") or not bundle.entries:
            continue
        present = [e for e in bundle.entries if e.resource is not None]
        for entry in present:
            entry.targets = []
            for value, path, narrative in links.get(id(entry), []):
                resolution = bundle.resolve(value, entry, path, context, strict=False)
                add_resolution(resolution, path, report, reported)
                target = resolution.entry
                if target is None:
                    continue
                if narrative and "#" in value:
                    _fragment(bundle, target, value, path, report)
                if target is not entry:
                    entry.targets.append(target)
        _reachability(bundle, present, report)


def _fragment(bundle: Bundle, target: Entry, value: str, path: str, report: Report) -> None:
    fragment = value.split("#", 1)[1]
    count = _count_ids(target.resource, fragment, 0)
    if count == 0:
        count = sum(1 for e in bundle.entries if e.id == fragment)
    if count == 1:
        return
    problem = (
        f"names no element with id '{fragment}' in {target.shown}"
        if count == 0
        else f"names {count} elements with id '{fragment}' in {target.shown}; an anchor must "
        "be unique"
    )
    report.add(
        Severity.ERROR, FRAGMENT.id, f"{path}: the narrative link '{value}' {problem}",
        code="not-found", expression=path,
    )  # fmt: skip


def _count_ids(value: Any, fragment: str, depth: int) -> int:
    if depth > 200:
        return 0
    if isinstance(value, dict):
        count = 1 if value.get("id") == fragment else 0
        for key, item in value.items():
            if key == "div" and isinstance(item, str):
                count += sum(1 for m in _XHTML_ID.finditer(item) if m.group(2) == fragment)
            elif isinstance(item, dict | list):
                count += _count_ids(item, fragment, depth + 1)
        return count
    if isinstance(value, list):
        return sum(_count_ids(item, fragment, depth + 1) for item in value)
    return 0


def _reachability(bundle: Bundle, present: list[Entry], report: Report) -> None:
    if not present:
        return
    visited: set[int] = set()

    def visit(start: Entry) -> None:
        stack = [start]
        while stack:
            entry = stack.pop()
            if id(entry) in visited:
                continue
            visited.add(id(entry))
            stack.extend(entry.targets)

    visit(present[0])
    for _, link in each(bundle.node.data.get("link")):
        if isinstance(link, dict) and link.get("relation") == "stylesheet":
            for entry in present:
                if f"{entry.type}/{entry.id}" == link.get("url"):
                    visited.add(id(entry))
                    break
    document = bundle.type == "document"
    head = "Composition" if document else "MessageHeader"
    found = True
    while found:
        found = False
        for entry in present:
            if id(entry) in visited or not any(id(t) in visited for t in entry.targets):
                continue
            found = True
            visit(entry)
            if document and entry.type != "Provenance":
                report.add(
                    Severity.WARNING,
                    ORPHAN.id,
                    f"{entry.path}: entry {entry.shown} is only reachable backwards from the "
                    f"{head} (it references the document's content, nothing references it); "
                    "in R4 only a Provenance is meant to be included this way",
                    expression=entry.path,
                )
    for entry in present:
        if id(entry) in visited:
            continue
        report.add(
            Severity.ERROR if document else Severity.WARNING,
            ORPHAN.id,
            f"{entry.path}: entry {entry.shown} isn't reachable by following references "
            f"(forwards or backwards) from the {head}",
            expression=entry.path,
        )
