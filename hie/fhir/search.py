"""Search requests: the query string of ``GET /fhir/<Type>`` read into a :class:`SearchQuery`.

Every R4 parameter type is read (hie/fhir/parameters.py has the table): string (prefix by
default, ``:exact``, ``:contains``), token (``:not``, ``:text``, ``:of-type``, ``:below`` and
``:above`` in the code systems whose hierarchy is known offline), date, number and
quantity (prefixes, ``number|system|code``), reference (``:<Type>``, ``:identifier``, bare ids),
uri (``:below``, ``:above``), composite (``$``), ``:missing`` on all; chains
(``subject:Patient.name=``, up to :data:`MAX_CHAIN` links) and reverse chains
(``_has:Observation:patient:code=``).

Unknown parameters are collected in :attr:`ParsedSearch.unknown`: the caller refuses them (400,
HAPI JPA's default) unless ``Prefer: handling=lenient`` asks to ignore them with a warning. A known
parameter used wrongly (a bad date, an unsupported modifier) is always an error, since ignoring it
would widen the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Literal, cast
from zoneinfo import ZoneInfo

from hie.fhir.dates import date_range
from hie.fhir.parameters import (
    STRING_LENGTH,
    UNSUPPORTED,
    SearchParameter,
    normalize,
    parameters_of,
    reference_target,
)
from hie.normalize.fhir import canonical_system
from hie.storable import printable, unstorable
from hie.storage.search import (
    ChainCriterion,
    CompositeCriterion,
    Criterion,
    DateComparison,
    DateCriterion,
    HasCriterion,
    MissingCriterion,
    NotCriterion,
    NumberComparison,
    NumberCriterion,
    Prefix,
    SearchQuery,
    StringCriterion,
    StringMode,
    TokenMatch,
    UriCriterion,
    ValueCriterion,
    ValuesCriterion,
)
from hie.validators.fhir_rules.bindings import code_parents
from hie.validators.fhir_rules.elements import is_resource_type

DEFAULT_COUNT = 20
MAX_COUNT = 1000
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
# Result parameters that change nothing in a JSON-only server.
IGNORED = frozenset({"_format", "_pretty"})
# Result parameters read by hie/fhir/results.py (sort, includes, subsetting, paging cursor).
RESULT_PARAMETERS = frozenset(
    {"_sort", "_include", "_revinclude", "_summary", "_elements", "_cursor"}
)
# Links of a chain (subject.organization.name is two); deeper chains are refused.
MAX_CHAIN = 3
# The modifiers each parameter type takes (besides :missing, which all take; a reference's
# :<Type> is checked against its targets).
MODIFIERS: dict[str, tuple[str, ...]] = {
    "string": ("exact", "contains"),
    "token": ("not", "text", "of-type", "below", "above"),
    "reference": ("identifier",),
    "uri": ("below", "above"),
    "date": (),
    "number": (),
    "quantity": (),
    "composite": (),
}


class SearchError(ValueError):
    """A search that cannot be answered as asked (HTTP 400)."""


class UnknownParameter(SearchError):
    """A parameter the type does not have: 400 unless ``Prefer: handling=lenient``."""


@dataclass
class ParsedSearch:
    query: SearchQuery
    total: Literal["none", "estimate", "accurate"] | None = None
    count_only: bool = False
    unknown: list[str] = field(default_factory=list)  # unknown parameters (400 unless lenient)
    warnings: list[str] = field(default_factory=list)  # what is answered differently than asked


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


def _reference(param: SearchParameter, modifier: str | None, text: str) -> list[TokenMatch]:
    if "/" in text:
        target = reference_target(text)
        if target is None and "://" not in text:
            raise SearchError(f"{param.name}={text}: not a reference this server can match")
        matches = [TokenMatch(code=target)] if target else []
        if "://" in text:  # a canonical URL is stored as written
            matches.append(TokenMatch(code=text))
        if modifier and target and not target.startswith(f"{modifier}/"):
            raise SearchError(f"{param.name}:{modifier}={text}: the reference is not a {modifier}")
        return matches
    # A bare id: the resource of that id of each type the parameter may point to (as HAPI).
    kinds = (modifier,) if modifier else param.targets
    if not kinds:
        raise SearchError(
            f"{param.name}={text}: give the resource type, e.g. {param.name}=Patient/{text}"
        )
    return [TokenMatch(code=f"{kind}/{text}") for kind in kinds]


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
    for raw_name, value in pairs:
        name = raw_name.partition(":")[0]
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
        else:
            try:
                query.criteria.append(_parameter(resource_type, raw_name, value, zone, 0))
            except UnknownParameter as exc:
                if name.startswith("_") and name not in UNSUPPORTED | {"_has"}:
                    # A result or client parameter this server does not know (fhirpy's
                    # _totalMethod): it selects nothing, so ignoring it widens nothing.
                    parsed.warnings.append(f"{name} is not supported and was ignored")
                else:
                    parsed.unknown.append(str(exc))
    return parsed


def unknown_parameter(resource_type: str, name: str) -> UnknownParameter:
    """HAPI's message for a parameter a type does not have, listing the valid ones."""
    valid = sorted(["_id", "_lastUpdated", *parameters_of(resource_type)])
    return UnknownParameter(
        f'Unknown search parameter "{name}" for resource type "{resource_type}". '
        f"Valid search parameters for this search are: [{', '.join(valid)}]"
    )


