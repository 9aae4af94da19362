"""Search requests: the query string of ``GET /fhir/<Type>`` read into a :class:`SearchQuery`.

Unknown parameters are reported, not silently dropped: as warnings by default (HAPI's lenient
handling) or as errors under ``Prefer: handling=strict``. A known parameter used wrongly (a bad
date, an unsupported modifier) is always an error, since ignoring it would widen the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal, cast
from zoneinfo import ZoneInfo

from hie.fhir.dates import date_range
from hie.fhir.parameters import PARAMETERS, SearchParameter, parameters_of, reference_target
from hie.normalize.fhir import canonical_system
from hie.storable import printable, unstorable
from hie.storage.search import (
    Criterion,
    DateComparison,
    DateCriterion,
    MissingCriterion,
    Prefix,
    SearchQuery,
    TokenMatch,
    ValueCriterion,
)

DEFAULT_COUNT = 20
MAX_COUNT = 1000
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
# Result parameters that change nothing in a JSON-only server.
IGNORED = frozenset({"_format", "_pretty"})
# Result parameters read by hie/fhir/results.py (sort, includes, subsetting, paging cursor).
RESULT_PARAMETERS = frozenset(
    {"_sort", "_include", "_revinclude", "_summary", "_elements", "_cursor"}
)


class SearchError(ValueError):
    """A search that cannot be answered as asked (HTTP 400)."""


@dataclass
class ParsedSearch:
    query: SearchQuery
    total: Literal["none", "estimate", "accurate"] | None = None
    count_only: bool = False
    unknown: list[str] = field(default_factory=list)  # messages about ignored parameters


def _split(value: str, sep: str) -> list[str]:
    """Split on ``sep`` except where escaped with a backslash (FHIR search escaping)."""
    parts = re.split(rf"(?<!\\){re.escape(sep)}", value)
    return [p.replace(f"\\{sep}", sep) for p in parts]


def _token(text: str) -> TokenMatch:
    pieces = _split(text, "|")
    if len(pieces) == 1:
        return TokenMatch(code=pieces[0].replace("\\\\", "\\"))
    system, code = pieces[0], "|".join(pieces[1:])
    return TokenMatch(code=code or None, system=system or None, system_given=not system)


def _reference(param: SearchParameter, modifier: str | None, text: str) -> TokenMatch:
    if "/" in text:
        target = reference_target(text)
        if target is None:
            raise SearchError(f"{param.name}={text}: not a reference this server can match")
        return TokenMatch(code=target)
    kinds = (modifier,) if modifier else param.targets
    if len(kinds) != 1:
        raise SearchError(
            f"{param.name}={text}: give the resource type, e.g. {param.name}=Patient/{text}"
        )
    return TokenMatch(code=f"{kinds[0]}/{text}")


def date_comparison(text: str, zone: ZoneInfo, name: str = "date") -> DateComparison:
    prefix = text[:2] if text[:2] in PREFIXES else "eq"
    value = text[2:] if text[:2] in PREFIXES else text
    found = date_range(value, zone)
    if found is None:
        raise SearchError(
            f"{name}={text}: not a FHIR date (yyyy, yyyy-mm, yyyy-mm-dd[Thh:mm[:ss]]) "
            "between 0001-01-02 and 9999-12-30"
        )
    return DateComparison(cast(Prefix, prefix), found[0], found[1])


# Paging past this is no use to anyone, and the database's bigint ends not far beyond.
MAX_OFFSET = 10**9
_WHOLE = re.compile(r"[0-9]{1,10}")


def whole_number(text: str, name: str, *, most: int = MAX_OFFSET) -> int:
    """A paging number: ASCII digits from 0 to ``most``; SearchError naming ``name``."""
    if not _WHOLE.fullmatch(text) or int(text) > most:
        raise SearchError(f"{name} must be a whole number from 0 to {most}, not {text!r}")
    return int(text)


def _count(text: str, name: str) -> int:
    return whole_number(text, name)


def check_storable(pairs: list[tuple[str, str]]) -> None:
    """SearchError naming the parameter whose name or value the database could not hold
    (a percent-encoded NUL in a form body or an If-None-Exist condition)."""
    for name, value in pairs:
        if (why := unstorable(name)) is not None:
            raise SearchError(f"a search parameter name ({printable(name)}) {why}")
        if (why := unstorable(value)) is not None:
            raise SearchError(f"search parameter {printable(name)} {why}")


def parse_search(
    resource_type: str,
    pairs: list[tuple[str, str]],
    *,
    institution_code: str,
    zone: ZoneInfo,
) -> ParsedSearch:
    """Read the (name, value) pairs of a search; raises :class:`SearchError` for bad values."""
    check_storable(pairs)
    query = SearchQuery(institution_code, resource_type, count=DEFAULT_COUNT)
    parsed = ParsedSearch(query)
    known = parameters_of(resource_type)
    for raw_name, value in pairs:
        name, _, modifier = raw_name.partition(":")
        if value == "" or name in IGNORED or name in RESULT_PARAMETERS:
            continue
        if name == "_id":
            ids = tuple(_split(value, ","))
            query.ids = ids if query.ids is None else tuple(i for i in query.ids if i in ids)
        elif name == "_lastUpdated":
            query.last_updated.append(date_comparison(value, zone, name))
        elif name == "_count":
            query.count = min(_count(value, name), MAX_COUNT)
            parsed.count_only = parsed.count_only or query.count == 0
        elif name == "_offset":
            query.offset = _count(value, name)
        elif name == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise SearchError("_total is none, estimate or accurate")
            parsed.total = cast(Literal["none", "estimate", "accurate"], value)
        elif name in known and "." not in name:
            query.criteria.append(_criterion(known[name], modifier or None, value, zone))
        else:
            parsed.unknown.append(
                f"search parameter {raw_name!r} is not supported for {resource_type} and was "
                f"ignored (supported: {', '.join(['_id', '_lastUpdated', *known])})"
            )
    return parsed


def _criterion(
    param: SearchParameter, modifier: str | None, value: str, zone: ZoneInfo
) -> Criterion:
    if modifier == "missing":
        if value not in ("true", "false"):
            raise SearchError(f"{param.name}:missing is true or false")
        return MissingCriterion(param.name, value == "true")
    values = _split(value, ",")
    if param.kind == "date":
        if modifier:
            raise SearchError(f"{param.name}:{modifier}: dates take no modifier but :missing")
        return DateCriterion(
            param.name, tuple(date_comparison(v, zone, param.name) for v in values)
        )
    if param.kind == "reference":
        if modifier and modifier not in PARAMETERS:
            raise SearchError(f"{param.name}:{modifier}: the modifier must be a resource type")
        return ValueCriterion(param.name, tuple(_reference(param, modifier, v) for v in values))
    if modifier:
        raise SearchError(f"{param.name}:{modifier}: modifier not supported (only :missing)")
    matches = [_token(v) for v in values]
    if param.name == "identifier":
        # Identifiers are stored with canonical systems: an alias finds them too.
        matches = [
            replace(m, system=canonical_system(m.system)) if m.system else m for m in matches
        ]
    return ValueCriterion(param.name, tuple(matches))
