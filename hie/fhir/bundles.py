"""``POST /fhir`` with a transaction or batch Bundle.

A transaction is all or nothing: every entry is validated first (outside the database
transaction), then ids are assigned, conditions resolved, ``urn:uuid:`` and conditional
references rewritten, and every entry written in one database transaction, in FHIR's order
(DELETE, POST, PUT, GET). Any failure rolls all of it back and rejects each resource in it.
A batch runs each entry on its own (a savepoint each): one failing entry fails only itself.

A ``urn:uuid:`` reference must name an entry of the same Bundle, and a conditional reference
(``Practitioner?identifier=…``) must match exactly one stored resource of the institution,
otherwise the transaction is rejected naming each unresolved reference. Relative references
must name a resource the institution has once the whole Bundle is written (referential
integrity, integrity.py, unless turned off: a regional exchange may receive data out of order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl

import psycopg

from hie.audit import mask
from hie.catalog import Catalog, Table
from hie.fhir.content import parse_etag
from hie.fhir.parameters import reference_target
from hie.fhir.patch import Patch, PatchError, parse_patch, patch_from_binary
from hie.fhir.patching import apply_to_stored, single_target
from hie.fhir.responses import Answer, bundle, failure, information, resource_answer
from hie.fhir.rules import BUNDLE, PATCH, PRECONDITION, REFERENCE, REQUEST
from hie.fhir.server import Call, FhirServer, Upload
from hie.fhir.session import (
    Prepared,
    WriteRefused,
    WriteSession,
    Written,
    new_id,
    prepare,
    refuse,
)
from hie.fhir.writes import delete_matching
from hie.ingest import reject
from hie.storage.search import LiveRow
from hie.validators import Report, Severity
from hie.validators.fhir import entry_types_of, validate_resource

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3}
# Entries of a batch written together (one savepoint, a few statements): bounds what one
# savepoint holds and what a failing group costs when its entries are then run one by one.
BATCH_GROUP = 500
_INSTANCE = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})")
_CONDITIONAL = re.compile(r"([A-Z][A-Za-z]+)\?(.+)")


@dataclass
class Entry:
    """One Bundle entry as planned: what it does, to which resource, with what content."""

    index: int
    method: str
    url: str
    resource_type: str = ""
    resource_id: str | None = None
    condition: str | None = None  # ifNoneExist (POST) or the conditional update's query (PUT)
    full_url: str | None = None
    resource: dict[str, Any] | None = None
    table: Table | None = None
    if_match: int | None = None
    report: Report = field(default_factory=Report)
    patch: Patch | None = None  # a PATCH entry's operations
    patch_condition: str | None = None  # PATCH <Type>?<query>: the one resource it names
    delete_condition: str | None = None  # DELETE <Type>?<query>
    if_none_match: str | None = None  # GET entries: a conditional read
    if_modified_since: str | None = None

    @property
    def path(self) -> str:
        return f"Bundle.entry[{self.index}]"


def _plan(
    raw: dict[str, Any],
    index: int,
    catalog: Catalog,
    declared: list[str] | None,
    entry_types: dict[str, str],
) -> Entry:
    request = raw.get("request") if isinstance(raw, dict) else None
    entry = Entry(index, "", "")
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        entry.report.add(
            Severity.ERROR,
            REQUEST.id,
            "the entry has no request.method",
            expression=f"{entry.path}.request",
        )
        return entry
    entry.method = request["method"].upper()
    entry.url = str(request.get("url") or "").strip().lstrip("/")
    entry.full_url = raw.get("fullUrl")
    entry.if_match = parse_etag(request.get("ifMatch"))
    path = entry.url.split("?", 1)[0]
    instance, conditional = _INSTANCE.fullmatch(path), _CONDITIONAL.fullmatch(entry.url)
    if entry.method == "GET":
        entry.if_none_match = request.get("ifNoneMatch") or None
        entry.if_modified_since = request.get("ifModifiedSince") or None
        return entry
    if entry.method == "DELETE" and instance and "?" not in entry.url:
        entry.resource_type, entry.resource_id = instance[1], instance[2]
        return entry
    if entry.method == "DELETE" and conditional:
        entry.resource_type, entry.delete_condition = conditional[1], conditional[2]
        return entry
    resource = raw.get("resource")
    if entry.method == "PATCH" and (instance or conditional):
        return _plan_patch(entry, resource, instance, conditional)
    if entry.method == "POST" and re.fullmatch(r"[A-Z][A-Za-z]+", entry.url):
        entry.resource_type, entry.resource_id = entry.url, new_id()
        entry.condition = request.get("ifNoneExist") or None
    elif entry.method == "PUT" and instance and "?" not in entry.url:
        entry.resource_type, entry.resource_id = instance[1], instance[2]
    elif entry.method == "PUT" and conditional:
        entry.resource_type, entry.condition = conditional[1], conditional[2]
        body_id = resource.get("id") if isinstance(resource, dict) else None
        entry.resource_id = body_id if isinstance(body_id, str) else new_id()
    else:
        entry.report.add(
            Severity.ERROR,
            REQUEST.id,
            f"{entry.method} {entry.url} is not supported in a Bundle (POST <Type>, PUT "
            "<Type>/<id>, PUT <Type>?<query>, PATCH <Type>/<id>, PATCH <Type>?<query>, "
            "DELETE <Type>/<id>, DELETE <Type>?<query>, GET)",
            code="not-supported",
            expression=f"{entry.path}.request",
        )
        return entry
    if not isinstance(resource, dict) or resource.get("resourceType") != entry.resource_type:
        entry.report.add(
            Severity.ERROR,
            REQUEST.id,
            f"the entry's resource is not a {entry.resource_type}",
            expression=f"{entry.path}.resource",
        )
        return entry
    if (
        entry.method == "PUT"
        and entry.condition is None
        and resource.get("id") != entry.resource_id
    ):
        entry.report.add(
            Severity.ERROR,
            REQUEST.id,
            f"the resource's id {resource.get('id')!r} is not the id in {entry.url}",
            expression=f"{entry.path}.resource.id",
        )
        return entry
    entry.resource = {**resource, "id": entry.resource_id}
    result = validate_resource(
        entry.resource,
        catalog=catalog,
        declared=declared,
        path=f"{entry.path}.resource",
        entry_types=entry_types,
    )
    entry.report.extend(result.report)
    entry.table = result.table
    if entry.table is None and not entry.report.rejected:
        entry.report.add(Severity.ERROR, REQUEST.id, "no table accepts this resource")
    return entry


def _plan_patch(
    entry: Entry, resource: Any, instance: re.Match[str] | None, conditional: re.Match[str] | None
) -> Entry:
    """A PATCH entry: a Binary holding a base64 JSON Patch, or a Parameters resource (FHIRPath
    Patch), as HAPI takes them; ``<Type>/<id>`` or ``<Type>?<query>``."""
    if conditional and "?" in entry.url:
        entry.resource_type, entry.patch_condition = conditional[1], conditional[2]
    elif instance:
        entry.resource_type, entry.resource_id = instance[1], instance[2]
    try:
        if isinstance(resource, dict) and resource.get("resourceType") == "Binary":
            entry.patch = Patch("json", patch_from_binary(resource))
        else:
            entry.patch = parse_patch(None, resource)
    except PatchError as exc:
        entry.report.add(
            Severity.ERROR,
            PATCH.id,
            str(exc),
            expression=f"{entry.path}.resource{'.' + exc.expression if exc.expression else ''}",
        )
    return entry


def _rewrite(
    session: WriteSession | None,
    value: Any,
    ids: dict[str, str],
    cache: dict[str, str | None],
    problems: list[str],
) -> bool:
    """Replace ``urn:uuid:`` and conditional references in place; collect those that fail.

    Without a session (before the transaction) conditional references are left alone; the
    result says whether there were any, that is whether the rewrite must be done again inside.
    """
    deferred = False
    if isinstance(value, list):
        for item in value:
            deferred |= _rewrite(session, item, ids, cache, problems)
        return deferred
    if not isinstance(value, dict):
        return False
    for key, item in value.items():
        if key == "reference" and isinstance(item, str):
            match = _CONDITIONAL.fullmatch(item)
            if item in ids:
                value[key] = ids[item]
            elif item.startswith(("urn:uuid:", "urn:oid:")):
                problems.append(f"{item} names no entry of this Bundle")
            elif match and session is None:
                deferred = True
            elif match and session is not None:
                if item not in cache:
                    rows = session.find(match[1], match[2], lock=False)
                    cache[item] = f"{match[1]}/{rows[0].resource_id}" if len(rows) == 1 else None
                    if len(rows) != 1:
                        problems.append(
                            f"{item} matches {'no' if not rows else 'more than one'} stored "
                            "resource of this institution"
                        )
                if cache[item] is not None:
                    value[key] = cache[item]
        elif isinstance(item, dict | list):
            deferred |= _rewrite(session, item, ids, cache, problems)
    return deferred


def _conditional_references(value: Any, found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (type, query) of every conditional reference (``Patient?identifier=…``) in a
    resource, to be resolved together with the Bundle's other conditions."""
    if isinstance(value, list):
        for item in value:
            _conditional_references(item, found)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                match = _CONDITIONAL.fullmatch(item)
                if match:
                    found.append((match[1], match[2]))
            elif isinstance(item, dict | list):
                _conditional_references(item, found)
    return found