def _parameter(
    resource_type: str, raw_name: str, value: str, zone: ZoneInfo, depth: int
) -> Criterion:
    """The criterion of one ``name[:modifier][.chain]=value`` pair on ``resource_type``."""
    if raw_name.startswith("_has:"):
        return _has(resource_type, raw_name, value, zone, depth)
    head, dot, rest = raw_name.partition(".")
    name, _, modifier = head.partition(":")
    known = parameters_of(resource_type)
    if name not in known:
        raise unknown_parameter(resource_type, name)
    param = known[name]
    if not dot:
        return _criterion(param, modifier or None, value, zone)
    if param.kind != "reference":
        raise SearchError(f"{raw_name}: only a reference parameter can be chained")
    if depth + 1 > MAX_CHAIN:
        raise SearchError(f"{raw_name}: chains are limited to {MAX_CHAIN} links")
    if modifier and modifier not in param.targets:
        raise SearchError(f"{head}: {name} does not point to {modifier}")
    chained = rest.split(".", 1)[0].split(":", 1)[0]
    candidates = (modifier,) if modifier else param.targets
    links: list[tuple[str, Criterion]] = []
    for target in candidates:
        if chained in parameters_of(target) or rest.startswith("_has:"):
            links.append((target, _parameter(target, rest, value, zone, depth + 1)))
    if not links:
        raise UnknownParameter(
            f"{raw_name}: no resource type {name} may point to "
            f"({', '.join(candidates) or 'any'}) has a search parameter {chained!r}"
        )
    return ChainCriterion(name, tuple(links))


def _has(resource_type: str, raw_name: str, value: str, zone: ZoneInfo, depth: int) -> Criterion:
    """``_has:<Type>:<reference parameter>:<parameter of Type>=value`` (reverse chaining)."""
    parts = raw_name.split(":", 3)
    if len(parts) != 4 or not parts[3]:
        raise SearchError(f"{raw_name}: use _has:<Type>:<reference parameter>:<parameter>")
    _, source, ref, rest = parts
    if depth + 1 > MAX_CHAIN:
        raise SearchError(f"{raw_name}: chains are limited to {MAX_CHAIN} links")
    if not is_resource_type(source):
        raise SearchError(f"{raw_name}: {source} is not a resource type")
    link = parameters_of(source).get(ref)
    if link is None or link.kind != "reference":
        raise SearchError(f"{raw_name}: {source} has no reference parameter {ref!r}")
    if link.targets and resource_type not in link.targets:
        raise SearchError(f"{raw_name}: {source}.{ref} does not point to {resource_type}")
    return HasCriterion(source, ref, _parameter(source, rest, value, zone, depth + 1))


