"""The FHIR interactions that read: read, vread (both with ``_summary``/``_elements``) and
search (criteria in search.py; ``_sort``, ``_include``, ``_revinclude``, ``_summary``,
``_elements`` in results.py, includes.py, summary.py; ``_total``; paging by keyset cursors,
paging.py, or by ``_offset``). History is in history.py."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from simplejson import RawJSON

from hie.fhir.calls import Call
from hie.fhir.content import served_form
from hie.fhir.includes import IncludeError, included
from hie.fhir.paging import CURSOR, Binding, CursorError, Cursors, Direction, Position, page_url
from hie.fhir.responses import Answer, Preferences, bundle, error, resource_answer
from hie.fhir.results import ResultError, parse_results
from hie.fhir.search import SearchError, parse_search
from hie.fhir.summary import Subsetting, SubsettingError, parse_subsetting, subset
from hie.storage import Database
from hie.storage.fhir import load_resources, load_served_texts, read_version_of
from hie.storage.keyset import KeyedRow, search_page
from hie.storage.records import get_head, read_version
from hie.storage.search import LiveRow, count


def _subsetted(answer: Answer, pairs: list[tuple[str, str]]) -> Answer:
    """A read's answer with ``_summary``/``_elements`` applied (400 for a bad value)."""
    try:
        subsetting = parse_subsetting(pairs)
    except SubsettingError as exc:
        return error(400, "invalid", str(exc))
    if answer.status == 200 and answer.body is not None and subsetting.active:
        answer.body = subset(answer.body, subsetting)
    return answer


def read(
    database: Database,
    call: Call,
    resource_type: str,
    resource_id: str,
    pairs: list[tuple[str, str]] | None = None,
) -> Answer:
    return _subsetted(_read(database, call, resource_type, resource_id), pairs or [])


def _read(database: Database, call: Call, resource_type: str, resource_id: str) -> Answer:
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
    database: Database,
    call: Call,
    resource_type: str,
    resource_id: str,
    version_id: str,
    pairs: list[tuple[str, str]] | None = None,
) -> Answer:
    answer = _vread(database, call, resource_type, resource_id, version_id)
    return _subsetted(answer, pairs or [])


def _vread(
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
    cursors: Cursors,
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
        results = parse_results(resource_type, pairs)
    except (SearchError, ResultError, IncludeError, SubsettingError) as exc:
        return error(400, "invalid", str(exc))
    if parsed.unknown and not call.prefs.lenient:
        # HAPI JPA's default: an unknown parameter would widen the result, so it is refused.
        return error(400, "processing", "; ".join(parsed.unknown))
    query = parsed.query
    binding = Binding(call.scope.institution_code, call.scope.token_id, resource_type, tuple(pairs))
    position: Position | None = None
    if results.cursor is not None:
        try:
            position = cursors.open(results.cursor, binding)
        except CursorError as exc:
            return error(exc.status, "invalid" if exc.status == 400 else "expired", str(exc))
    with database.connection() as conn:
        if parsed.count_only or results.subsetting.count_only:
            counted = count(conn, query)
            return Answer(200, bundle("searchset", [], links=[("self", self_url)], total=counted))
        page = query.count
        keyed = search_page(
            conn,
            query,
            results.sort,
            after=position.key if position else None,
            backwards=position.backwards if position else False,
            limit=page + 1,
            offset=query.offset if results.offset_paging else 0,
        )
        more = len(keyed) > page
        keyed = keyed[:page]
        if position is not None and position.backwards:
            keyed.reverse()  # read from the end, nearest first
        rows = [k.row for k in keyed]
        # A total costs a count unless this page is all there is; without _total it is
        # given only then (a count over millions of rows is not free).
        complete = position is None and query.offset == 0 and not more
        total: int | None = None
        if complete and parsed.total != "none":
            total = len(rows)
        elif parsed.total == "accurate":
            total = count(conn, query)
        added = included(conn, call.scope.institution_code, results.includes, rows)
        subsetting = results.subsetting
        if subsetting.active:
            resources = load_resources(conn, rows + added)
            found = [_search_entry(r, resources, call.base, "match", subsetting) for r in rows]
            found += [_search_entry(r, resources, call.base, "include", subsetting) for r in added]
        else:
            texts = load_served_texts(conn, rows + added)
            found = [_text_entry(r, texts, call.base, "match") for r in rows]
            found += [_text_entry(r, texts, call.base, "include") for r in added]
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
    if results.offset_paging:
        links = _offset_links(self_url, pairs, query.offset, page, more, total)
    else:
        links = _cursor_links(cursors, binding, self_url, pairs, position, keyed, more)
    return Answer(200, bundle("searchset", entries, links=links, total=total))


def _cursor_links(
    cursors: Cursors,
    binding: Binding,
    self_url: str,
    pairs: list[tuple[str, str]],
    position: Position | None,
    keyed: list[KeyedRow],
    more: bool,
) -> list[tuple[str, str]]:
    """self, first, previous, next and last of a page reached by ``position``."""

    def link(direction: Direction, key: list[Any] | None) -> str:
        token = cursors.seal(binding, Position(direction, key))
        return page_url(self_url, pairs, [(CURSOR, token)])

    links = [("self", self_url)]
    if position is not None:
        links.append(("first", page_url(self_url, pairs, [])))
    if not keyed:
        return links
    # Read forward, "more" means a next page; read backwards (previous, last), a previous one.
    backwards = position is not None and position.backwards
    has_previous = more if backwards else position is not None
    has_next = position is not None and position.direction == "previous" if backwards else more
    if has_previous:
        links.append(("previous", link("previous", keyed[0].key)))
    if has_next:
        links.append(("next", link("next", keyed[-1].key)))
        links.append(("last", link("last", None)))
    return links


def _offset_links(
    self_url: str,
    pairs: list[tuple[str, str]],
    offset: int,
    page: int,
    more: bool,
    total: int | None,
) -> list[tuple[str, str]]:
    links = [("self", self_url)]
    if offset > 0:
        links.append(("first", page_url(self_url, pairs, [("_offset", "0")])))
        previous = max(0, offset - page)
        links.append(("previous", page_url(self_url, pairs, [("_offset", str(previous))])))
    if more:
        links.append(("next", page_url(self_url, pairs, [("_offset", str(offset + page))])))
        if total is not None and page > 0:
            last = max(0, (total - 1) // page * page)
            links.append(("last", page_url(self_url, pairs, [("_offset", str(last))])))
    return links


def _text_entry(row: LiveRow, texts: dict[int, str], base: str, mode: str) -> dict[str, Any] | None:
    """An entry whose resource is its served JSON text as PostgreSQL made it (whole resources,
    the default): a page of 1,000 included resources is not parsed and re-encoded in Python."""
    served = texts.get(row.record_id)
    if served is None:
        return None
    return {
        "fullUrl": f"{base}/{row.resource_type}/{row.resource_id}",
        "resource": RawJSON(served),
        "search": {"mode": mode},
    }


def _search_entry(
    row: LiveRow,
    resources: dict[int, dict[str, Any]],
    base: str,
    mode: str,
    subsetting: Subsetting,
) -> dict[str, Any] | None:
    resource = resources.get(row.record_id)
    if resource is None:
        return None
    served = served_form(resource, row.version, row.last_updated)
    return {
        "fullUrl": f"{base}/{row.resource_type}/{row.resource_id}",
        "resource": subset(served, subsetting, match=mode == "match"),
        "search": {"mode": mode},
    }