def _prefetch(session: WriteSession, plans: list[Entry]) -> None:
    """Resolve every condition of a Bundle at once (locks and one lookup per parameter):
    ifNoneExist and conditional updates under their locks, conditional references without."""
    ready = [p for p in plans if not p.report.rejected and p.method in ("POST", "PUT")]
    session.prefetch(((p.resource_type, p.condition) for p in ready if p.condition), lock=True)
    references: list[tuple[str, str]] = []
    for plan in ready:
        _conditional_references(plan.resource, references)
    session.prefetch(references, lock=False)


def _together(plan: Entry) -> bool:
    """Whether a batch entry can be written with others (:meth:`BundleProcessor.batch_run`):
    a valid create or update without If-Match or conditional references; a create may carry
    ifNoneExist, a conditional update runs on its own."""
    return (
        plan.method in ("POST", "PUT")
        and not plan.report.rejected
        and not (plan.condition and plan.method != "POST")
        and plan.if_match is None
        and plan.resource is not None
        and plan.table is not None
        and not _conditional_references(plan.resource, [])
    )


def _id_map(writes: list[Entry]) -> dict[str, str]:
    """fullUrl → "<Type>/<id>" of every entry that has its id."""
    ids: dict[str, str] = {}
    for plan in writes:
        if plan.full_url and plan.resource_id:
            ids[plan.full_url] = f"{plan.resource_type}/{plan.resource_id}"
            # An absolute fullUrl (http://a/fhir/Patient/1) is also referred to relatively.
            relative = reference_target(plan.full_url)
            if relative is not None and relative.startswith(f"{plan.resource_type}/"):
                ids.setdefault(relative, ids[plan.full_url])
    return ids