def _criterion(
    param: SearchParameter, modifier: str | None, value: str, zone: ZoneInfo
) -> Criterion:
    if modifier == "missing":
        if value not in ("true", "false"):
            raise SearchError(f"{param.name}:missing is true or false")
        missing_param = param.name
        if param.kind == "composite":
            missing_param = param.components[0].param.name
        return MissingCriterion(missing_param, value == "true")
    allowed = MODIFIERS[param.kind]
    if modifier and modifier not in allowed:
        is_type = param.kind == "reference" and is_resource_type(modifier)
        if not is_type or (param.targets and modifier not in param.targets):
            accepted = ", ".join(f":{m}" for m in (*allowed, "missing"))
            raise SearchError(
                f"{param.name}:{modifier}: modifier not supported for this {param.kind} "
                f"parameter (supported: {accepted})"
            )
    values = _split(value, ",")
    if param.kind == "composite":
        return _composite(param, values, zone)
    return _values(param, modifier, values, zone)


def _values(
    param: SearchParameter, modifier: str | None, values: list[str], zone: ZoneInfo
) -> Criterion:
    """The criterion of a non-composite parameter given its (comma-separated) values."""
    kind, name = param.kind, param.name
    if kind == "date":
        return DateCriterion(name, tuple(date_comparison(v, zone, name) for v in values))
    if kind == "string":
        if modifier == "exact":
            return StringCriterion(name, tuple(v[:STRING_LENGTH] for v in values), "exact")
        mode: StringMode = "contains" if modifier == "contains" else "prefix"
        return StringCriterion(name, tuple(normalize(v) for v in values), mode)
    if kind == "uri":
        uri_mode = cast(Literal["eq", "below", "above"], modifier or "eq")
        return UriCriterion(name, tuple(values), uri_mode)
    if kind in ("number", "quantity"):
        return NumberCriterion(name, tuple(_number(param, v) for v in values))
    if kind == "reference":
        if modifier == "identifier":
            return ValueCriterion(f"{name}:identifier", tuple(_identifier(v) for v in values))
        matches = [m for v in values for m in _reference(param, modifier, v)]
        return ValueCriterion(name, tuple(matches))
    # token
    if modifier == "text":
        return StringCriterion(name, tuple(normalize(v) for v in values), "prefix")
    if modifier == "of-type":
        return ValueCriterion(f"{name}:of-type", tuple(_of_type(name, v) for v in values))
    if modifier in ("below", "above"):
        return _subsumed(name, modifier, values)
    matches = [_token(v) for v in values]
    if name == "identifier":
        matches = [_identifier_system(m) for m in matches]
    criterion = ValueCriterion(name, tuple(matches))
    return NotCriterion(criterion) if modifier == "not" else criterion


def _subsumed(name: str, modifier: str, values: list[str]) -> Criterion:
    """``code:below=system|code`` (the code and every code under it in the system's hierarchy)
    or ``code:above=`` (the code and every code it is under), as FHIR R4 defines them. Only code
    systems whose hierarchy ships with the server are followed (HL7's own: v3 ActCode,
    observation-status, ...); for any other (SNOMED CT, LOINC) the answer would need a
    terminology server, so the search is refused rather than answered as a plain code search."""
    codes: dict[str, set[str]] = {}
    for value in values:
        match = _token(value)
        if match.system is None or match.code is None:
            raise SearchError(f"{name}:{modifier}={value}: give the code as system|code")
        hierarchy = code_parents().get(match.system)
        if hierarchy is None:
            raise SearchError(
                f"{name}:{modifier}={value}: no hierarchy of the code system {match.system} is"
                " known to this server (it follows those of HL7's own code systems, offline);"
                " searching below or above a code of it needs a terminology server"
            )
        related = _descendants if modifier == "below" else _ancestors
        codes.setdefault(match.system, set()).update(related(match.system, match.code))
    if len(codes) == 1:
        ((system, found),) = codes.items()
        return ValuesCriterion(name, tuple(sorted(found)), system)
    return ValueCriterion(
        name, tuple(TokenMatch(c, s) for s, found in codes.items() for c in sorted(found))
    )


