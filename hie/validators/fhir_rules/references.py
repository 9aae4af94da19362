"""References: the resource types a Reference may name, literal references inside Bundles, and
narrative hyperlinks.

Bundle resolution follows FHIR R4 "Resolving references in Bundles" as HL7's validator applies
it: an absolute reference (``http://…``, ``urn:uuid:…``) matches an entry's fullUrl (or
``fullUrl/_history/<meta.versionId>``); a relative one (``Patient/1``) is resolved against the base
of the referring entry's fullUrl, and only when that fullUrl is a RESTful URL ending in the
entry's own type and id. An entry with the right type and id but another base does not match.

- In every Bundle except transactions and batches (those are checked entry by entry and their
  ``urn:uuid`` references are rewritten by the server), a reference matching two entries is an
  error, and so is a match whose resource type differs from the type the reference names.
- In a document, the Composition's references (subject, author, sections' entries, …) and in a
  message the MessageHeader's focus must resolve in the Bundle, and every entry of a document
  must be reachable from the Composition by following references forwards or backwards.
- A fullUrl that looks like a RESTful URL (``…/Patient/1``) ends with the resource's type and id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hie.resources import schemas_dir
from hie.validators.conformance import CANONICAL_TYPES, Context
from hie.validators.fhir_rules.elements import resource_types
from hie.validators.fhir_rules.tree import Node, ResourceNode, Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

TARGET_TYPE = register(
    "fhir.reference.target-type",
    summary="A Reference names a resource of a type its element allows (R4 targetProfile), in "
    "Reference.type and in the literal reference.",
    fix="Point the reference at a resource of an allowed type (see the element on the R4 "
    "resource page), and write Reference.type as the exact resource type name (Practitioner, "
    "not practitioner).",
)
BUNDLE_RESOLVE = register(
    "fhir.reference.bundle-resolve",
    summary="In a document or message Bundle, the Composition's and MessageHeader's references "
    "resolve to exactly one entry, and no reference in any Bundle matches two entries; a "
    "relative reference resolves only against the base of the referring entry's RESTful fullUrl.",
    fix="Give the target entry the fullUrl the reference resolves to (the referring entry's base "
    "+ Type/id, or the same urn:uuid), or refer to the target by its fullUrl; remove duplicate "
    "entries or version the references (Type/id/_history/n with meta.versionId).",
)
BUNDLE_TYPE = register(
    "fhir.reference.bundle-type",
    summary="The Bundle entry a reference resolves to has the resource type the reference names.",
    fix="Correct the type in the reference, or the entry it resolves to.",
)
FULL_URL_ID = register(
    "fhir.reference.full-url-id",
    summary="A Bundle entry whose fullUrl looks like a RESTful URL (…/Type/id) holds a resource "
    "with that type and id.",
    fix="Make the fullUrl end with /<resourceType>/<id> of the entry's resource (and give the "
    "resource its id), or use a urn:uuid fullUrl.",
)
ORPHAN = register(
    "fhir.reference.document-orphan",
    summary="Every entry of a document Bundle is reachable from the Composition by following "
    "references (forwards, or backwards from a reachable entry).",
    fix="Reference the entry from the Composition (e.g. a section entry) or from a resource it "
    "references, or leave it out of the document; check the reference resolves (fullUrl rules).",
)
STYLESHEET = register(
    "fhir.reference.stylesheet",
    summary="A document's relative stylesheet link names an entry of the Bundle (Binary/id).",
    fix="Include the stylesheet as a Binary entry and link to it as Binary/<id>, or use an "
    "absolute https URL.",
)
FRAGMENT = register(
    "fhir.reference.fragment",
    summary="A narrativeLink extension (url#anchor) names a resource in the Bundle whose "
    "narrative has that anchor exactly once.",
    fix="Point the link at the fullUrl of the resource holding the narrative, and give the "
    "narrative element one unique id equal to the anchor.",
)
HYPERLINK = register(
    "fhir.reference.narrative-link",
    summary='A narrative hyperlink to an anchor (<a href="#x">) names an id or anchor of the '
    "resource (or, in a document, of the Composition), and no hyperlink is a urn: identifier.",
    fix='Give the linked element id="x" in the narrative, or link to an absolute URL; '
    "generated narratives that link to other resources must carry those anchors; show a "
    "urn:uuid as text instead of linking to it.",
)
_NARRATIVE_LINK = "http://hl7.org/fhir/StructureDefinition/narrativeLink"
_BUNDLED_ENTRIES = ("transaction", "batch", "transaction-response", "batch-response")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# uri/url elements that identify rather than point at a resource (HL7's list).
_NOT_LINKS = frozenset(
    {
        "Bundle.entry.fullUrl", "Coding.system", "Identifier.system", "Meta.profile",
        "Extension.url", "Quantity.system", "MessageHeader.source.endpoint",
        "MessageHeader.destination.endpoint", "Endpoint.address",
    }
)  # fmt: skip
_HREF = re.compile(r"<a\b[^>]*?\bhref\s*=\s*([\"'])(.*?)\1", re.I | re.S)
# URI schemes a browser cannot follow: a narrative link must be a hyperlink, not an identifier.
_UNLINKABLE = re.compile(r"(urn|oid|uuid):", re.I)
_ANCHOR = re.compile(r"\b(?:id|name)\s*=\s*([\"'])(.*?)\1", re.I | re.S)
_XHTML_ID = re.compile(r"\bid\s*=\s*([\"'])(.*?)\1", re.I | re.S)
_LITERAL = re.compile(
    r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?$"
)


@cache
def restful_url() -> re.Pattern[str]:
    """HL7's "looks like a RESTful URL": [http(s)://host/path/]Type/id[/_history/v], with
    the resource type as group 1 (host names may carry hyphens, as real ones do)."""
    types = "|".join(sorted(resource_types(), key=len, reverse=True))
    return re.compile(
        rf"(?:https?://(?:[A-Za-z0-9\\.:%$\-]*/)*)?({types})/[A-Za-z0-9\-.]{{1,64}}"
        r"(?:/_history/[A-Za-z0-9\-.]{1,64})?"
    )


@cache
def _targets() -> dict[str, frozenset[str]]:
    data = json.loads((schemas_dir() / "fhir" / "reference-targets.json").read_text("utf-8"))
    return {path: frozenset(types) for path, types in data["targets"].items()}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(eq=False)
class _Entry:
    index: int
    path: str  # Bundle.entry[i]
    full_url: str | None
    resource: dict[str, Any] | None
    type: str | None
    id: str | None
    version: str | None
    targets: list[_Entry] = field(default_factory=list)

    @property
    def shown(self) -> str:
        return f"'{self.full_url}'" if self.full_url else f"{self.path}"


@dataclass
class _Resolution:
    entry: _Entry | None = None
    problem: str | None = None  # an error to report


class _Bundle:
    """One Bundle's entries, indexed by fullUrl (and versioned fullUrl) and by Type/id."""

    def __init__(self, node: ResourceNode) -> None:
        self.node = node
        self.type = node.data.get("type")
        self.entries: list[_Entry] = []
        self.by_url: dict[str, list[_Entry]] = {}
        self.by_type_id: dict[str, list[_Entry]] = {}
        self.by_resource: dict[int, _Entry] = {}
        raw = node.data.get("entry")
        for index, item in enumerate(raw if isinstance(raw, list) else []):
            if not isinstance(item, dict):
                continue
            resource = item.get("resource") if isinstance(item.get("resource"), dict) else None
            meta = resource.get("meta") if resource else None
            entry = _Entry(
                index,
                f"{node.path}.entry[{index}]",
                _text(item.get("fullUrl")),
                resource,
                _text(resource.get("resourceType")) if resource else None,
                _text(resource.get("id")) if resource else None,
                _text(meta.get("versionId")) if isinstance(meta, dict) else None,
            )
            self.entries.append(entry)
            if resource is not None:
                self.by_resource[id(resource)] = entry
            keys: list[tuple[dict[str, list[_Entry]], str]] = []
            if entry.full_url:
                keys.append((self.by_url, entry.full_url))
                if entry.version:
                    keys.append((self.by_url, f"{entry.full_url}/_history/{entry.version}"))
            if entry.type and entry.id:
                keys.append((self.by_type_id, f"{entry.type}/{entry.id}"))
                if entry.version:
                    keys.append(
                        (self.by_type_id, f"{entry.type}/{entry.id}/_history/{entry.version}")
                    )
            for index_, key in keys:
                index_.setdefault(key, []).append(entry)

    def base_of(self, entry: _Entry) -> str | None:
        """The base a relative reference from ``entry`` resolves against, if its fullUrl is a
        RESTful URL ending in the entry's own type and id."""
        url = entry.full_url
        if not url or not entry.type or not entry.id:
            return None
        tail = f"{entry.type}/{entry.id}"
        if restful_url().fullmatch(url) and url.endswith(tail):
            return url[: -len(tail)]
        return None

    def resolve(
        self, reference: str, source: _Entry, title: str, context: Context, *, strict: bool
    ) -> _Resolution:
        """HL7's bundle resolution. ``strict``: a reference that matches nothing is an error
        (the Composition's and MessageHeader's); otherwise only ambiguity is."""
        reference = reference.split("#", 1)[0]
        if _ABSOLUTE.match(reference):
            found = self.by_url.get(reference, [])
            if len(found) == 1:
                return _Resolution(found[0])
            if len(found) > 1:
                return _Resolution(
                    problem=f"{len(found)} entries have the fullUrl '{reference}' ({title})"
                )
            restful = restful_url().fullmatch(reference)
            known = context.conformance.known(reference) or (
                restful is not None and restful.group(1) in CANONICAL_TYPES
            )
            if strict and not known:
                return _Resolution(
                    problem=f"'{reference}' ({title}) resolves to no entry of the Bundle: no "
                    "entry has that fullUrl"
                )
            return _Resolution()
        base = self.base_of(source)
        if base is not None:
            found = self.by_url.get(base + reference, [])
            if len(found) == 1:
                return _Resolution(found[0])
            if len(found) > 1:
                return _Resolution(
                    problem=f"'{reference}' ({title}) matches {len(found)} entries with the "
                    f"fullUrl '{base + reference}'"
                )
        parts = reference.split("/")
        if len(parts) < 2 or parts[0] not in resource_types():
            return _Resolution()
        apparent = self.by_type_id.get(f"{parts[0]}/{parts[1]}", [])
        if apparent:
            urls = ", ".join(sorted({e.full_url or "<no fullUrl>" for e in apparent}))
            where = (
                f"resolves against the referring entry's fullUrl base to '{base + reference}'"
                if base is not None
                else "cannot be resolved: the referring entry's fullUrl is not a RESTful URL "
                "ending in its own type and id"
            )
            return _Resolution(
                problem=f"'{reference}' ({title}) {where}; the entry with that type and id has "
                f"the fullUrl {urls}, which does not match"
            )
        if strict:
            return _Resolution(
                problem=f"'{reference}' ({title}) resolves to no entry of the Bundle"
            )
        return _Resolution()


