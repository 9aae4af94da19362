"""Many single-resource writes stored together: the lines of a bulk ``$import`` range.

Each line is a create (or an update, when it names an id) checked exactly as
``POST <Type>`` / ``PUT <Type>/<id>`` checks its body (:func:`check`, CPU only, before any
transaction). :func:`write_lines` then stores the valid lines of a range in one transaction,
the way a batch Bundle writes a group of entries (``WriteSession.store_many``), and records
every line as the synchronous request would have: its upload row and receipt, its audit entry,
its rejection counted (a refused line), its event and its person-index link (a stored one).

The caller claims the lines in that same transaction (``claim``) before anything is written, so
that a second delivery of the same range finds them claimed and writes nothing; ``settle``
records each line's outcome before the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hie.catalog import Catalog
from hie.fhir.calls import Call
from hie.fhir.responses import Answer, failure, resource_answer
from hie.fhir.rules import REQUEST
from hie.fhir.session import Prepared, WriteSession, new_id, prepare
from hie.fhir.transactions import Transactions, Upload, request_error
from hie.storage import Connection
from hie.storage.statistics import MIN_CHANGED, analyze_if_stale
from hie.storage.uploads import record_upload
from hie.validators import Report
from hie.validators.fhir import validate_resource
from hie.validators.fhir_rules.attachments import cda_attachment


@dataclass
class Line:
    """One line to store: ``resource_id`` makes it an update (``PUT <Type>/<id>``)."""

    key: int
    call: Call
    body: bytes
    resource_type: str
    resource_id: str | None = None


@dataclass
class Checked:
    """A line checked: ``prepared`` when valid, else the ``refusal`` it is answered with (and
    ``counted``: recorded as a refused upload, as the synchronous endpoint records it)."""

    line: Line
    prepared: Prepared | None = None
    report: Report = field(default_factory=Report)
    refusal: Answer | None = None
    counted: bool = True

    @property
    def rules(self) -> list[str]:
        return sorted({i.rule for i in self.report.errors})


def refused_line(line: Line, answer: Answer) -> Checked:
    """A line refused before it was read as a resource, and not counted (a type not served)."""
    return Checked(line, refusal=answer, counted=False)


def check(
    server: Transactions, line: Line, catalog: Catalog, declared: list[str] | None
) -> Checked:
    """Read and validate a line as ``writes.create`` / ``writes.update`` do its body."""
    call, body = line.call, line.body
    read = server.read_body(call, body)
    resource = read.resource
    if resource is None:
        return Checked(line, report=read.report, refusal=failure(400, read.report))
    if resource.get("resourceType") != line.resource_type:
        message = f"the body is a {resource.get('resourceType')}, the URL says {line.resource_type}"
        report = request_error(REQUEST.id, message)
        return Checked(line, report=report, refusal=failure(400, report))
    if line.resource_id is None:
        resource = {**resource, "id": new_id()}  # a create ignores any id the client sent
    elif resource.get("id") != line.resource_id:
        message = f"the body's id {resource.get('id')!r} is not the URL's id {line.resource_id!r}"
        report = request_error(REQUEST.id, message)
        return Checked(line, report=report, refusal=failure(400, report))
    result = validate_resource(resource, catalog=catalog, declared=declared)
    report = read.checked(result.report)
    if report.rejected or result.table is None:
        return Checked(line, report=report, refusal=failure(422, report))
    return Checked(line, prepare(resource, result.table, server.settings.zone), report)


def together(checked: Checked) -> bool:
    """Whether a checked line can be written with others: not a resource carrying a CDA
    document (stored and counted with it, on its own path)."""
    return checked.prepared is None or not cda_attachment(checked.prepared.resource)


def write_lines(
    server: Transactions,
    catalog: Catalog,
    lines: list[Checked],
    *,
    claim: Callable[[Connection, Mapping[int, bool]], set[int]],
    settle: Callable[[Connection, Mapping[int, Answer]], None],
) -> dict[int, Answer]:
    """Store ``lines`` (all :func:`together`, of one scope) in one transaction; the answer of
    each line claimed. ``claim`` gets each line's key and whether it is to be stored, and
    returns the keys this transaction may work (the others are left alone). Any exception
    rolls all of it back, claims included."""
    if not lines:
        return {}
    arrival = server.arrival(lines[0].line.call.scope)
    server.partitions.ensure_for(arrival.received_at)
    answers: dict[int, Answer] = {}
    with server.database.transaction(pipelined=True) as tx:
        conn = tx.conn
        mine = claim(conn, {c.line.key: c.prepared is not None for c in lines})
        lines = [c for c in lines if c.line.key in mine]
        uploads = {c.line.key: uuid.uuid4() for c in lines}
        session = WriteSession(
            conn,
            arrival,
            catalog,
            server.settings.zone,
            check_references=server.settings.enforce_referential_integrity_on_write,
            check_referrers=server.settings.enforce_referential_integrity_on_delete,
        )
        valid = [c for c in lines if c.prepared is not None]
        written = session.store_many(
            [c.prepared for c in valid if c.prepared is not None],
            [uploads[c.line.key] for c in valid],
        )
        session.finish()
        stored = {c.line.key: w for c, w in zip(valid, written, strict=True)}
        # Each line's receipt and audit entry, in the order of the lines.
        for checked in lines:
            line, call = checked.line, checked.line.call
            own = replace(arrival, upload_id=uploads[line.key])
            if checked.refusal is not None:
                answers[line.key] = checked.refusal
                if checked.counted:
                    server.record_rejected(
                        conn, call, own, checked.refusal, line.body, [checked.rules]
                    )
                continue
            one = stored[line.key]
            created = line.resource_id is None or one.status == "created"
            answer = resource_answer(
                201 if created else 200,
                one.resource or {},
                one.version,
                one.last_updated,
                prefs=call.prefs,
                base=call.base,
                report=checked.report,
                write=True,
            )
            answers[line.key] = answer
            changed = one.status != "unchanged"
            receipt: dict[str, Any] = {
                "status": answer.status,
                "written": int(changed),
                "unchanged": int(not changed),
                "rejected": 0,
                "location": answer.location,
            }
            outcome = "accepted" if changed else "unchanged"
            upload = Upload(line.body, outcome, answer.status, int(changed))
            record_upload(conn, server.upload_row(call, own, upload, receipt))
            server.audit(conn, call, answer.status, [one.logical_id])
        settle(conn, answers)
    if session.written >= MIN_CHANGED:
        analyze_if_stale(
            server.database,
            {
                "fhir_resource": session.written,
                "record_head": session.written,
                "fhir_search_index": session.index_rows,
            },
        )
    return answers
