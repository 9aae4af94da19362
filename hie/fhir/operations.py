"""FHIR operations as HAPI FHIR JPA answers them:

- ``Patient/<id>/$everything``: the patient, every live resource of the caller's institution
  that refers to it through an indexed reference search parameter, and what those refer to (one
  level, as HAPI's ``_include=*``), with ``_since``, ``_type``, ``_count`` and ``_offset`` paging;
- ``$meta`` (read), ``$meta-add`` and ``$meta-delete`` on one resource: tags, security labels
  and profiles changed in the current version, without making a new version (as HAPI);
- ``$validate`` with ``mode`` (create, update, delete) and ``profile``: 200 with the
  OperationOutcome when valid, 412 when not; ``mode=create`` with an id and ``mode=update``
  without one are 422; ``mode=delete`` is 409 naming the referrers, else "Ok to delete".
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from hie.catalog import Table
from hie.fhir.calls import Body, Call
from hie.fhir.content import content_hash, served_form, stored_form
from hie.fhir.dates import date_range
from hie.fhir.integrity import NAMED_REFERRERS, references_of, referring_path
from hie.fhir.responses import Answer, bundle, error, failure, information
from hie.fhir.rules import REQUEST
from hie.fhir.search import SearchError, check_storable, whole_number
from hie.fhir.session import WriteSession, new_id, prepare, refuse
from hie.fhir.transactions import Transactions, Upload, request_error
from hie.storage import Database
from hie.storage.fhir import live_rows, load_resources
from hie.storage.meta import replace_current
from hie.storage.records import get_head, read_version
from hie.storage.references import referrers, referring
from hie.storage.search import LiveRow
from hie.validators import Report
from hie.validators.conformance import SERVER
from hie.validators.fhir import validate_resource

# $everything reads at most this many resources referring to the patient (HAPI pages through
# a search of the same kind; beyond this, narrow it with _type or _since).
MAX_EVERYTHING = 10_000

META_LISTS = ("tag", "security", "profile")


# -- $everything ------------------------------------------------------------------------------


def everything(
    database: Database,
    zone: ZoneInfo,
    call: Call,
    patient_id: str,
    pairs: list[tuple[str, str]],
    self_url: str,
) -> Answer:
    values = dict(pairs)
    try:
        check_storable(pairs)
        page = min(whole_number(values.get("_count", "50"), "_count"), 1000)
        offset = whole_number(values.get("_offset", "0"), "_offset")
    except SearchError as exc:
        return error(400, "invalid", str(exc))
    since = None
    if "_since" in values:
        found = date_range(values["_since"], zone)
        if found is None:
            return error(400, "invalid", f"_since={values['_since']} is not an instant")
        since = found[0]
    types = {t.strip() for t in values.get("_type", "").split(",") if t.strip()}
    inst = call.scope.institution_code
    logical_id = f"Patient/{patient_id}"
    with database.connection() as conn:
        head = get_head(conn, inst, logical_id)
        if head is None:
            return error(404, "not-found", f"{logical_id} is not known")
        if head.deleted:
            return error(410, "deleted", f"{logical_id} was deleted")
        keys = [("Patient", patient_id)]
        keys += referring(conn, inst, logical_id, MAX_EVERYTHING)
        rows = live_rows(conn, inst, list(dict.fromkeys(keys)))
        resources = load_resources(conn, rows)
        # What the patient's records refer to (practitioners, organizations, ...), one level.
        seen = {(r.resource_type, r.resource_id) for r in rows}
        referenced: list[tuple[str, str]] = []
        for resource in resources.values():
            for reference in references_of(resource):
                kind, _, target_id = reference.target.partition("/")
                if (kind, target_id) not in seen:
                    seen.add((kind, target_id))
                    referenced.append((kind, target_id))
        more_rows = live_rows(conn, inst, referenced[:MAX_EVERYTHING])
        resources.update(load_resources(conn, more_rows))
    chosen = [
        r
        for r in [*rows, *more_rows]
        if (not types or r.resource_type in types) and (since is None or r.last_updated >= since)
    ]
    chosen.sort(key=lambda r: (r.resource_type != "Patient", r.resource_type, r.resource_id))
    entries = [_entry(r, resources, call.base) for r in chosen[offset : offset + page]]
    links = [("self", self_url)]
    if offset + page < len(chosen):
        links.append(("next", _page(self_url, pairs, offset + page)))
    if offset > 0:
        links.append(("previous", _page(self_url, pairs, max(0, offset - page))))
    found_entries = [e for e in entries if e is not None]
    return Answer(200, bundle("searchset", found_entries, links=links, total=len(chosen)))


def _entry(row: LiveRow, resources: dict[int, dict[str, Any]], base: str) -> dict[str, Any] | None:
    resource = resources.get(row.record_id)
    if resource is None:
        return None
    return {
        "fullUrl": f"{base}/{row.resource_type}/{row.resource_id}",
        "resource": served_form(resource, row.version, row.last_updated),
        "search": {"mode": "match"},
    }


def _page(self_url: str, pairs: list[tuple[str, str]], offset: int) -> str:
    base = self_url.split("?", 1)[0]
    kept = [(k, v) for k, v in pairs if k != "_offset"]
    return f"{base}?{urlencode([*kept, ('_offset', str(offset))])}"


# -- $meta, $meta-add, $meta-delete -----------------------------------------------------------


def _meta_parameters(meta: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "return", "valueMeta": meta}]}


def meta(database: Database, call: Call, resource_type: str, resource_id: str) -> Answer:
    """``$meta`` of one resource: its current meta (version, time, tags, security, profiles)."""
    logical_id = f"{resource_type}/{resource_id}"
    with database.connection() as conn:
        head = get_head(conn, call.scope.institution_code, logical_id)
        if head is None:
            return error(404, "not-found", f"{logical_id} is not known")
        if head.deleted:
            return error(410, "deleted", f"{logical_id} was deleted")
        version = read_version(conn, head)
    if version is None or version.get("resource") is None:
        return error(404, "not-found", f"{logical_id} is not a FHIR resource")
    served = served_form(version["resource"], head.version, head.received_at)
    return Answer(200, _meta_parameters(served["meta"]))


def _given_meta(body: Body) -> dict[str, Any] | None:
    resource = body.resource
    if not isinstance(resource, dict) or resource.get("resourceType") != "Parameters":
        return None
    for parameter in resource.get("parameter") or []:
        if isinstance(parameter, dict) and parameter.get("name") == "meta":
            value = parameter.get("valueMeta")
            return value if isinstance(value, dict) else None
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return bool(a.get("system") == b.get("system") and a.get("code") == b.get("code"))
    return bool(a == b)


def change_meta(
    server: Transactions,
    call: Call,
    resource_type: str,
    resource_id: str,
    body: bytes,
    *,
    add: bool,
) -> Answer:
    """``$meta-add`` (``add``) or ``$meta-delete``: the tags, security labels and profiles of a
    Parameters ``meta`` added to or removed from the current version, which stays the same
    version (HAPI's behaviour); the search index follows."""
    read = server.read_body(call, body)
    given = _given_meta(read)
    name = "$meta-add" if add else "$meta-delete"
    if given is None:
        message = f"{name} takes a Parameters resource with a 'meta' parameter (valueMeta)"
        return server.refused(call, 400, request_error(REQUEST.id, message), body)
    catalog = server.context(call.scope)[0]
    zone = server.settings.zone

    def work(session: WriteSession, upload: Upload) -> Answer:
        logical_id = f"{resource_type}/{resource_id}"
        head = get_head(session.conn, session.institution_code, logical_id, lock=True)
        if head is None or head.deleted:
            raise refuse(
                404 if head is None else 410,
                REQUEST.id,
                f"{logical_id} is {'not known' if head is None else 'deleted'}",
                code="not-found" if head is None else "deleted",
            )
        version = read_version(session.conn, head)
        resource = dict((version or {}).get("resource") or {})
        if not resource:
            raise refuse(404, REQUEST.id, f"{logical_id} is not a FHIR resource", code="not-found")
        current = dict(resource.get("meta") or {})
        for key in META_LISTS:
            items = list(current.get(key) or [])
            for item in given.get(key) or []:
                present = any(_same(item, kept) for kept in items)
                if add and not present:
                    items.append(item)
                elif not add and present:
                    items = [kept for kept in items if not _same(item, kept)]
            if items:
                current[key] = items
            else:
                current.pop(key, None)
        changed = {k: v for k, v in resource.items() if k != "meta"}
        if current:
            changed["meta"] = current
        changed = stored_form(changed)
        if content_hash(changed) != head.content_sha256:
            replace_current(session.conn, head, changed, content_hash(changed))
            table = catalog.get(head.table_code) or Table(head.table_code, "", "", "")
            row = LiveRow(
                resource_type, resource_id, head.version, head.received_at, head.record_id
            )
            session.index.put(row, prepare(changed, table, zone).index)
        session.touched.append(logical_id)
        served = served_form(changed, head.version, head.received_at)
        return Answer(200, _meta_parameters(served["meta"]))

    return server.write(call, body, catalog, work)


# -- $validate --------------------------------------------------------------------------------


def _parameter(resource: dict[str, Any] | None, name: str) -> Any:
    if not isinstance(resource, dict) or resource.get("resourceType") != "Parameters":
        return None
    for parameter in resource.get("parameter") or []:
        if isinstance(parameter, dict) and parameter.get("name") == name:
            if name == "resource":
                return parameter.get("resource")
            return next((v for k, v in parameter.items() if k.startswith("value")), None)
    return None


def validate(
    server: Transactions,
    call: Call,
    resource_type: str,
    resource_id: str | None,
    body: bytes,
    query: dict[str, str],
) -> Answer:
    """``$validate`` (type or instance level), nothing stored. The mode and profile come from
    the Parameters body or the query string."""
    body_given = bool(body.strip())
    read = server.read_body(call, body) if body_given else Body(None, Report())
    given = read.resource
    mode = _parameter(given, "mode") or query.get("mode")
    profile = _parameter(given, "profile") or query.get("profile")
    if mode not in (None, "create", "update", "delete"):
        return error(400, "invalid", f"mode={mode!r}: one of create, update, delete")
    inst = call.scope.institution_code
    if mode == "delete":
        if resource_id is None:
            message = "No ID supplied. ID is required when validating with mode=DELETE"
            return error(400, "required", message)
        logical_id = f"{resource_type}/{resource_id}"
        with server.database.connection() as conn:
            head = get_head(conn, inst, logical_id)
            if head is None or head.deleted:
                return error(404, "not-found", f"{logical_id} is not known")
            found = (
                referrers(conn, inst, [logical_id], NAMED_REFERRERS)
                if server.settings.enforce_referential_integrity_on_delete
                else []
            )
        if found:
            first = found[0]
            named = ", ".join(f"{r.resource_type}/{r.resource_id}" for r in found)
            return error(
                409,
                "processing",
                f"Unable to delete {logical_id} because at least one resource has a reference to "
                f"this resource. First reference found was resource {first.resource_type}/"
                f"{first.resource_id} in path {referring_path(first.resource_type, first.param)} "
                f"(referrers: {named})",
            )
        return information(200, "Ok to delete")
    resource = given
    if isinstance(given, dict) and given.get("resourceType") == "Parameters":
        resource = _parameter(given, "resource")
        read = Body(resource if isinstance(resource, dict) else None, read.report)
    if resource is None and resource_id is not None and (not body_given or given is not None):
        # Instance level without a resource: the stored one is validated (as HAPI does).
        with server.database.connection() as conn:
            head = get_head(conn, inst, f"{resource_type}/{resource_id}")
            version = read_version(conn, head) if head is not None and not head.deleted else None
        resource = (version or {}).get("resource")
        if resource is None:
            return error(404, "not-found", f"{resource_type}/{resource_id} is not known")
        read = Body(resource, read.report)
    if not isinstance(resource, dict):
        if read.report.issues:
            return failure(400, read.report)
        message = "$validate needs a resource (the body, or a Parameters 'resource')"
        return error(400, "required", message)
    if resource.get("resourceType") != resource_type:
        message = f"the body is a {resource.get('resourceType')}, the URL says {resource_type}"
        return error(400, "invalid", message)
    if resource_id is not None and resource.get("id") not in (None, resource_id):
        return error(400, "invalid", f"the body's id is not {resource_id!r}")
    has_id = bool(resource.get("id"))
    if mode == "create" and has_id:
        message = "Resource has an ID - ID must not be populated for a FHIR create"
        return error(422, "processing", message)
    if mode == "update" and not has_id and resource_id is None:
        message = "Resource has no ID - ID must be populated for a FHIR update"
        return error(422, "processing", message)
    catalog, declared = server.context(call.scope)
    context = replace(SERVER, profiles=(str(profile),)) if profile else SERVER
    candidate = {**resource, "id": resource.get("id") or resource_id or new_id()}
    result = validate_resource(candidate, catalog=catalog, declared=declared, context=context)
    report = read.checked(result.report)
    outcome = report.to_operation_outcome()
    # HAPI: a resource that fails validation is 412 Precondition Failed with the outcome.
    status = 412 if report.rejected else 200
    return Answer(status, outcome, outcome=outcome)