def check_references(tree: Tree, report: Report, context: Context) -> None:
    bundles = [
        _Bundle(r)
        for r in tree.resources
        if r.type == "Bundle" and r.data.get("type") not in _BUNDLED_ENTRIES
    ]
    by_resource: dict[int, tuple[_Bundle, _Entry]] = {}
    for bundle in bundles:
        for key, entry in bundle.by_resource.items():
            by_resource[key] = (bundle, entry)
    reported: set[str] = set()
    for bundle in bundles:
        _full_urls(bundle, report)
        if bundle.type == "document":
            _document(bundle, report, context, reported)
        elif bundle.type == "message":
            _message(bundle, report, context, reported)
    _bundled_references(tree, by_resource, report, reported)
    if any(b.type in ("document", "message") for b in bundles):
        _interlinks(tree, bundles, by_resource, report, context, reported)
    _target_types(tree, by_resource, report)
    _hyperlinks(tree, bundles, report)


def _entry_of(
    resource: ResourceNode, by_resource: dict[int, tuple[_Bundle, _Entry]]
) -> tuple[_Bundle, _Entry] | None:
    """The Bundle entry ``resource`` is (or is inside of), nearest first."""
    node: ResourceNode | None = resource
    while node is not None:
        found = by_resource.get(id(node.data))
        if found is not None:
            return found
        node = node.parent
    return None


