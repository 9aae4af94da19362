"""The writes of one FHIR request, inside the caller's transaction.

A session turns validated resources into record versions through ``hie.ingest.store_record``
(so the report's aggregates are kept exactly as for CDA), keeps the search index in step, and
resolves conditions (ifNoneExist, conditional update, conditional references) under a lock that
makes concurrent identical requests see each other's result instead of creating duplicates.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from hie.catalog import Catalog, Table
from hie.cda.submission import store_attached_cda
from hie.fhir.content import content_hash, stored_form
from hie.fhir.parameters import index_rows
from hie.fhir.rules import PRECONDITION, REQUEST
from hie.fhir.search import SearchError, parse_search
from hie.ingest import Arrival, store_record
from hie.normalize import NormalizedRecord
from hie.normalize.fhir import canonical_identifiers, normalize_resource
from hie.storage import Connection
from hie.storage.fhir import IndexValue, IndexWriter, lock_condition
from hie.storage.records import get_head
from hie.storage.search import LiveRow, search
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
    index: list[IndexValue]


def prepare(resource: dict[str, Any], table: Table, zone: ZoneInfo) -> Prepared:
    """Stored form, normalized record and index values of a validated resource that has its
    final id and references. Pure: callers do it before the transaction when they can."""
    stored = canonical_identifiers(stored_form(resource))
    values = [
        IndexValue(r.param, r.system, r.value, r.low, r.high) for r in index_rows(stored, zone)
    ]
    record = normalize_resource(stored, table)
    return Prepared(stored, table, record, content_hash(stored), values)


def new_id() -> str:
    return str(uuid.uuid4())


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

    def __post_init__(self) -> None:
        self.index = IndexWriter(self.arrival.institution_code)

    @property
    def institution_code(self) -> str:
        return self.arrival.institution_code

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
            self.index.put(
                LiveRow(resource_type, resource_id, head.version, head.received_at, head.record_id),
                prepared.index,
            )
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
        self.touched.append(logical_id)
        return Written(
            "deleted", resource_type, resource_id, new_head.version, new_head.received_at, None
        )

    def find(self, resource_type: str, condition: str, *, lock: bool) -> list[LiveRow]:
        """The live resources matching a condition (a search query string), at most two.

        With ``lock``, identical conditions of concurrent requests are serialised until commit
        first, so a conditional create either sees the other's resource or is the only creator.
        """
        self.index.flush(self.conn)  # earlier writes of this request are matched too
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
        if lock:
            canonical = "&".join(f"{k}={v}" for k, v in sorted(pairs))
            lock_condition(self.conn, self.institution_code, f"{resource_type}?{canonical}")
        parsed.query.count, parsed.query.offset, parsed.query.sort = 2, 0, []
        return search(self.conn, parsed.query)

    def finish(self) -> None:
        """Write the index changes gathered so far (before the commit, and before searching)."""
        self.index.flush(self.conn)
