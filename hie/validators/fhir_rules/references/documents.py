"""Documents and messages: the Composition's and MessageHeader's references resolve in the
Bundle, a document's stylesheet is one of its entries, RESTful fullUrls end in Type/id."""

from __future__ import annotations

from typing import Any

from hie.validators.conformance import Context
from hie.validators.fhir_rules.references.bundles import (
    ABSOLUTE,
    Bundle,
    Entry,
    add_resolution,
    each,
    restful_url,
)
from hie.validators.fhir_rules.references.rules import FULL_URL_ID, STYLESHEET
from hie.validators.report import Report, Severity


def check_full_urls(bundle: Bundle, report: Report) -> None:
    for entry in bundle.entries:
        url = entry.full_url
        if not url or not entry.type or not ABSOLUTE.match(url) or not restful_url().fullmatch(url):
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


def _strict(
    bundle: Bundle,
    source: Entry,
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
    add_resolution(resolution, path, report, reported)


def check_document(bundle: Bundle, report: Report, context: Context, reported: set[str]) -> None:
    if not bundle.entries or bundle.entries[0].type != "Composition":
        return
    first = bundle.entries[0]
    composition = first.resource or {}
    base = f"{first.path}.resource"

    def check(holder: dict[str, Any], at: str, name: str, title: str) -> None:
        for suffix, item in each(holder.get(name)):
            path = f"{at}.{name}{suffix}"
            _strict(bundle, first, item, path, title, context, report, reported)

    for name in ("subject", "author", "encounter", "custodian"):
        check(composition, base, name, f"Composition.{name}")
    for parent, name in (("attester", "party"), ("event", "detail")):
        for suffix, item in each(composition.get(parent)):
            if isinstance(item, dict):
                check(item, f"{base}.{parent}{suffix}", name, f"Composition.{parent}.{name}")

    def sections(holder: dict[str, Any], at: str, depth: int) -> None:
        for suffix, section in each(holder.get("section")):
            if not isinstance(section, dict) or depth > 50:
                continue
            where = f"{at}.section{suffix}"
            check(section, where, "author", "Section.author")
            check(section, where, "focus", "Section.focus")
            check(section, where, "entry", "Section entry")
            sections(section, where, depth + 1)

    sections(composition, base, 0)
    _stylesheets(bundle, report)


def _stylesheets(bundle: Bundle, report: Report) -> None:
    for suffix, link in each(bundle.node.data.get("link")):
        if not isinstance(link, dict) or link.get("relation") != "stylesheet":
            continue
        url = link.get("url")
        if not isinstance(url, str) or ABSOLUTE.match(url):
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


def check_message(bundle: Bundle, report: Report, context: Context, reported: set[str]) -> None:
    if not bundle.entries or bundle.entries[0].type != "MessageHeader":
        return
    first = bundle.entries[0]
    header = first.resource or {}
    for suffix, item in each(header.get("focus")):
        path = f"{first.path}.resource.focus{suffix}"
        _strict(bundle, first, item, path, "MessageHeader.focus", context, report, reported)
