"""What every FHIR interaction shares: the catalog and declaration a request is checked against,
the body read (or refused), and the write transaction that stores the versions, the index rows
and the upload's receipt together, retried after a deadlock. A refused write is recorded too:
its upload row and one rejection per resource in it."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from hie.catalog import Catalog
from hie.config import Settings
from hie.fhir.access import Scope
from hie.fhir.calls import Body, Call, read_body
from hie.fhir.responses import Answer, failure, resource_answer
from hie.fhir.rules import REQUEST
from hie.fhir.session import WriteRefused, WriteSession
from hie.ingest import Arrival, reject
from hie.storage import Connection, Database
from hie.storage.catalog import CatalogCache
from hie.storage.declarations import institution_and_declaration
from hie.storage.fhir import load_resources
from hie.storage.partitions import PartitionMaker
from hie.storage.search import LiveRow
from hie.storage.statistics import MIN_CHANGED, analyze_if_stale
from hie.storage.uploads import UploadRow, record_upload
from hie.validators import Report, Severity

# At most this many ids are named in one audit entry (a transaction Bundle may hold thousands).
AUDITED_IDS = 1000

# Retries of a write transaction that PostgreSQL aborted to break a deadlock between
# concurrent transactions touching the same resources in different orders.
RETRIES = 3


@dataclass
class Upload:
    """What the upload row of a write request says, filled in as the request goes."""

    body: bytes
    outcome: str = "accepted"
    status: int = 200
    written: int = 0
    rejected: int = 0


def request_error(rule: str, message: str, code: str = "invalid") -> Report:
    """A report holding the one error that refuses a request."""
    report = Report()
    report.add(Severity.ERROR, rule, message, code=code)
    return report


class Transactions:
    """The settings, database, partitions and catalogs the interactions run on."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.partitions = PartitionMaker(database, settings.zone)
        self.catalogs = CatalogCache()

    def context(self, scope: Scope) -> tuple[Catalog, list[str] | None]:
        with self.database.connection() as conn:
            return self.catalogs.get(conn), institution_and_declaration(
                conn, scope.institution_code
            )[1]

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

    def audit(
        self,
        conn: Connection,
        call: Call,
        status: int,
        touched: list[str],
        reads: list[str] | None = None,
    ) -> None:
        """The request's audit entry, in the transaction of the write it records."""
        if call.agent is None:
            return
        detail: dict[str, Any] = {"acting_for": call.scope.institution_code}
        if call.query:
            detail["query"] = call.query
        if len(touched) > 1:
            detail["entities"] = touched[:AUDITED_IDS]
            detail["entity_count"] = len(touched)
        if reads:
            detail["reads"] = reads[:AUDITED_IDS]
        target = touched[0] if len(touched) == 1 else call.target
        call.agent.record(conn, call.action, target, status=status, **detail)

    def rejected(self, call: Call, answer: Answer, body: bytes, rules: list[list[str]]) -> Answer:
        """Record a refused write: its upload row, and one rejection per resource in it."""
        arrival = self.arrival(call.scope)
        self.partitions.ensure_for(arrival.received_at)
        with self.database.transaction() as tx:
            self.record_rejected(tx.conn, call, arrival, answer, body, rules)
        return answer

    def record_rejected(
        self,
        conn: Connection,
        call: Call,
        arrival: Arrival,
        answer: Answer,
        body: bytes,
        rules: list[list[str]],
    ) -> None:
        """:meth:`rejected` in the caller's transaction."""
        upload = Upload(body, "rejected", answer.status, 0, max(1, len(rules)))
        record_upload(conn, self.upload_row(call, arrival, upload, answer.body or {}))
        for resource_rules in rules or [[]]:
            reject(conn, arrival, resource_rules or [REQUEST.id])
        self.audit(conn, call, answer.status, [])

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
                with self.database.transaction(pipelined=True) as tx:
                    session = WriteSession(
                        tx.conn,
                        arrival,
                        catalog,
                        self.settings.zone,
                        check_references=self.settings.enforce_referential_integrity_on_write,
                        check_referrers=self.settings.enforce_referential_integrity_on_delete,
                    )
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
                    # Last, so the segment's head is locked only until the commit just after.
                    self.audit(tx.conn, call, answer.status, session.touched, session.reads)
                if session.written >= MIN_CHANGED:
                    # A bulk load can outgrow the planner's statistics at once (on a fresh
                    # database, from none): refresh them before the next request plans on them.
                    analyze_if_stale(
                        self.database,
                        {
                            "fhir_resource": session.written,
                            "record_head": session.written,
                            "fhir_search_index": session.index_rows,
                        },
                    )
                return answer
            except WriteRefused as exc:
                return self.refused(call, exc.status, exc.report, body, resources)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                if attempt == RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def read_body(self, call: Call, body: bytes) -> Body:
        return read_body(call, body, max_bytes=self.settings.max_request_bytes)

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
            return read, self.refused(call, 400, request_error(REQUEST.id, message), body)
        return read, None

    def existing(self, conn: Connection, row: LiveRow, call: Call, status: int) -> Answer:
        """The answer to a write that found its resource already stored (a condition matched)."""
        return self.existing_many(conn, [row], call, status)[0]

    def existing_many(
        self, conn: Connection, rows: list[LiveRow], call: Call, status: int
    ) -> list[Answer]:
        """:meth:`existing` of many matched resources, read in one query."""
        resources = load_resources(conn, rows)
        return [
            resource_answer(
                status,
                resources.get(row.record_id) or {},
                row.version,
                row.last_updated,
                prefs=call.prefs,
                base=call.base,
            )
            for row in rows
        ]