def _unresolved(problems: list[str]) -> WriteRefused:
    failed = Report()
    for problem in dict.fromkeys(problems):
        failed.add(Severity.ERROR, REFERENCE.id, problem, code="not-found")
    return WriteRefused(422, failed)


def _entry_json(answer: Answer, prefs_mode: str | None) -> dict[str, Any]:
    response: dict[str, Any] = {"status": answer.status_line}
    if answer.location:
        response["location"] = answer.location
    if "ETag" in answer.headers:
        response["etag"] = answer.headers["ETag"]
    if answer.resource is not None:
        response["lastModified"] = answer.resource["meta"]["lastUpdated"]
    entry: dict[str, Any] = {}
    if answer.status >= 400 and answer.outcome is not None:
        response["outcome"] = answer.outcome
    elif prefs_mode == "representation" and answer.resource is not None:
        entry["resource"] = answer.resource
    elif prefs_mode == "OperationOutcome" and answer.outcome is not None:
        response["outcome"] = answer.outcome
    elif answer.location is None and answer.body is not None and answer.status < 300:
        entry["resource"] = answer.body  # a GET entry
    if answer.resource is not None and answer.location:
        entry["fullUrl"] = answer.location.split("/_history/")[0]
    entry["response"] = response
    return entry


class BundleProcessor:
    def __init__(self, server: FhirServer) -> None:
        self.server = server
        self.declared: list[str] | None = None

    def process(self, call: Call, body: bytes) -> Answer:
        read, refused = self.server.parse(call, body, "Bundle")
        if refused is not None or read.resource is None:
            return refused or Answer(400)
        if read.report.rejected:  # FHIR XML format errors: no entry is run on a partial Bundle
            return self.server.refused(call, 422, read.report, body)
        resource = read.resource
        kind = resource.get("type")
        entries = resource.get("entry") or []
        if kind not in ("transaction", "batch") or not isinstance(entries, list):
            report = Report()
            report.add(
                Severity.ERROR,
                REQUEST.id,
                f"POST /fhir takes a transaction or batch Bundle, not {kind!r}; store a "
                "document Bundle with POST /fhir/Bundle",
                expression="Bundle.type",
            )
            return self.server.refused(call, 400, report, body)
        limit = self.server.settings.max_bundle_entries
        if len(entries) > limit:
            report = Report()
            report.add(
                Severity.ERROR,
                BUNDLE.id,
                f"the Bundle has {len(entries)} entries; at most {limit} are accepted in one "
                "Bundle (HIE_MAX_BUNDLE_ENTRIES): split it, or send large loads as NDJSON to "
                "POST /fhir/$import, which answers 202 and stores them as a job",
                code="too-costly",
                expression="Bundle.entry",
            )
            return self.server.refused(call, 413, report, body, len(entries))
        call = replace(call, action=f"fhir.{kind}")  # the audit entry names the Bundle's kind
        catalog, declared = self.server.context(call.scope)
        self.declared = declared  # PATCH entries validate their result against it
        types = entry_types_of(resource)
        plans = [_plan(raw, i, catalog, declared, types) for i, raw in enumerate(entries)]
        for plan in plans:  # in XML, each entry's issues also get their line and column
            plan.report.issues[:] = [read.locations.place(i) for i in plan.report.issues]
        if kind == "transaction":
            return self.transaction(call, body, catalog, plans)
        return self.batch(call, body, catalog, plans)

    def transaction(self, call: Call, body: bytes, catalog: Catalog, plans: list[Entry]) -> Answer:
        writes = [p for p in plans if p.method != "GET"]
        report = Report()
        for plan in plans:
            report.extend(plan.report)
        if report.rejected:
            return self.server.refused(
                call, 422 if report.errors else 400, report, body, len(writes)
            )

        # Without conditions, ids are known now: references are rewritten and resources
        # prepared before the transaction, which then only writes (and holds its locks for less).
        ready: dict[int, Prepared] | None = None
        if not any(p.condition for p in writes):
            problems: list[str] = []
            ids = _id_map(writes)
            deferred = [_rewrite(None, p.resource, ids, {}, problems) for p in writes if p.resource]
            if problems:
                refused = _unresolved(problems)
                return self.server.refused(call, 422, refused.report, body, len(writes))
            if not any(deferred):
                zone = self.server.settings.zone
                ready = {
                    p.index: prepare(p.resource, p.table, zone)
                    for p in writes
                    if p.resource is not None and p.table is not None
                }

        def work(session: WriteSession, upload: Upload) -> Answer:
            matched: dict[int, Answer] = {}
            if ready is not None:
                prepared = {index: session.adopt(p) for index, p in ready.items()}
            else:
                _prefetch(session, writes)
                ids, matched = self.resolve(session, call, writes)
                problems: list[str] = []
                cache: dict[str, str | None] = {}
                for plan in writes:
                    if plan.resource is not None and plan.index not in matched:
                        _rewrite(session, plan.resource, ids, cache, problems)
                if problems:
                    raise _unresolved(problems)
                prepared = {
                    p.index: session.prepare(p.resource, p.table)
                    for p in writes
                    if p.resource is not None and p.table is not None and p.index not in matched
                }
            answers: dict[int, Answer] = {}
            ordered = sorted(writes, key=lambda p: _ORDER.get(p.method, 9))
            # Plain creates and updates are written together; the rest one by one, in order.
            together = [
                p
                for p in ordered
                if p.index in prepared and p.index not in matched and p.if_match is None
            ]
            for plan, written in zip(
                together, session.store_many([prepared[p.index] for p in together]), strict=True
            ):
                answers[plan.index] = self.written_answer(call, plan, written)
            for plan in ordered:
                if plan.index not in answers:
                    answers[plan.index] = self.write_one(session, call, plan, prepared, matched)
            for plan in plans:
                if plan.method == "GET":
                    # Answered from committed data: the writes above are not visible yet.
                    answers[plan.index] = self.get(call, plan)
                    session.reads.append(mask(plan.url))  # named in the audit entry
            entries = [_entry_json(answers[p.index], call.prefs.return_mode) for p in plans]
            return Answer(200, bundle("transaction-response", entries))

        return self.server.write(call, body, catalog, work, resources=len(writes))

    def resolve(
        self, session: WriteSession, call: Call, writes: list[Entry]
    ) -> tuple[dict[str, str], dict[int, Answer]]:
        """fullUrl → "<Type>/<id>" of every entry, after resolving conditions (in a fixed order
        of conditions, so that concurrent transactions take their locks in the same order)."""
        matched: dict[int, Answer] = {}
        conditional = sorted(
            (p for p in writes if p.condition), key=lambda p: (p.resource_type, p.condition or "")
        )
        for plan in conditional:
            rows = session.find(plan.resource_type, plan.condition or "", lock=True)
            if len(rows) > 1:
                raise refuse(
                    412,
                    PRECONDITION.id,
                    f"{plan.resource_type}?{plan.condition} matches more than one resource",
                    code="multiple-matches",
                    expression=f"{plan.path}.request",
                )
            if rows and plan.method == "POST":
                matched[plan.index] = self.server.existing(session.conn, rows[0], call, 200)
                plan.resource_id = rows[0].resource_id
            elif rows:
                plan.resource_id = rows[0].resource_id
                if plan.resource is not None:
                    plan.resource["id"] = plan.resource_id
        ids = _id_map(writes)
        return ids, matched

    def write_one(
        self,
        session: WriteSession,
        call: Call,
        plan: Entry,
        prepared: dict[int, Prepared],
        matched: dict[int, Answer],
    ) -> Answer:

        if plan.index in matched:
            return matched[plan.index]
        if plan.method == "PATCH" and plan.patch is not None:
            target = plan.resource_id
            if plan.patch_condition is not None:
                target = single_target(session, plan.resource_type, plan.patch_condition)
            return apply_to_stored(
                session,
                call,
                plan.resource_type,
                target or "",
                plan.patch,
                plan.if_match,
                session.catalog,
                self.declared,
                path=f"{plan.path}.resource",
            )
        if plan.method == "DELETE" and plan.delete_condition is not None:
            settings = self.server.settings
            deleted = delete_matching(
                session,
                plan.resource_type,
                plan.delete_condition,
                allow_multiple=settings.allow_multiple_delete,
                limit=settings.max_multiple_delete,
            )
            return information(200 if deleted else 204, f"{len(deleted)} resource(s) deleted")
        if plan.method == "DELETE":
            written = session.delete(
                plan.resource_type, plan.resource_id or "", if_match=plan.if_match
            )
            answer = information(200 if written else 204, f"{plan.url} deleted")
            if written:
                answer.headers["ETag"] = f'W/"{written.version}"'
            return answer
        stored = session.store(prepared[plan.index], if_match=plan.if_match)
        return self.written_answer(call, plan, stored)

    def written_answer(self, call: Call, plan: Entry, stored: Written) -> Answer:

        status = 201 if stored.status == "created" else 200
        return resource_answer(
            status,
            stored.resource or {},
            stored.version,
            stored.last_updated,
            prefs=call.prefs,
            base=call.base,
            report=plan.report,
            write=True,
        )

    def batch(self, call: Call, body: bytes, catalog: Catalog, plans: list[Entry]) -> Answer:
        def work(session: WriteSession, upload: Upload) -> Answer:
            # Each answer is turned into its response entry at once, so the written resources
            # of a group are let go before the next group is written.
            entries: dict[int, dict[str, Any]] = {}
            mode = call.prefs.return_mode
            ids = {
                p.full_url: f"{p.resource_type}/{p.resource_id}"
                for p in plans
                if p.full_url and p.resource_id and p.method in ("POST", "PUT")
            }
            for start in range(0, len(plans), BATCH_GROUP):
                group = plans[start : start + BATCH_GROUP]
                _prefetch(session, group)
                # In the Bundle's order: runs of entries that can be written together, each
                # other entry on its own between them.
                answers: dict[int, Answer] = {}
                run: list[Entry] = []
                for plan in group:
                    if plan.method == "GET":
                        continue
                    if _together(plan):
                        run.append(plan)
                        continue
                    answers |= self.batch_run(session, call, run, ids)
                    run = []
                    answers[plan.index] = self.batch_entry_answer(session, call, plan, ids)
                answers |= self.batch_run(session, call, run, ids)
                for index, answer in answers.items():
                    upload.rejected += answer.status >= 400
                    entries[index] = _entry_json(answer, mode)
            for plan in plans:
                if plan.method == "GET":
                    entries[plan.index] = _entry_json(self.get(call, plan), mode)
                    session.reads.append(mask(plan.url))  # named in the audit entry
            if upload.rejected:
                upload.outcome = "partial" if upload.rejected < len(entries) else "rejected"
            return Answer(200, bundle("batch-response", [entries[p.index] for p in plans]))

        return self.server.write(call, body, catalog, work)

    def batch_run(
        self, session: WriteSession, call: Call, run: list[Entry], ids: dict[str, str]
    ) -> dict[int, Answer]:
        """Consecutive batch entries that can be written together (see :func:`_together`),
        with the result of writing them one after the other: a conditional create is matched
        from the values prefetched for its group, unless an earlier entry of the run writes a
        value it tests (it then runs on its own after the run, and matches that entry). The
        creates and updates are written under one savepoint; when that fails, nothing of it
        stays and each entry runs on its own (and fails alone)."""
        answers: dict[int, Answer] = {}
        plain: list[tuple[Entry, Prepared]] = []
        matched: list[tuple[Entry, LiveRow]] = []
        alone: list[Entry] = []
        written_values: set[tuple[str, str, str]] = set()  # what the run's writes are found by
        written_ids: set[tuple[str, str]] = set()
        for plan in run:
            if plan.condition:
                key = session.single_value(plan.resource_type, plan.condition)
                rows = (
                    []
                    if key is None
                    else session.find(plan.resource_type, plan.condition, lock=True)
                )
                if (
                    key is None
                    or key in written_values
                    or len(rows) > 1
                    or any((plan.resource_type, r.resource_id) in written_ids for r in rows)
                ):
                    alone.append(plan)
                    continue
                if rows:
                    plan.resource_id = rows[0].resource_id
                    matched.append((plan, rows[0]))
                    continue
            problems: list[str] = []
            _rewrite(None, plan.resource, ids, {}, problems)
            if problems or plan.resource is None or plan.table is None:
                alone.append(plan)
                continue
            prepared = session.prepare(plan.resource, plan.table)
            plain.append((plan, prepared))
            written_ids.add((plan.resource_type, plan.resource_id or ""))
            written_values.update(
                (plan.resource_type, v.param, v.value) for v in prepared.index if v.value
            )
        if matched:
            found = self.server.existing_many(session.conn, [r for _, r in matched], call, 200)
            for (plan, _), answer in zip(matched, found, strict=True):
                answers[plan.index] = answer
        if plain:
            mark = session.mark()
            try:
                with session.conn.transaction():  # a savepoint: these entries alone
                    written = session.store_many([prepared for _, prepared in plain])
                    session.finish()
                for (plan, _), one in zip(plain, written, strict=True):
                    answers[plan.index] = self.written_answer(call, plan, one)
            except (WriteRefused, psycopg.Error):
                session.undo(mark)
                alone.extend(plan for plan, _ in plain)
        for plan in sorted(alone, key=lambda p: p.index):
            answers[plan.index] = self.batch_entry_answer(session, call, plan, ids)
        return answers

    def batch_entry_answer(
        self, session: WriteSession, call: Call, plan: Entry, ids: dict[str, str]
    ) -> Answer:
        """One batch entry on its own, under a savepoint: its answer, or its failure counted as
        a rejection."""
        if not plan.report.rejected:
            try:
                with session.conn.transaction():  # a savepoint: this entry alone
                    answer = self.batch_entry(session, call, plan, ids)
                    session.finish()
                return answer
            except WriteRefused as exc:
                session.index = type(session.index)(session.institution_code)
                session.discard()
                plan.report.extend(exc.report)
                reject(session.conn, session.arrival, sorted({i.rule for i in plan.report.errors}))
                return failure(exc.status, exc.report)
        reject(session.conn, session.arrival, sorted({i.rule for i in plan.report.errors}))
        return failure(422, plan.report)

    def batch_entry(
        self, session: WriteSession, call: Call, plan: Entry, ids: dict[str, str]
    ) -> Answer:
        _, matched = self.resolve(session, call, [plan])
        if plan.index not in matched and plan.resource is not None:
            problems: list[str] = []
            _rewrite(session, plan.resource, ids, {}, problems)
            if problems:
                raise _unresolved(problems)
        prepared = (
            {plan.index: session.prepare(plan.resource, plan.table)}
            if plan.resource is not None and plan.table is not None and plan.index not in matched
            else {}
        )
        return self.write_one(session, call, plan, prepared, matched)

    def get(self, call: Call, plan: Entry) -> Answer:
        """A GET entry: read, vread, history or search, answered as its own request would be."""
        url = plan.url
        path, _, query = url.partition("?")
        pairs = parse_qsl(query, keep_blank_values=True)
        parts = path.split("/")
        self_url = f"{call.base}/{url}"
        server = self.server
        if parts == ["_history"]:
            return server.history(call, None, None, pairs, self_url)
        if len(parts) == 1 and parts[0]:
            return server.search(call, parts[0], pairs, self_url)
        if len(parts) == 2 and parts[1] == "_history":
            return server.history(call, parts[0], None, pairs, self_url)
        if len(parts) == 2:
            read = server.read(
                call,
                parts[0],
                parts[1],
                pairs,
                if_none_match=plan.if_none_match,
                if_modified_since=plan.if_modified_since,
            )
            # A read's entry carries the resource (no Location: nothing was written).
            return replace(read, location=None)
        if len(parts) == 3 and parts[2] == "_history":
            return server.history(call, parts[0], parts[1], pairs, self_url)
        if len(parts) == 4 and parts[2] == "_history":
            return server.vread(call, parts[0], parts[1], parts[3], pairs)
        report = Report()
        report.add(Severity.ERROR, REQUEST.id, f"GET {url} is not supported", code="not-supported")
        return failure(400, report)
