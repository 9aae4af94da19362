"""A Bundle's entries indexed for resolving references, and HL7's resolution rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hie.validators.conformance import CANONICAL_TYPES, Context
from hie.validators.fhir_rules.elements import resource_types
from hie.validators.fhir_rules.references.rules import BUNDLE_RESOLVE
from hie.validators.fhir_rules.tree import ResourceNode
from hie.validators.report import Report, Severity

ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


@cache
def restful_url() -> re.Pattern[str]:
    """HL7's "looks like a RESTful URL": [http(s)://host/path/]Type/id[/_history/v], with
    the resource type as group 1 (host names may carry hyphens, as real ones do)."""
    types = "|".join(sorted(resource_types(), key=len, reverse=True))
    return re.compile(
        rf"(?:https?://(?:[A-Za-z0-9\\.:%$\-]*/)*)?({types})/[A-Za-z0-9\-.]{{1,64}}"
        r"(?:/_history/[A-Za-z0-9\-.]{1,64})?"
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(eq=False)
class Entry:
    index: int
    path: str  # Bundle.entry[i]
    full_url: str | None
    resource: dict[str, Any] | None
    type: str | None
    id: str | None
    version: str | None
    targets: list[Entry] = field(default_factory=list)

    @property
    def shown(self) -> str:
        return f"'{self.full_url}'" if self.full_url else f"{self.path}"


@dataclass
class Resolution:
    entry: Entry | None = None
    problem: str | None = None  # an error to report


class Bundle:
    """One Bundle's entries, indexed by fullUrl (and versioned fullUrl) and by Type/id."""

    def __init__(self, node: ResourceNode) -> None:
        self.node = node
        self.type = node.data.get("type")
        self.entries: list[Entry] = []
        self.by_url: dict[str, list[Entry]] = {}
        self.by_type_id: dict[str, list[Entry]] = {}
        self.by_resource: dict[int, Entry] = {}
        raw = node.data.get("entry")
        for index, item in enumerate(raw if isinstance(raw, list) else []):
            if not isinstance(item, dict):
                continue
            resource = item.get("resource") if isinstance(item.get("resource"), dict) else None
            meta = resource.get("meta") if resource else None
            entry = Entry(
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
            keys: list[tuple[dict[str, list[Entry]], str]] = []
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

    def base_of(self, entry: Entry) -> str | None:
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
        self, reference: str, source: Entry, title: str, context: Context, *, strict: bool
    ) -> Resolution:
        """HL7's bundle resolution. ``strict``: a reference that matches nothing is an error
        (the Composition's and MessageHeader's); otherwise only ambiguity is."""
        reference = reference.split("#", 1)[0]
        if ABSOLUTE.match(reference):
            found = self.by_url.get(reference, [])
            if len(found) == 1:
                return Resolution(found[0])
            if len(found) > 1:
                return Resolution(
                    problem=f"{len(found)} entries have the fullUrl '{reference}' ({title})"
                )
            restful = restful_url().fullmatch(reference)
            known = context.conformance.known(reference) or (
                restful is not None and restful.group(1) in CANONICAL_TYPES
            )
            if strict and not known:
                return Resolution(
                    problem=f"'{reference}' ({title}) resolves to no entry of the Bundle: no "
                    "entry has that fullUrl"
                )
            return Resolution()
        base = self.base_of(source)
        if base is not None:
            found = self.by_url.get(base + reference, [])
            if len(found) == 1:
                return Resolution(found[0])
            if len(found) > 1:
                return Resolution(
                    problem=f"'{reference}' ({title}) matches {len(found)} entries with the "
                    f"fullUrl '{base + reference}'"
                )
        parts = reference.split("/")
        if len(parts) < 2 or parts[0] not in resource_types():
            return Resolution()
        apparent = self.by_type_id.get(f"{parts[0]}/{parts[1]}", [])
        if apparent:
            urls = ", ".join(sorted({e.full_url or "<no fullUrl>" for e in apparent}))
            where = (
                f"resolves against the referring entry's fullUrl base to '{base + reference}'"
                if base is not None
                else "cannot be resolved: the referring entry's fullUrl is not a RESTful URL "
                "ending in its own type and id"
            )
            return Resolution(
                problem=f"'{reference}' ({title}) {where}; the entry with that type and id has "
                f"the fullUrl {urls}, which does not match"
            )
        if strict:
            return Resolution(problem=f"'{reference}' ({title}) resolves to no entry of the Bundle")
        return Resolution()


def entry_of(
    resource: ResourceNode, by_resource: dict[int, tuple[Bundle, Entry]]
) -> tuple[Bundle, Entry] | None:
    """The Bundle entry ``resource`` is (or is inside of), nearest first."""
    node: ResourceNode | None = resource
    while node is not None:
        found = by_resource.get(id(node.data))
        if found is not None:
            return found
        node = node.parent
    return None


def add_resolution(resolution: Resolution, path: str, report: Report, reported: set[str]) -> None:
    if resolution.problem and path not in reported:
        reported.add(path)
        report.add(
            Severity.ERROR,
            BUNDLE_RESOLVE.id,
            f"{path}: {resolution.problem}",
            code="not-found",
            expression=path,
        )


def each(value: Any) -> list[tuple[str, Any]]:
    """(suffix, item) of a repeating element's items, or of a single value."""
    if isinstance(value, list):
        return [(f"[{i}]", item) for i, item in enumerate(value)]
    return [("", value)] if value is not None else []
