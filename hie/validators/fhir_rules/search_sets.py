"""Search result Bundles (``type = searchset``): entries that answer the search they claim.

The self link says what was searched: the resource type in its path (``…/Patient?name=x``) or in
``_type``. An entry found by the search (``search.mode = match``) is a resource of one of those
types with an id (a client reads it back by id); an ``outcome`` entry is the OperationOutcome
about the search. A searchset without a self link, or entries without a search mode, cannot be
checked and are worth a warning.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from hie.validators.fhir_rules.elements import is_resource_type
from hie.validators.fhir_rules.tree import Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

MATCH = register(
    "fhir.search-set.match",
    summary="An entry a search matched (search.mode = match) has an id and is of a resource type "
    "the search asked for (the self link's path or _type).",
    fix="Return only resources of the searched types, each with its id; put included resources "
    "under search.mode = include.",
)
OUTCOME = register(
    "fhir.search-set.outcome",
    summary="An entry with search.mode = outcome is an OperationOutcome.",
    fix="Give the outcome entry an OperationOutcome, or the entry the mode it has (match or "
    "include).",
)
DESCRIBED = register(
    "fhir.search-set.described",
    summary="A searchset Bundle has a self link saying what the search was, and its entries "
    "say their search mode.",
    fix="Add link (relation self) with the search URL, and entry.search.mode (match, include or "
    "outcome) to each entry.",
)


def _searched_types(url: str) -> set[str] | None:
    """The resource types a search URL asks for; None when it does not say."""
    parts = urlsplit(url)
    types = {
        name
        for value in parse_qs(parts.query).get("_type", [])
        for name in value.split(",")
        if is_resource_type(name)
    }
    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if is_resource_type(last):
        types.add(last)
    return types or None


def check_search_sets(tree: Tree, report: Report) -> None:
    for resource in tree.resources:
        if resource.type == "Bundle" and resource.data.get("type") == "searchset":
            _search_set(resource.data, resource.path, report)


def _search_set(bundle: dict[str, Any], path: str, report: Report) -> None:
    links = bundle.get("link")
    selves = [
        link.get("url")
        for link in (links if isinstance(links, list) else [])
        if isinstance(link, dict) and link.get("relation") == "self"
    ]
    if not selves:
        report.add(
            Severity.WARNING,
            DESCRIBED.id,
            f"{path}: a searchset Bundle should have a self link saying what the search was",
            code="informational",
            expression=path,
        )
    searched = _searched_types(selves[0]) if selves and isinstance(selves[0], str) else None
    entries = bundle.get("entry")
    unmoded = False
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        search = entry.get("search")
        mode = search.get("mode") if isinstance(search, dict) else None
        where = f"{path}.entry[{index}].resource"
        rtype = resource.get("resourceType")
        if mode is None:
            unmoded = True
        elif mode == "outcome" and rtype != "OperationOutcome":
            report.add(
                Severity.ERROR,
                OUTCOME.id,
                f"{where}: an outcome entry is an OperationOutcome, not a {rtype}",
                code="invalid",
                expression=where,
            )
        elif mode == "match":
            if not resource.get("id"):
                report.add(
                    Severity.ERROR,
                    MATCH.id,
                    f"{where}: a search result has an id",
                    code="required",
                    expression=where,
                )
            if searched is not None and rtype not in searched:
                report.add(
                    Severity.ERROR,
                    MATCH.id,
                    f"{where}: a {rtype} does not answer a search for "
                    f"{', '.join(sorted(searched))}",
                    code="invalid",
                    expression=where,
                )
    if unmoded:
        report.add(
            Severity.WARNING,
            DESCRIBED.id,
            f"{path}: the entries of a searchset Bundle should say their search mode",
            code="informational",
            expression=path,
        )
