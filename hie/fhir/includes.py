"""``_include`` and ``_revinclude``: the resources a search adds to a page of matches.

As HAPI FHIR JPA: ``<Type>:<param>[:<target type>]`` for every reference parameter of the type,
``*`` (or ``<Type>:*``) for all of them, ``:iterate`` (and R3's ``:recurse``, fhirpy's
``:recursive``) to apply the
include to the included resources too, round after round until nothing new is found or
:data:`MAX_ROUNDS` rounds have run. At most :data:`MAX_INCLUDED` resources are added to a page
(HAPI's default too). Every look-up is confined to the searcher's institution, so nothing of
another institution is ever included: a reference to a resource the searcher may not read is
simply not followed. Included resources come with ``search.mode = include``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hie.fhir.parameters import parameters_of
from hie.storage import Connection
from hie.storage.fhir import live_rows
from hie.storage.includes import referring_rows
from hie.storage.search import LiveRow, referenced
from hie.validators.fhir_rules.elements import is_resource_type, resource_types

MAX_INCLUDED = 1000
# HAPI iterates until nothing new is found; a bound keeps a cycle of references in a large
# region from walking the whole graph one round at a time.
MAX_ROUNDS = 10
WILDCARD = "*"


class IncludeError(ValueError):
    """An ``_include`` or ``_revinclude`` this server cannot follow (HTTP 400)."""


@dataclass(frozen=True)
class Include:
    """``_include=Source:param[:Target]`` or ``_revinclude=...``; ``param`` may be ``*``."""

    source: str  # a type, or "*" for any type (``_include=*``)
    param: str
    target: str | None
    iterate: bool = False
    reverse: bool = False


@dataclass
class Includes:
    items: list[Include]

    def __bool__(self) -> bool:
        return bool(self.items)


INCLUDE_PARAMETERS = ("_include", "_revinclude")


def parse_includes(resource_type: str, pairs: list[tuple[str, str]]) -> Includes:
    """The ``_include``/``_revinclude`` parameters of a search; raises :class:`IncludeError`."""
    items: list[Include] = []
    for raw_name, value in pairs:
        name, _, modifier = raw_name.partition(":")
        if name not in INCLUDE_PARAMETERS or value == "":
            continue
        if modifier not in ("", "iterate", "recurse", "recursive"):
            raise IncludeError(f"{raw_name}: the only modifier is :iterate")
        items.append(_include(resource_type, name, value, bool(modifier)))
    return Includes(items)


def _include(resource_type: str, name: str, text: str, iterate: bool) -> Include:
    reverse = name == "_revinclude"
    if text == WILDCARD:
        return Include(WILDCARD, WILDCARD, None, iterate, reverse)
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise IncludeError(f"{name}={text}: use <Type>:<reference parameter>[:<target type>]")
    source, param = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if not is_resource_type(source):
        raise IncludeError(f"{name}={text}: {source!r} is not an R4 resource type")
    if not reverse and not iterate and source != resource_type:
        raise IncludeError(f"{name}={text}: the source type must be {resource_type}")
    if target is not None and not is_resource_type(target):
        raise IncludeError(f"{name}={text}: {target!r} is not an R4 resource type")
    if param != WILDCARD:
        definition = parameters_of(source).get(param)
        if definition is None or definition.kind != "reference":
            raise IncludeError(f"{name}={text}: {source} has no reference parameter {param!r}")
        if target is not None and definition.targets and target not in definition.targets:
            raise IncludeError(f"{name}={text}: {source}:{param} cannot point to a {target}")
    return Include(source, param, target, iterate, reverse)


def _reference_params(resource_type: str, param: str) -> list[str]:
    params = parameters_of(resource_type)
    if param == WILDCARD:
        return [p.name for p in params.values() if p.kind == "reference"]
    return [param] if param in params else []


def _forward(
    conn: Connection, inst: str, include: Include, rows: list[LiveRow]
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    by_type: dict[str, list[str]] = {}
    for row in rows:
        if include.source in (WILDCARD, row.resource_type):
            by_type.setdefault(row.resource_type, []).append(row.resource_id)
    for resource_type, ids in by_type.items():
        params = _reference_params(resource_type, include.param)
        if not params:
            continue
        for target in referenced(conn, inst, resource_type, ids, params):
            kind, _, target_id = target.partition("/")
            if include.target in (None, kind):
                found.append((kind, target_id))
    return found


def _reverse(
    conn: Connection, inst: str, include: Include, rows: list[LiveRow], limit: int
) -> list[LiveRow]:
    targets = [
        f"{r.resource_type}/{r.resource_id}"
        for r in rows
        if include.target in (None, r.resource_type)
    ]
    if not targets:
        return []
    types = sorted(resource_types()) if include.source == WILDCARD else [include.source]
    kinds = {r.resource_type for r in rows}
    sources = [
        (t, p.name)
        for t in types
        for p in parameters_of(t).values()
        if p.kind == "reference"
        and include.param in (WILDCARD, p.name)
        and (not p.targets or kinds & set(p.targets))
    ]
    return referring_rows(conn, inst, sources, targets, limit)


def included(
    conn: Connection, institution_code: str, includes: Includes, matches: list[LiveRow]
) -> list[LiveRow]:
    """The live resources the includes add to ``matches`` (none of the matches again), in the
    order found, at most :data:`MAX_INCLUDED`."""
    if not matches or not includes:
        return []
    seen = {(r.resource_type, r.resource_id) for r in matches}
    added: list[LiveRow] = []
    pending = matches
    for round_number in range(MAX_ROUNDS):
        active = [i for i in includes.items if round_number == 0 or i.iterate]
        if not active or not pending:
            break
        room = MAX_INCLUDED - len(added)
        # In the order of the includes: a live row (reverse) or a (type, id) to look up.
        found: list[LiveRow | tuple[str, str]] = []
        for include in active:
            if include.reverse:
                found += _reverse(conn, institution_code, include, pending, room + len(seen))
            else:
                found += _forward(conn, institution_code, include, pending)
        wanted = [k for k in found if isinstance(k, tuple) and k not in seen]
        live = {
            (r.resource_type, r.resource_id): r for r in live_rows(conn, institution_code, wanted)
        }
        fresh: dict[tuple[str, str], LiveRow] = {}
        for item in found:
            row = live.get(item) if isinstance(item, tuple) else item
            if row is not None:
                key = (row.resource_type, row.resource_id)
                if key not in seen and key not in fresh:
                    fresh[key] = row
        pending = list(fresh.values())[:room]
        added += pending
        seen.update((r.resource_type, r.resource_id) for r in pending)
        if len(added) >= MAX_INCLUDED:
            break
    return added