def _full_urls(bundle: _Bundle, report: Report) -> None:
    for entry in bundle.entries:
        url = entry.full_url
        if (
            not url
            or not entry.type
            or not _ABSOLUTE.match(url)
            or not restful_url().fullmatch(url)
        ):
            continue
        if entry.id is None:
            message = (
                f"{entry.path}: the fullUrl '{url}' looks like a RESTful server URL, but the "
                f"{entry.type} has no id"
            )
        elif not url.endswith(f"/{entry.type}/{entry.id}"):
            message = (
                f"{entry.path}: the fullUrl '{url}' looks like a RESTful server URL, so it must "
                f"end with the resource's type and id (/{entry.type}/{entry.id})"
            )
        else:
            continue
        report.add(Severity.ERROR, FULL_URL_ID.id, message, expression=entry.path)


def _add_resolution(resolution: _Resolution, path: str, report: Report, reported: set[str]) -> None:
    if resolution.problem and path not in reported:
        reported.add(path)
        report.add(
            Severity.ERROR,
            BUNDLE_RESOLVE.id,
            f"{path}: {resolution.problem}",
            code="not-found",
            expression=path,
        )


def _strict(
    bundle: _Bundle,
    source: _Entry,
    value: Any,
    path: str,
    title: str,
    context: Context,
    report: Report,
    reported: set[str],
) -> None:
    reference = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(reference, str) or not reference or reference.startswith("#"):
        return
    resolution = bundle.resolve(reference, source, title, context, strict=True)
    _add_resolution(resolution, path, report, reported)


