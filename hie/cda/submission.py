"""One CDA submission, start to end: validate, normalize, and store the document with its
aggregates and receipt in one transaction, or record the rejection. Used by ``POST /cda`` and by
the backfill command alike."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from hie.audit import Agent, mask, record_read
from hie.auth import Principal
from hie.catalog import Catalog, Table
from hie.config import Settings
from hie.errors import NotFound, PermissionDenied
from hie.ingest import Arrival, reject, store_record
from hie.normalize import NormalizedRecord
from hie.normalize.cda import normalize_cda
from hie.registry import Institution
from hie.storage import Connection, Database
from hie.storage.catalog import CatalogCache
from hie.storage.declarations import institution_and_declaration
from hie.storage.partitions import PartitionMaker
from hie.storage.records import Head, read_version
from hie.storage.uploads import UploadRow, find_receipt, record_upload
from hie.validators import Report, Severity
from hie.validators.access import CUSTODIAN, DOCUMENT_CONFLICT, UNKNOWN_INSTITUTION
from hie.validators.cda import CdaSchema, validate_cda
from hie.validators.cda_rules.catalog import check_declaration
from hie.validators.cda_rules.document import CdaDocument


@dataclass
class CdaReceipt:
    """What the submitter gets back: an HTTP status and a JSON body (a receipt or an
    OperationOutcome)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class CdaPipeline:
    """What a submission needs besides the document: settings, database, schema, partitions."""

    settings: Settings
    database: Database
    schema: CdaSchema | None = None
    partitions: PartitionMaker = field(init=False)

    catalogs: CatalogCache = field(default_factory=CatalogCache)

    def __post_init__(self) -> None:
        self.partitions = PartitionMaker(self.database, self.settings.zone)


def submit_cda(
    pipeline: CdaPipeline,
    body: bytes,
    *,
    principal: Principal | None,
    institution: str | None = None,
    received_at: datetime | None = None,
    content_type: str | None = None,
    channel: str = "cda",
    agent: Agent | None = None,
) -> CdaReceipt:
    """Submit one document for ``institution`` (a submitter's own; an admin's choice, or the
    document's custodian). ``principal`` None means a trusted local caller (the CLI backfill).

    ``received_at`` is the server's clock unless an administrator backfills history.
    """
    acting_for = institution
    if principal is not None and principal.role == "submitter":
        if institution not in (None, principal.institution_code):
            raise PermissionDenied(
                f"a submitter token of {principal.institution_code} cannot act for {institution}"
            )
        acting_for = principal.institution_code
    elif principal is not None:
        principal.require_role("admin")

    with pipeline.database.connection() as conn:
        catalog = pipeline.catalogs.get(conn)
        member, declared = _institution_and_declaration(conn, acting_for)
    result = validate_cda(
        body,
        catalog=catalog,
        kind=member.kind if member else None,
        declared=declared,
        schema=pipeline.schema,
        max_bytes=pipeline.settings.max_request_bytes,
    )
    report, table = result.report, result.table
    record = None
    if not report.rejected and result.tree is not None and table is not None:
        record = normalize_cda(result.tree, table, zone=pipeline.settings.zone)
        custodian = record.institution_code
        if acting_for is None:
            # An administrator backfilling: the document says whose it is, and is checked
            # against that institution's declaration as it would have been at its own upload.
            acting_for = custodian
            with pipeline.database.connection() as conn:
                member, declared = _institution_and_declaration(conn, acting_for)
            if member is not None:
                check_declaration(
                    CdaDocument.of(result.tree), table, report, declared=declared, kind=member.kind
                )
        if member is None:
            report.add(
                Severity.ERROR,
                UNKNOWN_INSTITUTION.id,
                f"institution {custodian!r} (the document's custodian) is not registered",
                code="not-found",
                expression="/ClinicalDocument/custodian",
            )
        elif custodian != acting_for:
            report.add(
                Severity.ERROR,
                CUSTODIAN.id,
                f"the custodian is {custodian!r} but the document is submitted for {acting_for!r}",
                code="security",
                expression="/ClinicalDocument/custodian/assignedCustodian/"
                "representedCustodianOrganization/id/@extension",
            )
    if member is None or acting_for is None:
        # Nobody to count the upload for: answered, not recorded (but audited).
        if agent is not None:
            record_read(pipeline.database, agent, "cda.create", None, status=422)
        return CdaReceipt(422, report.to_operation_outcome())

    moment = received_at or datetime.now(UTC)
    arrival = Arrival(
        acting_for,
        moment,
        moment.astimezone(pipeline.settings.zone).date(),
        uuid.uuid4(),
        principal.token_id if principal else None,
    )
    digest = hashlib.sha256(body).digest()
    upload = _upload_row(arrival, body, digest, content_type, channel)
    pipeline.partitions.ensure_for(moment)
    # Pipeline mode: only the head's insert waits for its answer; the version row, aggregates,
    # receipt and audit entry go out together with the COMMIT (2 round trips, not 7).
    with pipeline.database.transaction(pipelined=True) as tx:
        receipt = _store(tx.conn, arrival, upload, report, record, table, body, digest)
        if agent is not None:
            # In the write's own transaction: the record and its audit entry, or neither.
            agent.record(
                tx.conn,
                "cda.create",
                mask(record.logical_id) if record is not None else None,
                status=receipt.status,
                acting_for=acting_for,
                upload=str(upload.id),
            )
    return receipt


