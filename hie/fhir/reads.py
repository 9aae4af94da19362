"""The FHIR interactions that read: read, vread and search (with ``_include``, ``_revinclude``,
``_total`` and paging by ``_offset``). History is in history.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from hie.fhir.calls import Call
from hie.fhir.content import served_form
from hie.fhir.responses import Answer, Preferences, bundle, error, resource_answer
from hie.fhir.search import (
    ParsedSearch,
    SearchError,
    parse_search,
)
from hie.storage import Connection, Database
from hie.storage.fhir import live_rows, load_resources, read_version_of
from hie.storage.records import get_head, read_version
from hie.storage.search import LiveRow, count, referenced, referring, search

MAX_INCLUDED = 1000


def read(database: Database, call: Call, resource_type: str, resource_id: str) -> Answer:
    logical_id = f"{resource_type}/{resource_id}"
    with database.connection() as conn:
        head = get_head(conn, call.scope.institution_code, logical_id)
        if head is None:
            return error(404, "not-found", f"{logical_id} is not known")
        if head.deleted:
            answer = error(410, "deleted", f"{logical_id} was deleted")
            answer.headers["ETag"] = f'W/"{head.version}"'
            return answer
        version = read_version(conn, head)
    if version is None or version.get("resource") is None:
        return error(404, "not-found", f"{logical_id} is not a FHIR resource")
    return resource_answer(
        200,
        version["resource"],
        head.version,
        head.received_at,
        prefs=Preferences(),
        base=call.base,
    )


def vread(
    database: Database, call: Call, resource_type: str, resource_id: str, version_id: str
) -> Answer:
    logical_id = f"{resource_type}/{resource_id}"
    if not (version_id.isascii() and version_id.isdigit()):
        return error(404, "not-found", f"{logical_id} has no version {version_id!r}")
    with database.connection() as conn:
        row = read_version_of(conn, call.scope.institution_code, logical_id, int(version_id))
    if row is None:
        return error(404, "not-found", f"{logical_id} has no version {version_id}")
    if row["deleted"] or row["resource"] is None:
        return error(410, "deleted", f"version {version_id} of {logical_id} is a deletion")
    return resource_answer(
        200,
        row["resource"],
        row["version"],
        row["received_at"],
        prefs=Preferences(),
        base=call.base,
    )


def search_type(
    database: Database,
    zone: ZoneInfo,
    call: Call,
    resource_type: str,
    pairs: list[tuple[str, str]],
    self_url: str,
) -> Answer:
    try:
        parsed = parse_search(
            resource_type,
            pairs,
            institution_code=call.scope.institution_code,
            zone=zone,
        )
    except SearchError as exc:
        return error(400, "invalid", str(exc))
    if parsed.unknown and not call.prefs.lenient:
        # HAPI JPA's default: an unknown parameter would widen the result, so it is refused.
        return error(400, "processing", "; ".join(parsed.unknown))
    query = parsed.query
    with database.connection() as conn:
        if parsed.count_only:
            counted = count(conn, query)
            return Answer(200, bundle("searchset", [], links=[("self", self_url)], total=counted))
        page = query.count
        query.count = page + 1
        rows = search(conn, query)
        query.count = page
        more = len(rows) > page
        rows = rows[:page]
        # A total costs a count unless this page is all there is; without _total it is
        # given only then (a count over millions of rows is not free).
        complete = query.offset == 0 and not more
        total: int | None = None
        if complete and parsed.total != "none":
            total = len(rows)
        elif parsed.total == "accurate":
            total = count(conn, query)
        included = _included(conn, call, parsed, rows)
        resources = load_resources(conn, rows + included)
    found = [_search_entry(r, resources, call.base, "match") for r in rows]
    found += [_search_entry(r, resources, call.base, "include") for r in included]
    entries = [e for e in found if e is not None]
    if parsed.unknown or parsed.warnings:
        issues = [
            {"severity": "warning", "code": "not-supported", "diagnostics": m}
            for m in parsed.unknown + parsed.warnings
        ]
        entries.append(
            {
                "resource": {"resourceType": "OperationOutcome", "issue": issues},
                "search": {"mode": "outcome"},
            }
        )
    links = [("self", self_url)]
    if more:
        links.append(("next", _with_offset(self_url, pairs, query.offset + page)))
    return Answer(200, bundle("searchset", entries, links=links, total=total))


def _included(
    conn: Connection, call: Call, parsed: ParsedSearch, rows: list[LiveRow]
) -> list[LiveRow]:
    """The resources ``_include`` and ``_revinclude`` add to a page of matches (at most
    :data:`MAX_INCLUDED`, none already among the matches)."""
    if not rows or not (parsed.includes or parsed.revincludes):
        return []
    inst = call.scope.institution_code
    seen = {(r.resource_type, r.resource_id) for r in rows}
    keys: list[tuple[str, str]] = []
    for include in parsed.includes:
        ids = [r.resource_id for r in rows]
        for target in referenced(conn, inst, include.source, ids, [include.param]):
            kind, _, target_id = target.partition("/")
            if include.target in (None, kind):
                keys.append((kind, target_id))
    targets = [f"{r.resource_type}/{r.resource_id}" for r in rows]
    for include in parsed.revincludes:
        for source_id in referring(
            conn, inst, include.source, include.param, targets, MAX_INCLUDED
        ):
            keys.append((include.source, source_id))
    unique = [k for k in dict.fromkeys(keys) if k not in seen][:MAX_INCLUDED]
    return live_rows(conn, inst, unique)


def _with_offset(self_url: str, pairs: list[tuple[str, str]], offset: int) -> str:
    base = self_url.split("?", 1)[0]
    kept = [(k, v) for k, v in pairs if k != "_offset"]
    return f"{base}?{urlencode([*kept, ('_offset', str(offset))])}"


def _search_entry(
    row: LiveRow, resources: dict[int, dict[str, Any]], base: str, mode: str
) -> dict[str, Any] | None:
    resource = resources.get(row.record_id)
    if resource is None:
        return None
    return {
        "fullUrl": f"{base}/{row.resource_type}/{row.resource_id}",
        "resource": served_form(resource, row.version, row.last_updated),
        "search": {"mode": mode},
    }
