"""Working a job: split its stored body into items, then store them so that each is validated,
normalized, counted, audited and receipted as the synchronous upload of it would be.

NDJSON lines are checked one by one and the range a task holds is written in one transaction
(``hie.fhir.imports``, the way a batch Bundle writes a group of entries), each line keeping its
own upload row, audit entry, event and person link. Zip entries (CDA documents), a line that
cannot join a group, a group that failed for one of its lines, and a range that comes back after
its worker died go one by one through the very path a synchronous upload takes (``FhirServer``
for a line, ``submit_cda`` for a zip entry).

Exactly once: an item's state moves out of ``pending`` inside the transaction that stores its
record (a group claims its items first; one by one, :class:`ItemAgent` claims the item when the
write path records its audit entry, the last statement before the commit). A second delivery of
the same item finds it claimed and writes nothing (or rolls its own work back). Errors: the
transient ones (the database unreachable) propagate, for the caller to retry later; any other
exception is the item's own fault: it is recorded as failed, with its reason, and the rest of
the job goes on.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg

from hie.audit import Agent
from hie.auth import Principal
from hie.catalog import Catalog
from hie.cda.submission import CdaPipeline, submit_cda
from hie.config import Settings
from hie.errors import HieError
from hie.fhir.access import Scope
from hie.fhir.calls import Call
from hie.fhir.imports import Checked, Line, check, refused_line, together, write_lines
from hie.fhir.responses import FHIR_JSON, Answer, Preferences
from hie.fhir.server import FhirServer, supported_types
from hie.jobs.split import ChunkReader, Limits, ndjson_items, zip_items
from hie.outcome import OutcomeIssue, operation_outcome
from hie.storage import Connection, Database
from hie.storage.jobs import (
    CHUNK_BYTES,
    Item,
    Job,
    add_items,
    chunks,
    claim_item,
    claim_items,
    clear_items,
    count_attempt,
    describe_items,
    finish_if_done,
    get_job,
    pending_items,
    pending_ranges,
    read_chunk,
    set_state,
    settle_items,
    touch,
)
from hie.validators.cda import CdaSchema
from hie.workers.runtime import TRANSIENT

log = logging.getLogger(__name__)

# Items per task: small enough that a redelivered task redoes little, large enough that the
# messages stay few (500 for 100,000 lines).
ITEMS_PER_TASK = 200
# An item whose processing has started this many times without an outcome keeps killing its
# worker (memory, a crash in a library): it is set aside as failed. (Celery workers leave
# that to the quorum queue's delivery limit and the dead letters: hie.workers.ingest.)
MAX_ATTEMPTS = 3

# Errors after which a run of lines written together is worked again one line at a time.
RERUN = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)

FAILED = "bulk.item.error"
CRASHED = "bulk.item.crashed"
UNSUPPORTED = "bulk.item.type"

_RESOURCE_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class Unsplittable(Exception):
    """The stored body cannot be split into items (a zip that is no zip)."""


class ItemTaken(Exception):
    """Another delivery of this item stored it first: this attempt's work is rolled back."""


@dataclass(frozen=True)
class JobAgent(Agent):
    """The job's submitter in the audit trail: each entry names the job."""

    job_id: UUID | None = None

    def record(
        self,
        conn: Connection,
        action: str,
        target: str | None,
        *,
        status: int = 200,
        wait: bool = True,
        **detail: Any,
    ) -> None:
        super().record(
            conn, action, target, status=status, wait=wait, job=str(self.job_id), **detail
        )


@dataclass(frozen=True)
class ItemAgent(JobAgent):
    """:class:`JobAgent` of one item, and the hook that claims the item in the write's own
    transaction (the write path records its audit entry last, just before the commit)."""

    seq: int = 0
    claims: list[int] = field(default_factory=list, compare=False)

    def record(
        self,
        conn: Connection,
        action: str,
        target: str | None,
        *,
        status: int = 200,
        wait: bool = True,
        **detail: Any,
    ) -> None:
        in_write = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        if self.job_id is not None and in_write and "acting_for" in detail:
            # The job's bytes were committed before its 202: an item's commit need not wait
            # for the disk. Lost in a crash of PostgreSQL, the record and the item's claim go
            # together (one transaction), and the item is simply worked again.
            conn.execute("set local synchronous_commit = off")
            state = "accepted" if status < 300 else "rejected"
            if not claim_item(conn, self.job_id, self.seq, state, status):
                raise ItemTaken
            self.claims.append(self.seq)
        super().record(conn, action, target, status=status, wait=wait, **detail)