def _store(
    conn: Connection,
    arrival: Arrival,
    upload: UploadRow,
    report: Report,
    record: NormalizedRecord | None,
    table: Table | None,
    body: bytes,
    digest: bytes,
) -> CdaReceipt:
    """Store a validated document, or record why it was refused."""
    if report.rejected or record is None or table is None:
        return _refuse(conn, arrival, upload, report, 422, sorted({i.rule for i in report.errors}))
    stored = store_record(
        conn, arrival, table, record, content_sha256=digest, raw_xml=body, immutable=True
    )
    head = stored.result.head
    if stored.result.status == "created" and head is not None:
        receipt = _receipt(arrival, head, report, replaces=record.replaces)
        upload.outcome, upload.http_status, upload.receipt = "accepted", 201, receipt
        upload.records_written = 1
        record_upload(conn, upload)
        return CdaReceipt(201, receipt, {"Location": f"/cda/{upload.id}"})
    if stored.result.status == "unchanged" and head is not None:
        original = _original_receipt(conn, head)
        upload.outcome, upload.http_status, upload.receipt = "unchanged", 200, original
        record_upload(conn, upload)
        return CdaReceipt(200, original)
    # Same document id, other content: documents are immutable.
    report.add(
        Severity.ERROR,
        DOCUMENT_CONFLICT.id,
        f"document {record.logical_id} is already stored with different content",
        code="conflict",
        expression="/ClinicalDocument/id",
    )
    return _refuse(conn, arrival, upload, report, 409, [DOCUMENT_CONFLICT.id])


def _refuse(
    conn: Connection,
    arrival: Arrival,
    upload: UploadRow,
    report: Report,
    status: int,
    rules: list[str],
) -> CdaReceipt:
    """Record a refused upload and count it as rejected, with the rules that refused it."""
    outcome = report.to_operation_outcome()
    upload.outcome, upload.http_status, upload.receipt = "rejected", status, outcome
    upload.rejected_count = 1
    record_upload(conn, upload)
    reject(conn, arrival, rules)
    return CdaReceipt(status, outcome)


def _institution_and_declaration(
    conn: Connection, code: str | None
) -> tuple[Institution | None, list[str] | None]:
    if code is None:
        return None, None
    try:
        return institution_and_declaration(conn, code)
    except NotFound:
        return None, None


def _upload_row(
    arrival: Arrival, body: bytes, digest: bytes, content_type: str | None, channel: str
) -> UploadRow:
    return UploadRow(
        id=arrival.upload_id,
        received_at=arrival.received_at,
        institution_code=arrival.institution_code,
        channel=channel,
        content_type=content_type,
        byte_size=len(body),
        content_sha256=digest,
        outcome="rejected",
        http_status=None,
        records_written=0,
        rejected_count=0,
        receipt={},
        token_id=arrival.token_id,
    )


def _receipt(
    arrival: Arrival, head: Head, report: Report, *, replaces: str | None
) -> dict[str, Any]:
    receipt: dict[str, Any] = {
        "status": "created",
        "upload": str(arrival.upload_id),
        "record": head.record_id,
        "document": head.logical_id,
        "table": head.table_code,
        "version": head.version,
        "institution": arrival.institution_code,
        "received_at": arrival.received_at.isoformat(),
        "warnings": [i.to_json() for i in report.warnings],
    }
    if replaces:
        receipt["replaces"] = replaces
    return receipt


def _original_receipt(conn: Connection, head: Head) -> dict[str, Any]:
    """The receipt of the upload that stored ``head``: what an idempotent retry gets back."""
    version = read_version(conn, head)
    receipt = find_receipt(conn, version["upload_id"]) if version else None
    if receipt is None:  # stored by a path that kept no receipt: describe the stored version
        receipt = {
            "status": "created",
            "record": head.record_id,
            "document": head.logical_id,
            "table": head.table_code,
            "version": head.version,
            "institution": head.institution_code,
            "received_at": head.received_at.isoformat(),
            "warnings": [],
        }
    return receipt


def store_attached_cda(
    conn: Connection, arrival: Arrival, catalog: Catalog, data: bytes, *, zone: tzinfo
) -> tuple[Report, str | None]:
    """Store a CDA document that came inside another upload (an IHE MHD DocumentReference), in the
    caller's transaction and under the caller's arrival. Returns the report and the write status
    (None when the document was refused)."""
    result = validate_cda(data, catalog=catalog)
    report = result.report
    if report.rejected or result.tree is None or result.table is None:
        return report, None
    record = normalize_cda(result.tree, result.table, zone=zone)
    if record.institution_code != arrival.institution_code:
        report.add(
            Severity.ERROR,
            CUSTODIAN.id,
            f"the attached document's custodian is {record.institution_code!r} but it is "
            f"submitted for {arrival.institution_code!r}",
            code="security",
        )
        return report, None
    stored = store_record(
        conn,
        arrival,
        result.table,
        record,
        content_sha256=hashlib.sha256(data).digest(),
        raw_xml=data,
        immutable=True,
    )
    if stored.result.status == "conflict":
        report.add(
            Severity.ERROR,
            DOCUMENT_CONFLICT.id,
            f"document {record.logical_id} is already stored with different content",
            code="conflict",
        )
    return report, stored.result.status
