"""The FHIR interactions on one resource: create, update, delete, read, vread, history, search.

Each method takes what the HTTP layer read (scope, preferences, body) and returns an
:class:`Answer`; it knows nothing of the web framework, so Bundle entries reuse the same code.
CPU work (parsing, validation) happens before the transaction; a write request is one
transaction that stores the versions, the index rows and the upload's receipt together.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from hie.catalog import Catalog
from hie.config import Settings
from hie.fhir.access import Scope
from hie.fhir.content import instant, served_form
from hie.fhir.dates import date_range
from hie.fhir.parameters import PARAMETERS
from hie.fhir.responses import (
    Answer,
    Preferences,
    bundle,
    error,
    failure,
    information,
    resource_answer,
)
from hie.fhir.rules import PRECONDITION, REQUEST
from hie.fhir.search import ParsedSearch, SearchError, parse_search
from hie.fhir.session import WriteRefused, WriteSession, new_id, refuse
from hie.fhir.xml_format import XML_TYPES
from hie.ingest import Arrival, reject
from hie.storage import Connection, Database
from hie.storage.catalog import CatalogCache
from hie.storage.declarations import current_declaration
from hie.storage.fhir import (
    instance_history,
    live_rows,
    load_resources,
    read_version_of,
    type_history,
)
from hie.storage.partitions import PartitionMaker
from hie.storage.records import get_head, read_version
from hie.storage.search import LiveRow, count, referenced, referring, search
from hie.storage.uploads import UploadRow, record_upload
from hie.validators import Report
from hie.validators.fhir import parse_json, validate_resource
from hie.validators.fhir_xml import Locations, read_fhir_xml

# Retries of a write transaction that PostgreSQL aborted to break a deadlock between
# concurrent transactions touching the same resources in different orders.
RETRIES = 3
MAX_INCLUDED = 1000


@dataclass(frozen=True)
class Call:
    """One HTTP request as the interactions see it."""

    scope: Scope
    prefs: Preferences
    base: str  # absolute URL of the FHIR base, e.g. http://host/fhir
    content_type: str | None = None


def supported_types(catalog: Catalog) -> list[str]:
    """Resource types with a table in the catalog, plus Bundle when WS/T documents are
    accepted as FHIR document Bundles."""
    types = {t.fhir_resource_type for t in catalog if t.fhir_resource_type}
    if any(t.cda_code for t in catalog):
        types.add("Bundle")
    return sorted(types)


@dataclass(frozen=True)
class Body:
    """A request body read as a resource: JSON as sent, FHIR XML converted into the JSON form
    (which is what is validated and stored)."""

    resource: dict[str, Any] | None  # None: unreadable, the reasons in ``report``
    report: Report  # what reading found; for XML also FHIR XML format errors, located
    locations: Locations = field(default_factory=Locations)  # XML only: lines and columns

    def checked(self, validation: Report) -> Report:
        """The reading's issues, then the validation's (in XML with their line and column)."""
        report = Report()
        report.extend(self.report)
        report.issues.extend(self.locations.place(issue) for issue in validation.issues)
        return report


@dataclass
class Upload:
    """What the upload row of a write request says, filled in as the request goes."""

    body: bytes
    outcome: str = "accepted"
    status: int = 200
    written: int = 0
    rejected: int = 0


class FhirServer:
    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.partitions = PartitionMaker(database, settings.zone)
        self.catalogs = CatalogCache()

    # -- shared -----------------------------------------------------------------------------

    def context(self, scope: Scope) -> tuple[Catalog, list[str] | None]:
        with self.database.connection() as conn:
            return self.catalogs.get(conn), current_declaration(conn, scope.institution_code)

    def arrival(self, scope: Scope) -> Arrival:
        now = scope.received_at or datetime.now(UTC)
        return Arrival(
            scope.institution_code,
            now,
            now.astimezone(self.settings.zone).date(),
            uuid.uuid4(),
            scope.token_id,
        )

    def upload_row(
        self, call: Call, arrival: Arrival, upload: Upload, receipt: dict[str, Any]
    ) -> UploadRow:
        return UploadRow(
            id=arrival.upload_id,
            received_at=arrival.received_at,
            institution_code=arrival.institution_code,
            channel="fhir",
            content_type=call.content_type,
            byte_size=len(upload.body),
            content_sha256=hashlib.sha256(upload.body).digest(),
            outcome=upload.outcome,
            http_status=upload.status,
            records_written=upload.written,
            rejected_count=upload.rejected,
            receipt=receipt,
            token_id=arrival.token_id,
        )

    def rejected(self, call: Call, answer: Answer, body: bytes, rules: list[list[str]]) -> Answer:
        """Record a refused write: its upload row, and one rejection per resource in it."""
        arrival = self.arrival(call.scope)
        self.partitions.ensure_for(arrival.received_at)
        upload = Upload(body, "rejected", answer.status, 0, max(1, len(rules)))
        with self.database.transaction() as tx:
            record_upload(tx.conn, self.upload_row(call, arrival, upload, answer.body or {}))
            for resource_rules in rules or [[]]:
                reject(tx.conn, arrival, resource_rules or [REQUEST.id])
        return answer

    def refused(
        self, call: Call, status: int, report: Report, body: bytes, resources: int = 1
    ) -> Answer:
        rules = sorted({i.rule for i in report.errors})
        return self.rejected(call, failure(status, report), body, [rules] * resources)

    def write(
        self,
        call: Call,
        body: bytes,
        catalog: Catalog,
        work: Callable[[WriteSession, Upload], Answer],
        *,
        resources: int = 1,
    ) -> Answer:
        """Run ``work`` in one transaction with its upload row; retried after a deadlock."""
        for attempt in range(RETRIES):
            arrival = self.arrival(call.scope)
            self.partitions.ensure_for(arrival.received_at)
            upload = Upload(body)
            try:
                # Pipeline mode: statements whose results are not read (version rows,
                # aggregates, index rows) go out without waiting for each other's answers.
                with self.database.transaction() as tx, tx.conn.pipeline():
                    session = WriteSession(tx.conn, arrival, catalog, self.settings.zone)
                    answer = work(session, upload)
                    session.finish()
                    upload.written += session.written
                    upload.status = answer.status
                    if upload.outcome == "accepted" and session.written == 0:
                        upload.outcome = "unchanged" if session.unchanged else "accepted"
                    receipt = {
                        "status": answer.status,
                        "written": session.written,
                        "unchanged": session.unchanged,
                        "rejected": upload.rejected,
                        "location": answer.location,
                    }
                    record_upload(tx.conn, self.upload_row(call, arrival, upload, receipt))
                return answer
            except WriteRefused as exc:
                return self.refused(call, exc.status, exc.report, body, resources)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                if attempt == RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def read_body(self, call: Call, body: bytes) -> Body:
        """The body as a resource. XML that breaks the FHIR XML format still gives the rest of
        the resource, so that it is validated too and every issue is answered at once (as JSON
        with unknown elements is); XML that is not well-formed, like JSON that is not JSON, gives
        none."""
        if call.content_type in XML_TYPES:
            read = read_fhir_xml(body, max_bytes=self.settings.max_request_bytes)
            return Body(read.resource, read.report, read.locations)
        resource, report = parse_json(body)
        return Body(None if report.rejected else resource, report)

    def parse(
        self, call: Call, body: bytes, resource_type: str | None
    ) -> tuple[Body, Answer | None]:
        """The body read, or the refusal (400) of a body that has no resource or the wrong one."""
        read = self.read_body(call, body)
        resource = read.resource
        if resource is None:
            return read, self.refused(call, 400, read.report, body)
        if resource_type is not None and resource.get("resourceType") != resource_type:
            message = f"the body is a {resource.get('resourceType')}, the URL says {resource_type}"
            return read, self.refused(call, 400, _report(REQUEST.id, message), body)
        return read, None

    # -- writes -----------------------------------------------------------------------------

    def create(self, call: Call, resource_type: str, body: bytes, condition: str | None) -> Answer:
        read, refused = self.parse(call, body, resource_type)
        if refused is not None or read.resource is None:
            return refused or Answer(400)
        resource = {**read.resource, "id": new_id()}  # a create ignores any id the client sent
        catalog, declared = self.context(call.scope)
        result = validate_resource(resource, catalog=catalog, declared=declared)
        report = read.checked(result.report)
        if report.rejected or result.table is None:
            return self.refused(call, 422, report, body)
        table = result.table

        def work(session: WriteSession, upload: Upload) -> Answer:
            if condition:
                matches = session.find(resource_type, condition, lock=True)
                if len(matches) > 1:
                    raise _multiple(resource_type, condition)
                if matches:
                    return self.existing(session.conn, matches[0], call, 200)
            written = session.store(session.prepare(resource, table))
            return resource_answer(
                201,
                written.resource or resource,
                written.version,
                written.last_updated,
                prefs=call.prefs,
                base=call.base,
                report=report,
                write=True,
            )

        return self.write(call, body, catalog, work)

    def update(
        self,
        call: Call,
        resource_type: str,
        resource_id: str | None,
        body: bytes,
        *,
        if_match: int | None,
        condition: str | None = None,
    ) -> Answer:
        """``PUT <Type>/<id>`` (creates it when new: client-assigned ids), or ``PUT <Type>?…``
        (conditional update: the one match is updated, none creates, several are 412)."""
        read, refused = self.parse(call, body, resource_type)
        if refused is not None or read.resource is None:
            return refused or Answer(400)
        resource = read.resource
        body_id = resource.get("id")
        if resource_id is not None and body_id != resource_id:
            message = f"the body's id {body_id!r} is not the URL's id {resource_id!r}"
            return self.refused(call, 400, _report(REQUEST.id, message), body)
        catalog, declared = self.context(call.scope)
        result = validate_resource(
            {**resource, "id": body_id or "placeholder"}, catalog=catalog, declared=declared
        )
        report = read.checked(result.report)
        if report.rejected or result.table is None:
            return self.refused(call, 422, report, body)
        table = result.table

        def work(session: WriteSession, upload: Upload) -> Answer:
            target_id = resource_id
            if condition is not None:
                matches = session.find(resource_type, condition, lock=True)
                if len(matches) > 1:
                    raise _multiple(resource_type, condition)
                if matches and body_id not in (None, matches[0].resource_id):
                    raise refuse(
                        400,
                        REQUEST.id,
                        f"the body's id {body_id!r} is not the id of "
                        f"the resource matching {condition!r}",
                        code="invalid",
                    )
                target_id = matches[0].resource_id if matches else body_id or new_id()
            written = session.store(
                session.prepare({**resource, "id": target_id}, table), if_match=if_match
            )
            status = 201 if written.status == "created" else 200
            return resource_answer(
                status,
                written.resource or resource,
                written.version,
                written.last_updated,
                prefs=call.prefs,
                base=call.base,
                report=report,
                write=True,
            )

        return self.write(call, body, catalog, work)

    def delete(
        self, call: Call, resource_type: str, resource_id: str, *, if_match: int | None
    ) -> Answer:
        catalog = self.context(call.scope)[0]

        def work(session: WriteSession, upload: Upload) -> Answer:
            written = session.delete(resource_type, resource_id, if_match=if_match)
            if written is None:
                return Answer(204)
            answer = information(200, f"{resource_type}/{resource_id} deleted")
            answer.headers["ETag"] = f'W/"{written.version}"'
            if call.prefs.return_mode == "minimal":
                answer.status, answer.body = 204, None
            return answer

        return self.write(call, b"", catalog, work)

    def validate(
        self, call: Call, resource_type: str, resource_id: str | None, body: bytes
    ) -> Answer:
        """``$validate`` (type or instance level): the validation report, nothing stored. 200
        means the validation ran; the issues say whether the resource is valid."""
        read = self.read_body(call, body)
        resource = read.resource
        if resource is not None and resource.get("resourceType") == "Parameters":
            parameters = resource.get("parameter") or []
            given = [p.get("resource") for p in parameters if p.get("name") == "resource"]
            resource = given[0] if given and isinstance(given[0], dict) else None
            if resource is None:
                return error(400, "required", "Parameters without a 'resource' parameter")
            # XML locations are by path from Parameters, the validation's from the resource.
            read = Body(resource, read.report)
        if resource is None:
            return failure(400, read.report)
        if resource.get("resourceType") != resource_type:
            message = f"the body is a {resource.get('resourceType')}, the URL says {resource_type}"
            return error(400, "invalid", message)
        if resource_id is not None and resource.get("id") not in (None, resource_id):
            return error(400, "invalid", f"the body's id is not {resource_id!r}")
        catalog, declared = self.context(call.scope)
        candidate = {**resource, "id": resource.get("id") or resource_id or new_id()}
        result = validate_resource(candidate, catalog=catalog, declared=declared)
        return Answer(200, read.checked(result.report).to_operation_outcome())

    def existing(self, conn: Connection, row: LiveRow, call: Call, status: int) -> Answer:
        resource = load_resources(conn, [row]).get(row.record_id) or {}
        return resource_answer(
            status, resource, row.version, row.last_updated, prefs=call.prefs, base=call.base
        )

    # -- reads ------------------------------------------------------------------------------

    def read(self, call: Call, resource_type: str, resource_id: str) -> Answer:
        logical_id = f"{resource_type}/{resource_id}"
        with self.database.connection() as conn:
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

    def vread(self, call: Call, resource_type: str, resource_id: str, version_id: str) -> Answer:
        logical_id = f"{resource_type}/{resource_id}"
        if not version_id.isdigit():
            return error(404, "not-found", f"{logical_id} has no version {version_id!r}")
        with self.database.connection() as conn:
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

    def history(
        self,
        call: Call,
        resource_type: str,
        resource_id: str | None,
        pairs: list[tuple[str, str]],
        self_url: str,
    ) -> Answer:
        values = dict(pairs)
        try:
            page = min(int(values.get("_count", "20")), 1000)
            offset = int(values.get("_offset", "0"))
        except ValueError:
            return error(400, "invalid", "_count and _offset are whole numbers")
        since = None
        if "_since" in values:
            found = date_range(values["_since"], self.settings.zone)
            if found is None:
                return error(400, "invalid", f"_since={values['_since']} is not an instant")
            since = found[0]
        inst = call.scope.institution_code
        with self.database.connection() as conn:
            if resource_id is not None:
                logical_id = f"{resource_type}/{resource_id}"
                if get_head(conn, inst, logical_id) is None:
                    return error(404, "not-found", f"{logical_id} is not known")
                rows = instance_history(
                    conn, inst, logical_id, since=since, count=page + 1, offset=offset
                )
            else:
                rows = type_history(
                    conn, inst, resource_type, since=since, count=page + 1, offset=offset
                )
        entries = [_history_entry(row, call.base) for row in rows[:page]]
        links = [("self", self_url)]
        if len(rows) > page:
            links.append(("next", _with_offset(self_url, pairs, offset + page)))
        return Answer(200, bundle("history", entries, links=links))

    def search(
        self,
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
                zone=self.settings.zone,
            )
        except SearchError as exc:
            return error(400, "invalid", str(exc))
        if parsed.unknown and call.prefs.strict:
            return error(400, "not-supported", "; ".join(parsed.unknown))
        query = parsed.query
        with self.database.connection() as conn:
            if parsed.count_only:
                counted = count(conn, query)
                return Answer(
                    200, bundle("searchset", [], links=[("self", self_url)], total=counted)
                )
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
            included = self.included(conn, call, parsed, rows)
            resources = load_resources(conn, rows + included)
        found = [_search_entry(r, resources, call.base, "match") for r in rows]
        found += [_search_entry(r, resources, call.base, "include") for r in included]
        entries = [e for e in found if e is not None]
        if parsed.unknown:
            issues = [
                {"severity": "warning", "code": "not-supported", "diagnostics": m}
                for m in parsed.unknown
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

    def included(
        self, conn: Connection, call: Call, parsed: ParsedSearch, rows: list[LiveRow]
    ) -> list[LiveRow]:
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


def _report(rule: str, message: str, code: str = "invalid") -> Report:
    from hie.validators import Severity

    report = Report()
    report.add(Severity.ERROR, rule, message, code=code)
    return report


def _multiple(resource_type: str, condition: str) -> WriteRefused:
    return refuse(
        412,
        PRECONDITION.id,
        f"the condition {resource_type}?{condition} matches more than one resource",
        code="multiple-matches",
    )


def _with_offset(self_url: str, pairs: list[tuple[str, str]], offset: int) -> str:
    from urllib.parse import urlencode

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


def _history_entry(row: dict[str, Any], base: str) -> dict[str, Any]:
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


__all__ = ["PARAMETERS", "Call", "FhirServer", "supported_types"]