def _each(value: Any) -> list[tuple[str, Any]]:
    """(suffix, item) of a repeating element's items, or of a single value."""
    if isinstance(value, list):
        return [(f"[{i}]", item) for i, item in enumerate(value)]
    return [("", value)] if value is not None else []


def _document(bundle: _Bundle, report: Report, context: Context, reported: set[str]) -> None:
    if not bundle.entries or bundle.entries[0].type != "Composition":
        return
    first = bundle.entries[0]
    composition = first.resource or {}
    base = f"{first.path}.resource"

    def check(holder: dict[str, Any], at: str, name: str, title: str) -> None:
        for suffix, item in _each(holder.get(name)):
            path = f"{at}.{name}{suffix}"
            _strict(bundle, first, item, path, title, context, report, reported)

    for name in ("subject", "author", "encounter", "custodian"):
        check(composition, base, name, f"Composition.{name}")
    for parent, name in (("attester", "party"), ("event", "detail")):
        for suffix, item in _each(composition.get(parent)):
            if isinstance(item, dict):
                check(item, f"{base}.{parent}{suffix}", name, f"Composition.{parent}.{name}")

    def sections(holder: dict[str, Any], at: str, depth: int) -> None:
        for suffix, section in _each(holder.get("section")):
            if not isinstance(section, dict) or depth > 50:
                continue
            where = f"{at}.section{suffix}"
            check(section, where, "author", "Section.author")
            check(section, where, "focus", "Section.focus")
            check(section, where, "entry", "Section entry")
            sections(section, where, depth + 1)

    sections(composition, base, 0)
    _stylesheets(bundle, report)


def _stylesheets(bundle: _Bundle, report: Report) -> None:
    for suffix, link in _each(bundle.node.data.get("link")):
        if not isinstance(link, dict) or link.get("relation") != "stylesheet":
            continue
        url = link.get("url")
        if not isinstance(url, str) or _ABSOLUTE.match(url):
            continue
        if not any(f"{e.type}/{e.id}" == url for e in bundle.entries if e.type):
            path = f"{bundle.node.path}.link{suffix}.url"
            report.add(
                Severity.ERROR,
                STYLESHEET.id,
                f"{path}: the stylesheet '{url}' is no entry of the document (Type/id)",
                code="not-found",
                expression=path,
            )


def _message(bundle: _Bundle, report: Report, context: Context, reported: set[str]) -> None:
    if not bundle.entries or bundle.entries[0].type != "MessageHeader":
        return
    first = bundle.entries[0]
    header = first.resource or {}
    for suffix, item in _each(header.get("focus")):
        path = f"{first.path}.resource.focus{suffix}"
        _strict(bundle, first, item, path, "MessageHeader.focus", context, report, reported)


def _bundled_references(
    tree: Tree,
    by_resource: dict[int, tuple[_Bundle, _Entry]],
    report: Report,
    reported: set[str],
) -> None:
    """Any Bundle (but transactions and batches): a reference must not match two entries, and
    the entry it matches must have the type it names (HL7 resolves ``Type/id`` from an entry
    with a ``urn:uuid:`` fullUrl to ``urn:uuid:<id>``)."""
    if not by_resource:
        return
    for node in tree.of_type("Reference"):
        reference = node.value.get("reference") if isinstance(node.value, dict) else None
        if not isinstance(reference, str) or not reference or reference.startswith("#"):
            continue
        located = _entry_of(node.owner, by_resource)
        if located is None:
            continue
        bundle, source = located
        target, named_type, version = _bundle_target(reference, source)
        if target is None:
            continue
        matches = [
            e
            for e in bundle.entries
            if e.full_url == target and (version is None or e.version == version)
        ]
        path = f"{node.path}.reference"
        if len(matches) > 1 and version is None and path not in reported:
            reported.add(path)
            report.add(
                Severity.ERROR,
                BUNDLE_RESOLVE.id,
                f"{path}: '{reference}' matches {len(matches)} entries with the fullUrl "
                f"'{target}'; give them distinct fullUrls or version the reference",
                expression=path,
            )
        elif matches and named_type and matches[-1].type != named_type:
            report.add(
                Severity.ERROR,
                BUNDLE_TYPE.id,
                f"{path}: '{reference}' names a {named_type}, but the entry it resolves to "
                f"({matches[-1].full_url}) is a {matches[-1].type}",
                expression=path,
            )


