"""Narrative hyperlinks: an anchor link names an id or anchor of its resource (or, in a
document, of the Composition), and no link is a urn: identifier."""

from __future__ import annotations

import re
from typing import Any

from hie.validators.fhir_rules.references.bundles import Bundle, each
from hie.validators.fhir_rules.references.rules import HYPERLINK
from hie.validators.fhir_rules.tree import Tree
from hie.validators.report import Report, Severity

_HREF = re.compile(r"<a\b[^>]*?\bhref\s*=\s*([\"'])(.*?)\1", re.I | re.S)
# URI schemes a browser cannot follow: a narrative link must be a hyperlink, not an identifier.
_UNLINKABLE = re.compile(r"(urn|oid|uuid):", re.I)
_ANCHOR = re.compile(r"\b(?:id|name)\s*=\s*([\"'])(.*?)\1", re.I | re.S)


def check_hyperlinks(tree: Tree, bundles: list[Bundle], report: Report) -> None:
    """``<a href="#x">`` in a narrative names an anchor of its resource (contained resources
    included) or, inside a document, of the Composition."""
    compositions: dict[int, set[str]] = {}
    for bundle in bundles:
        if bundle.type == "document" and bundle.entries and bundle.entries[0].type == "Composition":
            composition = _anchors(bundle.entries[0].resource, 0)
            for entry in bundle.entries:
                if entry.resource is not None:
                    compositions[id(entry.resource)] = composition
    for resource in tree.resources:
        if resource.role == "contained":
            continue  # checked with its container
        divs = _divs(resource.data, resource.path, 0)
        if not any("href" in div for _, div in divs):
            continue
        anchors: set[str] | None = None
        for path, div in divs:
            for match in _HREF.finditer(div):
                href = match.group(2)
                if _UNLINKABLE.match(href):
                    report.add(
                        Severity.ERROR,
                        HYPERLINK.id,
                        f"{path}: the hyperlink '{href}' is an identifier ({href.split(':')[0]}:), "
                        "not a link a reader can follow",
                        code="value",
                        expression=path,
                    )
                    continue
                if not href.startswith("#") or len(href) == 1:
                    continue
                target = href[1:]
                if anchors is None:
                    anchors = _anchors(resource.data, 0) | compositions.get(
                        id(resource.data), set()
                    )
                if target in anchors:
                    continue
                report.add(
                    Severity.ERROR,
                    HYPERLINK.id,
                    f"{path}: the hyperlink '#{target}' names no id or anchor in the resource",
                    code="value",
                    expression=path,
                )


def _divs(value: Any, path: str, depth: int) -> list[tuple[str, str]]:
    """(path, xhtml) of the narratives of a resource: its own, its contained resources' and its
    nested sections' (Composition.section.text); not those of Bundle entries."""
    found: list[tuple[str, str]] = []
    if depth > 100 or not isinstance(value, dict):
        return found
    text = value.get("text")
    if isinstance(text, dict) and isinstance(text.get("div"), str):
        found.append((f"{path}.text.div", text["div"]))
    for key in ("contained", "section"):
        for suffix, item in each(value.get(key)):
            found.extend(_divs(item, f"{path}.{key}{suffix}", depth + 1))
    return found


def _anchors(value: Any, depth: int) -> set[str]:
    """Element ids and narrative id/name attributes anywhere in a resource."""
    anchors: set[str] = set()
    if depth > 200:
        return anchors
    if isinstance(value, dict):
        identifier = value.get("id")
        if isinstance(identifier, str):
            anchors.add(identifier)
        for key, item in value.items():
            if key == "div" and isinstance(item, str):
                anchors.update(m.group(2) for m in _ANCHOR.finditer(item))
            elif isinstance(item, dict | list) and not (
                key == "entry" and value.get("resourceType") == "Bundle"
            ):
                anchors |= _anchors(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            anchors |= _anchors(item, depth + 1)
    return anchors
