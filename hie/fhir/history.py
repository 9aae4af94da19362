"""The history interactions (FHIR R4 http.html#history) at every level: ``GET
<Type>/<id>/_history``, ``GET <Type>/_history`` and ``GET /_history`` (system: every FHIR
resource of the institution the caller acts for), with ``_since``, ``_at``, ``_count`` and
``_offset`` paging (next and previous links)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from hie.fhir.calls import Call
from hie.fhir.content import instant, served_form
from hie.fhir.dates import date_range
from hie.fhir.responses import Answer, bundle, error
from hie.fhir.search import SearchError, check_storable, whole_number
from hie.storage import Database
from hie.storage.history import history as stored_history
from hie.storage.records import get_head

KNOWN = ("_count", "_offset", "_since", "_at", "_format", "_pretty")


def history(
    database: Database,
    zone: ZoneInfo,
    call: Call,
    resource_type: str | None,
    resource_id: str | None,
    pairs: list[tuple[str, str]],
    self_url: str,
) -> Answer:
    values = dict(pairs)
    try:
        check_storable(pairs)
        page = min(whole_number(values.get("_count", "20"), "_count"), 1000)
        offset = whole_number(values.get("_offset", "0"), "_offset")
    except SearchError as exc:
        return error(400, "invalid", str(exc))
    unknown = sorted({k for k, _ in pairs if k not in KNOWN})
    if unknown and call.prefs.strict:
        return error(400, "not-supported", f"unknown history parameter {unknown[0]!r}")
    since = None
    if "_since" in values:
        found = date_range(values["_since"], zone)
        if found is None:
            return error(400, "invalid", f"_since={values['_since']} is not an instant")
        since = found[0]
    at = None
    if "_at" in values:
        at = date_range(values["_at"], zone)
        if at is None:
            return error(400, "invalid", f"_at={values['_at']} is not a date, dateTime or instant")
    inst = call.scope.institution_code
    logical_id = f"{resource_type}/{resource_id}" if resource_id is not None else None
    with database.connection() as conn:
        if logical_id is not None and get_head(conn, inst, logical_id) is None:
            return error(404, "not-found", f"{logical_id} is not known")
        rows = stored_history(
            conn,
            inst,
            resource_type=resource_type,
            logical_id=logical_id,
            since=since,
            at=at,
            count=page + 1,
            offset=offset,
        )
    entries = [_entry(row, call.base) for row in rows[:page]]
    links = [("self", self_url)]
    if len(rows) > page:
        links.append(("next", _page(self_url, pairs, offset + page)))
    if offset > 0:
        links.append(("previous", _page(self_url, pairs, max(0, offset - page))))
    return Answer(200, bundle("history", entries, links=links))


def _page(self_url: str, pairs: list[tuple[str, str]], offset: int) -> str:
    base = self_url.split("?", 1)[0]
    kept = [(k, v) for k, v in pairs if k != "_offset"]
    return f"{base}?{urlencode([*kept, ('_offset', str(offset))])}"


def _entry(row: dict[str, Any], base: str) -> dict[str, Any]:
    logical_id, version = row["logical_id"], row["version"]
    resource_type = logical_id.split("/", 1)[0]
    entry: dict[str, Any] = {"fullUrl": f"{base}/{logical_id}"}
    if row["deleted"] or row["resource"] is None:
        entry["request"] = {"method": "DELETE", "url": logical_id}
        status = "204 No Content"
    else:
        entry["resource"] = served_form(row["resource"], version, row["received_at"])
        entry["request"] = (
            {"method": "POST", "url": resource_type}
            if version == 1
            else {"method": "PUT", "url": logical_id}
        )
        status = "201 Created" if version == 1 else "200 OK"
    entry["response"] = {
        "status": status,
        "etag": f'W/"{version}"',
        "lastModified": instant(row["received_at"]),
    }
    return entry