def _bundle_target(reference: str, source: _Entry) -> tuple[str | None, str | None, str | None]:
    """(the fullUrl ``reference`` points at, the type it names, the version it asks for)."""
    url, _, version = reference.partition("/_history/")
    if _ABSOLUTE.match(reference):
        return url, None, version or None  # matched by fullUrl: its type is the entry's concern
    base_url = source.full_url
    if base_url is None or reference.count("/") not in (1, 3) or "?" in reference:
        return None, None, None
    parts = url.split("/")
    if len(parts) != 2:
        return None, None, None
    if base_url.startswith("urn:"):
        base = base_url.rsplit(":", 1)[0] + ":"
        if version:
            return base + url, parts[0], version
        return base + parts[1], parts[0], None
    base = "".join(part + "/" for part in base_url.split("/")[:-2])
    return base + url, parts[0] if version else None, version or None


def _links(
    tree: Tree, by_resource: dict[int, tuple[_Bundle, _Entry]]
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
        located = _entry_of(node.owner, by_resource)
        if located is None or located[0].type not in ("document", "message"):
            continue
        entry_links = links.setdefault(id(located[1]), [])
        if all(existing != value for existing, _, _ in entry_links):
            entry_links.append((value, path, path in narrative_links))
    return links


def _interlinks(
    tree: Tree,
    bundles: list[_Bundle],
    by_resource: dict[int, tuple[_Bundle, _Entry]],
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
                _add_resolution(resolution, path, report, reported)
                target = resolution.entry
                if target is None:
                    continue
                if narrative and "#" in value:
                    _fragment(bundle, target, value, path, report)
                if target is not entry:
                    entry.targets.append(target)
        _reachability(bundle, present, report)


def _fragment(bundle: _Bundle, target: _Entry, value: str, path: str, report: Report) -> None:
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


def _reachability(bundle: _Bundle, present: list[_Entry], report: Report) -> None:
    if not present:
        return
    visited: set[int] = set()

    def visit(start: _Entry) -> None:
        stack = [start]
        while stack:
            entry = stack.pop()
            if id(entry) in visited:
                continue
            visited.add(id(entry))
            stack.extend(entry.targets)

    visit(present[0])
    for _, link in _each(bundle.node.data.get("link")):
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


def _target_types(
    tree: Tree, by_resource: dict[int, tuple[_Bundle, _Entry]], report: Report
) -> None:
    targets = _targets()
    for node in tree.of_type("Reference"):
        allowed = targets.get(node.definition)
        if allowed is None or not isinstance(node.value, dict):
            continue
        shown = ", ".join(sorted(allowed))
        declared = node.value.get("type")
        if isinstance(declared, str) and not _ABSOLUTE.match(declared) and declared not in allowed:
            report.add(
                Severity.ERROR,
                TARGET_TYPE.id,
                f"{node.path}.type: '{declared}' is not a resource type {node.definition} may "
                f"reference (one of {shown})",
                code="structure",
                expression=f"{node.path}.type",
            )
        reference = node.value.get("reference")
        found = _literal_type(reference, node, by_resource) if isinstance(reference, str) else None
        if found is not None and found not in allowed:
            report.add(
                Severity.ERROR,
                TARGET_TYPE.id,
                f"{node.path}.reference: '{reference}' is a {found}, which {node.definition} may "
                f"not reference (one of {shown})",
                code="structure",
                expression=f"{node.path}.reference",
            )


def _literal_type(
    reference: str, node: Node, by_resource: dict[int, tuple[_Bundle, _Entry]]
) -> str | None:
    """The type of the resource ``reference`` resolves to locally (a contained resource or a
    Bundle entry); None when it is not resolved here (HL7 checks the type of those only with a
    reference-resolving policy)."""
    if reference.startswith("#"):
        container = node.owner.parent if node.owner.role == "contained" else node.owner
        contained = container.data.get("contained") if container is not None else None
        for item in contained if isinstance(contained, list) else []:
            if isinstance(item, dict) and item.get("id") == reference[1:]:
                found = item.get("resourceType")
                return found if isinstance(found, str) else None
        return None
    located = _entry_of(node.owner, by_resource)
    if located is None:
        return None
    bundle, source = located
    target, _, version = _bundle_target(reference, source)
    matches = [
        e
        for e in bundle.entries
        if target is not None and e.full_url == target and (version is None or e.version == version)
    ]
    return matches[0].type if len(matches) == 1 else None


def _hyperlinks(tree: Tree, bundles: list[_Bundle], report: Report) -> None:
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
        for suffix, item in _each(value.get(key)):
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