@dataclass
class Processed:
    """What one range of items did."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    finished: bool = False


class JobProcessor:
    """The write path a worker process (or ``hie serve``'s job thread) stores items with."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        # Lines of an NDJSON arrive in any order (bulk data files come one per type, and the
        # Observations' file may precede the Patients'), as in `hie ingest`: the referential
        # integrity check of writes is off, as a bulk load into HAPI is run with it off.
        unchecked = settings.model_copy(update={"enforce_referential_integrity_on_write": False})
        self.fhir = FhirServer(unchecked, database)
        self._cda: CdaPipeline | None = None

    @property
    def cda(self) -> CdaPipeline:
        if self._cda is None:  # compiled once per process, and only for CDA batches
            schema = CdaSchema(self.settings.cda_schema)
            self._cda = CdaPipeline(self.settings, self.database, schema=schema)
        return self._cda

    @property
    def limits(self) -> Limits:
        return Limits(
            item_bytes=self.settings.max_request_bytes,
            total_bytes=self.settings.max_import_bytes * 4,
            items=self.settings.max_import_items,
        )

    # -- splitting ------------------------------------------------------------------------

    def plan(self, job_id: UUID) -> list[tuple[int, int]]:
        """Split a queued job into items (once: under the job's row lock), and return the
        ranges of its pending items, each one task's work."""
        with self.database.connection() as conn:
            job = get_job(conn, job_id)
        if job is None or job.state in ("done", "failed"):
            return []
        if job.state == "queued":
            try:
                self._split(job)
            except Unsplittable as exc:
                with self.database.transaction() as tx:
                    set_state(tx.conn, job_id, "failed", error=str(exc)[:500])
                return []
        with self.database.connection() as conn:
            ranges = pending_ranges(conn, job_id, ITEMS_PER_TASK)
            if not ranges:
                finish_if_done(conn, job_id)
        return ranges

    def _split(self, job: Job) -> None:
        with self.database.transaction() as tx, self.database.connection() as reader:
            locked = tx.conn.execute(
                "select state from bulk_job where id = %s for update", (job.id,)
            ).fetchone()
            if locked is None or locked["state"] != "queued":
                return  # split meanwhile by another delivery
            clear_items(tx.conn, job.id)
            try:
                if job.kind == "cda-zip":
                    source = ChunkReader(
                        job.byte_size, CHUNK_BYTES, lambda seq: read_chunk(reader, job.id, seq)
                    )
                    items = zip_items(source, self.limits)
                else:
                    items = ndjson_items(chunks(reader, job.id), self.limits)
                count = add_items(tx.conn, job.id, items)
            except Exception as exc:
                if isinstance(exc, TRANSIENT):
                    raise
                # The body is not what it says (a truncated or broken zip): the job fails.
                log.warning("job %s cannot be split: %s", job.id, type(exc).__name__)
                raise Unsplittable(f"the upload cannot be read: {exc}") from exc
            set_state(tx.conn, job.id, "running", item_count=count)

    # -- items -----------------------------------------------------------------------------

    def process(
        self, job_id: UUID, first: int, last: int, *, max_attempts: int | None = MAX_ATTEMPTS
    ) -> Processed:
        """Store the pending items ``first``..``last`` of a job; transient errors propagate
        (what was stored stays stored, a retry does the rest). An item in hand more than
        ``max_attempts`` times is set aside; None leaves that to the broker's delivery limit
        (the attempts are still counted: they tell which item was in hand)."""
        result = Processed()
        # One connection for the job's own statements, taken once for the whole range.
        with self.database.connection() as conn:
            job = get_job(conn, job_id)
            if job is None or job.state != "running":
                return result
            items = pending_items(conn, job_id, first, last)
            alone = False
            if items:
                # Items are worked in order: when a range comes back after its worker died,
                # its first pending item is the one that was in hand. One that keeps killing
                # its worker is set aside.
                attempts = count_attempt(conn, job_id, items[0].seq)
                if max_attempts is not None and attempts > max_attempts:
                    message = f"processing this item was interrupted {attempts - 1} times"
                    claim_item(
                        conn, job_id, items[0].seq, "failed", None, CRASHED, _outcome(message)
                    )
                    result.failed += 1
                    items = items[1:]
                # A range worked before (its worker died, or the database went away) is worked
                # one item at a time: an item that kills its worker is then the one in hand.
                alone = attempts > 1
            types = supported_types(self.fhir.catalogs.get(conn))
            if job.kind == "fhir-ndjson" and not alone:
                self._together(conn, job, items, types, result)
            else:
                self._one_by_one(conn, job, items, types, result)
            touch(conn, job_id)
            result.finished = finish_if_done(conn, job_id)
        return result

    def _one_by_one(
        self, conn: Connection, job: Job, items: list[Item], types: list[str], result: Processed
    ) -> None:
        """Each item in a transaction of its own, through the synchronous endpoints' path."""
        described: list[tuple[int, str | None, dict[str, Any]]] = []
        for item in items:
            try:
                outcome = self._one(conn, job, item, types)
            except ItemTaken:
                result.skipped += 1
                continue
            except TRANSIENT:
                raise
            except Exception as exc:
                # Not the database's fault: this item's. Recorded, and the job goes on.
                log.exception("item %s of job %s failed", item.name, job.id)
                message = f"processing failed: {type(exc).__name__}"
                claim_item(conn, job.id, item.seq, "failed", 500, FAILED, _outcome(message))
                result.failed += 1
                continue
            if outcome is not None:
                described.append(outcome)
            result.done += 1
        if described:
            describe_items(conn, job.id, described)

    def _together(
        self, conn: Connection, job: Job, items: list[Item], types: list[str], result: Processed
    ) -> None:
        """NDJSON lines checked one by one, then written in runs of one transaction each (as a
        batch Bundle writes its entries); a line that cannot join a run (a CDA document inside,
        or its check failed unexpectedly) takes the one-by-one path between the runs."""
        if job.institution_code is None:  # an $import always acts for one
            raise ValueError("an NDJSON job without an institution")
        scope = Scope(job.institution_code, job.token_id, job.received_at)
        catalog, declared = self.fhir.context(scope)
        agent = JobAgent(job.actor, job.role, job.institution_code, job.address, job.id)
        run: list[tuple[Item, Checked]] = []
        for item in items:
            checked: Checked | None = None
            if item.data is not None:
                try:
                    line = self._fhir_line(job, item.seq, item.data, agent, types)
                    checked = (
                        line
                        if isinstance(line, Checked)
                        else check(self.fhir, line, catalog, declared)
                    )
                except TRANSIENT:
                    raise
                except Exception:
                    checked = None  # the one-by-one path records why, as it always has
            if checked is not None and together(checked):
                run.append((item, checked))
                continue
            self._write_run(conn, job, catalog, run, types, result)
            run = []
            self._one_by_one(conn, job, [item], types, result)
        self._write_run(conn, job, catalog, run, types, result)

    def _write_run(
        self,
        conn: Connection,
        job: Job,
        catalog: Catalog,
        run: list[tuple[Item, Checked]],
        types: list[str],
        result: Processed,
    ) -> None:
        if not run:
            return

        def claim(tx: Connection, stored: Mapping[int, bool]) -> set[int]:
            # The job's bytes were committed before its 202: the lines' commit need not wait
            # for the disk. Lost in a crash of PostgreSQL, the records and the claims go
            # together (one transaction), and the lines are simply worked again.
            tx.execute("set local synchronous_commit = off")
            return claim_items(
                tx, job.id, {seq: "accepted" if ok else "rejected" for seq, ok in stored.items()}
            )

        def settle(tx: Connection, answers: Mapping[int, Answer]) -> None:
            settle_items(
                tx, job.id, [(seq, *_described(answer)) for seq, answer in answers.items()]
            )

        try:
            answers = write_lines(
                self.fhir, catalog, [c for _, c in run], claim=claim, settle=settle
            )
        except Exception as exc:
            if isinstance(exc, TRANSIENT) and not isinstance(exc, RERUN):
                raise  # the database went away: the task retries the range later
            # One line sank the run (a conflict, a value the database refuses): nothing of it
            # stays, and each line is worked on its own, so that it fails alone.
            log.warning(
                "items %s-%s of job %s stored one by one: %s",
                run[0][0].name,
                run[-1][0].name,
                job.id,
                type(exc).__name__,
            )
            self._one_by_one(conn, job, [item for item, _ in run], types, result)
            return
        result.done += len(answers)
        result.skipped += len(run) - len(answers)

    def _one(
        self, conn: Connection, job: Job, item: Item, types: list[str]
    ) -> tuple[int, str | None, dict[str, Any]] | None:
        if item.data is None:  # refused at the split; never pending, but be safe
            return None
        agent = ItemAgent(job.actor, job.role, job.institution_code, job.address, job.id, item.seq)
        if job.kind == "cda-zip":
            status, body = self._cda_item(job, item.data, agent)
        else:
            status, body = self._fhir_item(job, item.data, agent, types)
        if not agent.claims:
            # Refused before any write (an unsupported type, a permission): not counted in the
            # figures, as the synchronous endpoint counts it not.
            state = "accepted" if status < 300 else "rejected"
            if not claim_item(conn, job.id, item.seq, state, status):
                raise ItemTaken
        return item.seq, first_rule(body) if status >= 300 else None, body

    def _fhir_line(
        self, job: Job, seq: int, data: bytes, agent: Agent, types: list[str]
    ) -> Line | Checked:
        """The line as the request the synchronous endpoint would have had, or its refusal
        (a type not served here: not counted, as no endpoint takes it)."""
        if job.institution_code is None:  # an $import always acts for one
            raise ValueError("an NDJSON job without an institution")
        try:
            head = json.loads(data)
        except ValueError:
            head = None
        kind = head.get("resourceType") if isinstance(head, dict) else None
        resource_id = head.get("id") if isinstance(head, dict) else None
        kind = kind if isinstance(kind, str) else "Unknown"
        update = isinstance(resource_id, str) and _RESOURCE_ID.fullmatch(resource_id) is not None
        call = Call(
            Scope(job.institution_code, job.token_id, job.received_at),
            Preferences.parse("return=minimal"),
            "/fhir",
            FHIR_JSON,
            agent=agent,
            action="fhir.update" if update else "fhir.create",
            target=f"{kind}/{resource_id}" if update else kind,
        )
        line = Line(seq, call, data, kind, str(resource_id) if update else None)
        if isinstance(head, dict) and kind not in types:
            message = f"resource type {kind!r} is not served here"
            body = operation_outcome(
                [OutcomeIssue("error", "not-supported", message, rule=UNSUPPORTED)]
            )
            return refused_line(line, Answer(404, body, outcome=body))
        return line

    def _fhir_item(
        self, job: Job, data: bytes, agent: ItemAgent, types: list[str]
    ) -> tuple[int, dict[str, Any]]:
        line = self._fhir_line(job, agent.seq, data, agent, types)
        if isinstance(line, Checked):
            answer = line.refusal or Answer(400)
        elif line.resource_id is not None:
            answer = self.fhir.update(
                line.call, line.resource_type, line.resource_id, line.body, if_match=None
            )
        else:
            answer = self.fhir.create(line.call, line.resource_type, line.body, None)
        return answer.status, _described(answer)[2]

    def _cda_item(self, job: Job, data: bytes, agent: ItemAgent) -> tuple[int, dict[str, Any]]:
        principal = Principal(job.token_id or 0, job.role, job.institution_code)
        try:
            receipt = submit_cda(
                self.cda,
                data,
                principal=principal,
                institution=job.institution_code if job.role == "admin" else None,
                received_at=job.received_at,
                content_type="application/hl7-cda+xml",
                agent=agent,
            )
        except HieError as exc:
            return exc.status, _outcome(str(exc))
        if receipt.status < 300:
            return receipt.status, {
                "location": receipt.headers.get("Location"),
                "document": receipt.body.get("document"),
            }
        return receipt.status, receipt.body


def _described(answer: Answer) -> tuple[int, str | None, dict[str, Any]]:
    """An item's status, first refusing rule and outcome (where it was stored, or why not)."""
    if answer.status < 300:
        return answer.status, None, {"location": answer.location or answer.headers.get("Location")}
    body = answer.body or {}
    return answer.status, first_rule(body), body


def first_rule(body: dict[str, Any]) -> str | None:
    """The rule of an OperationOutcome's first error (how failures are grouped)."""
    for issue in body.get("issue", []) if isinstance(body, dict) else []:
        if issue.get("severity") not in ("error", "fatal"):
            continue
        for coding in (issue.get("details") or {}).get("coding", []):
            if coding.get("code"):
                return str(coding["code"])
        return str(issue.get("code") or "error")
    return None


def _outcome(message: str) -> dict[str, Any]:
    return operation_outcome([OutcomeIssue("error", "exception", message)])
