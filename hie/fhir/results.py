"""The result parameters of a search, which shape the answer rather than choose the matches:
``_sort``, ``_include``/``_revinclude``, ``_summary``/``_elements`` and the paging cursor.

``_sort`` (as HAPI FHIR JPA): ``_id``, ``_lastUpdated`` and any string, token, uri, reference,
date, number or quantity parameter of the type (not composites), several keys separated by
commas, ``-`` for descending; resources without a value sort last in either direction; the
resource id breaks ties, so the order is total and a keyset cursor can page through it
(paging.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from hie.fhir.includes import Includes, parse_includes
from hie.fhir.paging import CURSOR
from hie.fhir.parameters import parameters_of
from hie.fhir.search import RESULT_PARAMETERS
from hie.fhir.summary import Subsetting, parse_subsetting
from hie.storage.keyset import SortKey

__all__ = ["RESULT_PARAMETERS", "ResultError", "Results", "parse_results", "parse_sort"]
_TEXT_KINDS = ("string", "token", "uri", "reference")


class ResultError(ValueError):
    """A result parameter this server cannot follow (HTTP 400)."""


@dataclass(frozen=True)
class Results:
    sort: list[SortKey]
    includes: Includes
    subsetting: Subsetting
    cursor: str | None
    offset_paging: bool  # ``_offset`` given: pages by position, as before cursors


def parse_sort(resource_type: str, value: str) -> list[SortKey]:
    keys: list[SortKey] = []
    known = parameters_of(resource_type)
    for text in value.split(","):
        name = text.strip()
        desc = name.startswith("-")
        name = name.removeprefix("-")
        if name == "_id":
            keys.append(SortKey(name, "id", desc))
        elif name == "_lastUpdated":
            keys.append(SortKey(name, "updated", desc))
        elif name in known and known[name].kind in _TEXT_KINDS:
            keys.append(SortKey(name, "text", desc))
        elif name in known and known[name].kind == "date":
            keys.append(SortKey(name, "date", desc))
        elif name in known and known[name].kind in ("number", "quantity"):
            keys.append(SortKey(name, "number", desc))
        elif name in known:
            raise ResultError(f"_sort={value}: {resource_type} cannot be sorted by {name}")
        else:
            raise ResultError(
                f"_sort={value}: {name!r} is not a search parameter of {resource_type}"
            )
    return keys


def parse_results(resource_type: str, pairs: list[tuple[str, str]]) -> Results:
    """The result parameters of ``pairs``; raises ResultError, IncludeError or SubsettingError."""
    sort: list[SortKey] = []
    cursor: str | None = None
    for name, value in pairs:
        if name == "_sort" and value:
            sort += parse_sort(resource_type, value)
        elif name == CURSOR:
            cursor = value
    offset = any(name == "_offset" for name, _ in pairs)
    if cursor is not None and offset:
        raise ResultError(f"{CURSOR} and _offset: page by one or the other")
    return Results(
        sort,
        parse_includes(resource_type, pairs),
        parse_subsetting(pairs),
        cursor,
        offset,
    )
