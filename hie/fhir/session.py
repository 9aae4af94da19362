"""The writes of one FHIR request, inside the caller's transaction.

A session turns validated resources into record versions through ``hie.ingest.store_record``
(so the report's aggregates are kept exactly as for CDA), keeps the search index in step, and
resolves conditions (ifNoneExist, conditional update, conditional references) under a lock that
makes concurrent identical requests see each other's result instead of creating duplicates.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from hie.catalog import Catalog, Table
from hie.cda.submission import store_attached_cda
from hie.fhir.content import content_hash, stored_form
from hie.fhir.integrity import NAMED_REFERRERS, Reference, references_of, referring_path
from hie.fhir.parameters import index_rows
from hie.fhir.rules import INTEGRITY, PRECONDITION, REFERENCED, REQUEST
from hie.fhir.search import ParsedSearch, SearchError, parse_search
from hie.ingest import Arrival, Incoming, Stored, store_record, store_records
from hie.normalize import NormalizedRecord
from hie.normalize.fhir import canonical_identifiers, normalize_resource
from hie.storage import Connection
from hie.storage.fhir import IndexValue, IndexWriter, lock_conditions
from hie.storage.records import get_head
from hie.storage.references import missing, referrers
from hie.storage.search import LiveRow, TokenMatch, ValueCriterion, lookup_values, search
from hie.validators import Report, Severity
from hie.validators.fhir_rules.attachments import cda_attachment

DELETED_HASH = content_hash({"deleted": True})


class WriteRefused(Exception):
    """A write the request cannot make (HTTP ``status``); the transaction is rolled back."""

    def __init__(self, status: int, report: Report) -> None:
        super().__init__(status, report)
        self.status = status
        self.report = report


def refuse(
    status: int, rule: str, message: str, *, code: str, expression: str | None = None
) -> WriteRefused:
    report = Report()
    report.add(Severity.ERROR, rule, message, code=code, expression=expression)
    return WriteRefused(status, report)


@dataclass(frozen=True)
class Written:
    """What a write did: created, updated, unchanged (nothing written), deleted, or matched (a
    conditional create found the resource already there)."""

    status: str
    resource_type: str
    resource_id: str
    version: int
    last_updated: datetime
    resource: dict[str, Any] | None

    @property
    def logical_id(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


@dataclass
class Prepared:
    """A validated resource in its stored form, normalized and indexed, ready to be written."""

    resource: dict[str, Any]
    table: Table
    record: NormalizedRecord
    sha256: bytes
    index: Sequence[IndexValue]


def prepare(resource: dict[str, Any], table: Table, zone: ZoneInfo) -> Prepared:
    """Stored form, normalized record and index values of a validated resource that has its
    final id and references. Pure: callers do it before the transaction when they can."""
    stored = canonical_identifiers(stored_form(resource))
    values = index_rows(stored, zone)
    record = normalize_resource(stored, table)
    return Prepared(stored, table, record, content_hash(stored), values)


def new_id() -> str:
    return str(uuid.uuid4())


# (type, parameter, value): a token or reference value looked up in bulk (WriteSession.prefetch).
ValueKey = tuple[str, str, str]


def _single_value(parsed: ParsedSearch) -> tuple[str, TokenMatch] | None:
    """The parameter and value of a condition that tests one value of one parameter
    (``identifier=system|value``, the shape of nearly every condition), else None."""
    query = parsed.query
    if query.ids is not None or query.last_updated or len(query.criteria) != 1:
        return None
    criterion = query.criteria[0]
    if not isinstance(criterion, ValueCriterion) or len(criterion.matches) != 1:
        return None
    match = criterion.matches[0]
    if match.code is None or match.system_given:
        return None
    return criterion.param, match


@dataclass
class WriteSession:
    conn: Connection
    arrival: Arrival
    catalog: Catalog
    zone: ZoneInfo
    persons: dict[str, str | None] = field(default_factory=dict)
    written: int = 0
    unchanged: int = 0
    # Logical ids this request wrote, deleted or matched, for its audit entry.
    touched: list[str] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)  # GET entries of a Bundle, masked
    index_rows: int = 0  # search-index rows written (for the statistics check after commit)
    # Referential integrity (hie/fhir/integrity.py), checked by finish() over what was written.
    check_references: bool = False
    check_referrers: bool = False

    def __post_init__(self) -> None:
        self.index = IndexWriter(self.arrival.institution_code)
        # Conditions already locked in this transaction (their canonical form).
        self._locked: set[str] = set()
        # Values looked up in bulk, with the (system, live resource) having each, kept current
        # as this request writes, so later entries see what earlier entries created.
        self._known: dict[ValueKey, list[tuple[str | None, LiveRow]]] = {}
        self._known_of: dict[tuple[str, str], set[ValueKey]] = {}
        # Written since the last finish(): references to check, and deleted resources.
        self._references: list[Reference] = []
        self._deleted: list[str] = []

    @property
    def institution_code(self) -> str:
        return self.arrival.institution_code

    def mark(self) -> tuple[int, int, int, int]:
        """Where this request stands, for :meth:`undo` after a savepoint is rolled back."""
        return self.written, self.unchanged, len(self.touched), self.index_rows

    def undo(self, mark: tuple[int, int, int, int]) -> None:
        """Forget what was done since ``mark`` (its savepoint was rolled back): the counts, the
        touched ids, the unwritten index changes and the looked-up values (read again)."""
        self.written, self.unchanged, touched, self.index_rows = mark
        del self.touched[touched:]
        self.index = IndexWriter(self.arrival.institution_code)
        self._known.clear()
        self._known_of.clear()
        self.discard()

    def prepare(self, resource: dict[str, Any], table: Table) -> Prepared:
        return self.adopt(prepare(resource, table, self.zone))

    def adopt(self, prepared: Prepared) -> Prepared:
        """Take a prepared resource into this request. Patients are remembered, so that a
        Condition in the same request counts for its person even when it is written first."""
        record = prepared.record
        if prepared.resource["resourceType"] == "Patient":
            self.persons[record.logical_id] = record.patient.person_key if record.patient else None
        return prepared

    def store(self, prepared: Prepared, *, if_match: int | None = None) -> Written:
        resource = prepared.resource
        attached = cda_attachment(resource)
        if attached:
            # MHD: the CDA document is stored and counted with the DocumentReference, or neither.
            report, status = store_attached_cda(
                self.conn, self.arrival, self.catalog, attached, zone=self.zone
            )
            if report.rejected:
                raise WriteRefused(409 if status == "conflict" else 422, report)
        stored = store_record(
            self.conn,
            self.arrival,
            prepared.table,
            prepared.record,
            content_sha256=prepared.sha256,
            resource=resource,
            immutable=False,
            if_match=if_match,
            persons_in_upload=self.persons,
        )
        return self._stored(prepared, stored, if_match)

    def store_many(
        self, prepared: list[Prepared], upload_ids: Sequence[uuid.UUID] | None = None
    ) -> list[Written]:
        """:meth:`store` of many resources (no If-Match), in a few statements whatever their
        number; a resource carrying a CDA document is stored on its own. ``upload_ids``: the
        upload each resource came in, when each is one of its own (a bulk job's lines; those
        carry no CDA document)."""
        written: list[Written | None] = [None] * len(prepared)
        plain = [i for i, p in enumerate(prepared) if not cda_attachment(p.resource)]
        stored = store_records(
            self.conn,
            self.arrival,
            [
                Incoming(
                    prepared[i].table,
                    prepared[i].record,
                    prepared[i].sha256,
                    resource=prepared[i].resource,
                    upload_id=upload_ids[i] if upload_ids is not None else None,
                )
                for i in plain
            ],
            immutable=False,
            persons_in_upload=self.persons,
        )
        for position, one in zip(plain, stored, strict=True):
            written[position] = self._stored(prepared[position], one, None)
        return [
            w if w is not None else self.store(p) for w, p in zip(written, prepared, strict=True)
        ]

    def _stored(self, prepared: Prepared, stored: Stored, if_match: int | None) -> Written:
        resource = prepared.resource
        result, head = stored.result, stored.result.head
        if result.status == "precondition-failed" or head is None:
            current = f"the current version is {head.version}" if head else "it does not exist"
            raise refuse(
                412,
                PRECONDITION.id,
                f"If-Match version {if_match} of {prepared.record.logical_id} failed: {current}",
                code="conflict",
            )
        resource_type, resource_id = resource["resourceType"], resource["id"]
        if result.written:
            self.written += 1
            row = LiveRow(
                resource_type, resource_id, head.version, head.received_at, head.record_id
            )
            self.index.put(row, prepared.index)
            self.index_rows += len(prepared.index)
            self._note(resource_type, resource_id, row, prepared.index)
            if self.check_references:
                self._references.extend(references_of(resource))
        else:
            self.unchanged += 1
        self.touched.append(f"{resource_type}/{resource_id}")
        return Written(
            result.status, resource_type, resource_id, head.version, head.received_at, resource
        )

    def delete(
        self, resource_type: str, resource_id: str, *, if_match: int | None = None
    ) -> Written | None:
        """Write a deleted version; None when there is nothing (live) to delete."""
        logical_id = f"{resource_type}/{resource_id}"
        head = get_head(self.conn, self.institution_code, logical_id)
        if head is None or head.deleted:
            return None
        table = self.catalog.get(head.table_code) or Table(head.table_code, "", "", "")
        record = NormalizedRecord(kind="fhir", table_code=table.code, logical_id=logical_id)
        stored = store_record(
            self.conn,
            self.arrival,
            table,
            record,
            content_sha256=DELETED_HASH,
            immutable=False,
            if_match=if_match,
            deleted=True,
        )
        result, new_head = stored.result, stored.result.head
        if result.status == "precondition-failed" or new_head is None:
            raise refuse(412, PRECONDITION.id, f"If-Match failed for {logical_id}", code="conflict")
        if result.written:
            self.written += 1
            self.index.remove(resource_type, resource_id)
            self._note(resource_type, resource_id, None, [])
            if self.check_referrers:
                self._deleted.append(logical_id)
        self.touched.append(logical_id)
        return Written(
            "deleted", resource_type, resource_id, new_head.version, new_head.received_at, None
        )

    def _note(
        self,
        resource_type: str,
        resource_id: str,
        row: LiveRow | None,
        values: Sequence[IndexValue],
    ) -> None:
        """Keep the looked-up values current after this request wrote (or deleted) a resource."""
        if not self._known:
            return
        owner = (resource_type, resource_id)
        for key in self._known_of.pop(owner, set()):
            self._known[key] = [f for f in self._known[key] if f[1].resource_id != resource_id]
        if row is None:
            return
        for value in values:
            if value.value is None:
                continue
            key = (resource_type, value.param, value.value)
            if key in self._known:
                self._known[key].append((value.system, row))
                self._known_of.setdefault(owner, set()).add(key)

    def _parse(self, resource_type: str, condition: str) -> tuple[str, ParsedSearch]:
        """The canonical form of a condition (the key of its lock) and the search it stands for."""
        pairs = parse_qsl(condition, keep_blank_values=True)
        if not pairs:
            raise refuse(400, REQUEST.id, f"empty condition for {resource_type}", code="invalid")
        try:
            parsed = parse_search(
                resource_type, pairs, institution_code=self.institution_code, zone=self.zone
            )
        except SearchError as exc:
            raise refuse(
                400, REQUEST.id, f"condition {condition!r}: {exc}", code="invalid"
            ) from exc
        if parsed.unknown:
            # An ignored parameter would widen the match: refuse, as HAPI does for conditions.
            raise refuse(
                400, REQUEST.id, f"condition {condition!r}: {parsed.unknown[0]}", code="invalid"
            )
        canonical = "&".join(f"{k}={v}" for k, v in sorted(pairs))
        return f"{resource_type}?{canonical}", parsed

    def single_value(self, resource_type: str, condition: str) -> ValueKey | None:
        """(type, parameter, value) of a condition testing one value of one parameter (what
        :meth:`prefetch` looks up in bulk); None for any other condition (or a bad one)."""
        try:
            parsed = self._parse(resource_type, condition)[1]
        except WriteRefused:
            return None
        single = _single_value(parsed)
        return None if single is None else (resource_type, single[0], single[1].code or "")

    def prefetch(self, conditions: Iterable[tuple[str, str]], *, lock: bool) -> None:
        """Resolve many conditions ((type, query) pairs) at once, before the entries that carry
        them: every lock in one statement (in a fixed order, so concurrent requests cannot
        deadlock on them), and one lookup per (type, parameter) for the single-value conditions.
        :meth:`find` then answers them from memory. A condition that does not parse is left for
        :meth:`find` to refuse, on its own entry."""
        keys: set[str] = set()
        wanted: dict[tuple[str, str], set[str]] = {}
        for resource_type, condition in conditions:
            try:
                key, parsed = self._parse(resource_type, condition)
            except WriteRefused:
                continue
            keys.add(key)
            single = _single_value(parsed)
            if single is not None:
                param, match = single
                if (resource_type, param, match.code or "") not in self._known:
                    wanted.setdefault((resource_type, param), set()).add(match.code or "")
        if lock and keys - self._locked:
            lock_conditions(self.conn, self.institution_code, sorted(keys - self._locked))
            self._locked |= keys
        if not wanted:
            return
        self.index.flush(self.conn)  # earlier writes of this request are matched too
        for (resource_type, param), values in sorted(wanted.items()):
            for value in values:
                self._known[(resource_type, param, value)] = []
            for value, system, row in lookup_values(
                self.conn, self.institution_code, resource_type, param, sorted(values)
            ):
                found = (resource_type, param, value)
                self._known[found].append((system, row))
                self._known_of.setdefault((resource_type, row.resource_id), set()).add(found)

    def find(
        self, resource_type: str, condition: str, *, lock: bool, limit: int = 2
    ) -> list[LiveRow]:
        """The live resources matching a condition (a search query string), at most ``limit``
        (two tell a single match from several; a multiple delete asks for more).

        With ``lock``, identical conditions of concurrent requests are serialised until commit
        first, so a conditional create either sees the other's resource or is the only creator.
        """
        key, parsed = self._parse(resource_type, condition)
        fresh = False
        if lock and key not in self._locked:
            lock_conditions(self.conn, self.institution_code, [key])
            self._locked.add(key)
            fresh = True  # a value looked up before the lock may be out of date
        single = _single_value(parsed)
        if single is not None and not fresh:
            param, match = single
            known = self._known.get((resource_type, param, match.code or ""))
            if known is not None:
                found: dict[str, LiveRow] = {}
                for system, row in known:
                    if match.system is None or system == match.system:
                        found.setdefault(row.resource_id, row)
                ordered = sorted(found.values(), key=lambda r: (r.last_updated, r.resource_id))
                return ordered[:limit]
        self.index.flush(self.conn)  # earlier writes of this request are matched too
        parsed.query.count, parsed.query.offset, parsed.query.sort = limit, 0, []
        return search(self.conn, parsed.query)

    def finish(self) -> None:
        """Write the index changes gathered so far (before the commit, and before searching),
        then check referential integrity over everything written since the last call: once
        all of a transaction is written, so its entries may refer to each other in any order."""
        self.index.flush(self.conn)
        references, deleted = self._references, self._deleted
        self.discard()
        report = Report()
        if references:
            absent = missing(
                self.conn, self.institution_code, sorted({r.target for r in references})
            )
            for reference in dict.fromkeys(r for r in references if r.target in absent):
                report.add(
                    Severity.ERROR,
                    INTEGRITY.id,
                    f"Resource {reference.target} not found, specified in path: {reference.path}",
                    code="processing",
                    expression=reference.path,
                )
        if deleted:
            named: set[tuple[str, str, str]] = set()
            for found in referrers(self.conn, self.institution_code, deleted, NAMED_REFERRERS):
                key = (found.target, found.resource_type, found.resource_id)
                if key in named:  # one issue per referrer, whichever parameters name it
                    continue
                named.add(key)
                report.add(
                    Severity.ERROR,
                    REFERENCED.id,
                    f"Unable to delete {found.target} because at least one resource has a "
                    f"reference to this resource. First reference found was resource "
                    f"{found.resource_type}/{found.resource_id} in path "
                    f"{referring_path(found.resource_type, found.param)}",
                    code="processing",
                )
        if report.issues:
            # A missing target is the client's error (400); a referred-to delete a conflict.
            dangling = any(i.rule == INTEGRITY.id for i in report.issues)
            raise WriteRefused(400 if dangling else 409, report)

    def discard(self) -> None:
        """Forget the integrity checks pending (a batch entry rolled back to its savepoint)."""
        self._references, self._deleted = [], []