def _ancestors(system: str, code: str) -> set[str]:
    parents = code_parents()[system]
    found, todo = {code}, [code]
    while todo:
        for up in parents.get(todo.pop(), ()):
            if up not in found:
                found.add(up)
                todo.append(up)
    return found


@cache
def _children(system: str) -> dict[str, tuple[str, ...]]:
    children: dict[str, list[str]] = {}
    for code, ups in code_parents()[system].items():
        for up in ups:
            children.setdefault(up, []).append(code)
    return {code: tuple(below) for code, below in children.items()}


def _descendants(system: str, code: str) -> set[str]:
    children = _children(system)
    found, todo = {code}, [code]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _identifier_system(match: TokenMatch) -> TokenMatch:
    # Identifiers are stored with canonical systems: an alias finds them too.
    return replace(match, system=canonical_system(match.system)) if match.system else match


def _identifier(text: str) -> TokenMatch:
    return _identifier_system(_token(text))


def _of_type(name: str, text: str) -> TokenMatch:
    """``identifier:of-type=<type system>|<type code>|<value>``."""
    pieces = _split(text, "|")
    if len(pieces) != 3 or not all(pieces[1:]):
        raise SearchError(f"{name}:of-type={text}: use <type system>|<type code>|<value>")
    return TokenMatch(
        code=f"{pieces[1]}|{pieces[2]}", system=pieces[0] or None, system_given=not pieces[0]
    )


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _number(param: SearchParameter, text: str) -> NumberComparison:
    """``[prefix]number`` (number) or ``[prefix]number[|system|code]`` (quantity)."""
    pieces = _split(text, "|") if param.kind == "quantity" else [text]
    if len(pieces) not in (1, 3):
        raise SearchError(f"{param.name}={text}: use [prefix]number[|system|code]")
    head = pieces[0]
    prefix = head[:2] if head[:2] in PREFIXES else "eq"
    digits = head[2:] if head[:2] in PREFIXES else head
    if not _NUMBER.fullmatch(digits):
        raise SearchError(f"{param.name}={text}: not a number (e.g. 5.4, gt100, le1e3)")
    try:
        number = Decimal(digits)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
        raise SearchError(f"{param.name}={text}: not a number") from exc
    # eq and ne compare with the range the given precision implies (5.4 is [5.35, 5.45)).
    half = Decimal(5).scaleb(number.as_tuple().exponent - 1)  # type: ignore[operator]
    system = code = None
    if len(pieces) == 3:
        system, code = pieces[1] or None, pieces[2] or None
    return NumberComparison(
        cast(Prefix, prefix), number, number - half, number + half, system, code
    )


def _composite(param: SearchParameter, values: list[str], zone: ZoneInfo) -> Criterion:
    """``a$b`` values: one criterion per component, each on its own ``<name>$<i>`` rows."""
    alternatives: list[tuple[Criterion, ...]] = []
    for value in values:
        parts = _split(value, "$")
        if len(parts) != len(param.components):
            raise SearchError(
                f"{param.name}={value}: give {len(param.components)} values joined by $"
            )
        alternatives.append(
            tuple(
                _values(c.param, None, [part], zone)
                for c, part in zip(param.components, parts, strict=True)
            )
        )
    return CompositeCriterion(param.name, tuple(alternatives), param.grouped)
