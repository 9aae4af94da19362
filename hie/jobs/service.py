"""Accepting a bulk upload (its bytes stored before the answer) and setting its job going:
through RabbitMQ to the ``ingest`` queue's workers, or to this process's job thread when no
broker is configured. Messages carry the job's id, never its bytes."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from celery import current_app

from hie.audit import Agent
from hie.jobs.runner import runner_of
from hie.outcome import OutcomeIssue, operation_outcome
from hie.storage import Database, Transaction
from hie.storage.jobs import (
    CHUNK_BYTES,
    NewJob,
    append_chunk,
    close_upload,
    create_job,
    finish_if_done,
    get_job,
    note_error,
    reopen_failed,
    set_aside_dead,
)
from hie.workers.app import send_task
from hie.workers.deadletters import DeadLetter

log = logging.getLogger(__name__)

# The error code of items set aside because the broker dead-lettered their range.
DEAD_LETTER = "bulk.dead-letter"


class EmptyUpload(ValueError):
    """A bulk upload with no body."""


class NotAZip(ValueError):
    """A CDA batch whose body does not start as a zip archive does."""


# A zip starts with a local file header, or (empty) with the end of the central directory.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def receive_upload(
    database: Database,
    job: NewJob,
    pieces: Iterable[bytes],
    agent: Agent,
    *,
    action: str,
    detail: dict[str, Any],
) -> None:
    """Store the body in chunks with the job's row and its audit entry, in one transaction,
    then start the job. Nothing is held in memory beyond one chunk."""
    with database.transaction() as tx:
        create_job(tx.conn, job)
        digest = hashlib.sha256()
        buffer = bytearray()
        size = 0
        seq = 0
        head = b""
        for piece in pieces:
            if not piece:
                continue
            digest.update(piece)
            size += len(piece)
            if len(head) < 4:
                head = (head + piece)[:4]
            buffer += piece
            while len(buffer) >= CHUNK_BYTES:
                append_chunk(tx.conn, job.id, seq, bytes(buffer[:CHUNK_BYTES]))
                del buffer[:CHUNK_BYTES]
                seq += 1
        if buffer:
            append_chunk(tx.conn, job.id, seq, bytes(buffer))
        if size == 0:
            raise EmptyUpload("the body is empty")
        if job.kind == "cda-zip" and head not in ZIP_MAGIC:
            raise NotAZip("the body is not a zip archive")
        close_upload(tx.conn, job.id, size, digest.digest())
        agent.record(
            tx.conn, action, f"job/{job.id}", status=202, bytes=size, job=str(job.id), **detail
        )
        start_after_commit(tx, database, job.id)


def start_after_commit(tx: Transaction, database: Database, job_id: UUID) -> None:
    tx.after_commit(lambda: start_job(database, job_id))


def start_job(database: Database, job_id: UUID) -> None:
    """Hand the job to whoever works jobs here. With a broker, a failure to queue leaves the
    job stored and queued: the maintenance queue's sweep sends it again."""
    if current_app.conf.task_always_eager:
        runner = runner_of(database)
        if runner is not None:
            runner.submit(job_id)
            return
        # No job thread in this process (the command line): work it here and now.
        from hie.jobs.processor import JobProcessor
        from hie.workers.runtime import task_settings

        processor = JobProcessor(task_settings(), database)
        for first, last in processor.plan(job_id):
            processor.process(job_id, first, last)
        return
    from hie.workers.ingest import split_job

    try:
        send_task(split_job, str(job_id))
    except Exception:  # the job is stored; the sweep (or `hie jobs retry`) sends it later
        log.warning("job %s stored but not queued yet", job_id)


def retry_jobs(database: Database, job_id: UUID | None = None) -> list[UUID]:
    """Failed items back to pending and their jobs (with any stalled open job) started again."""
    with database.transaction() as tx:
        jobs = reopen_failed(tx.conn, job_id)
    for job in jobs:
        start_job(database, job)
    return jobs


def record_dead_letter(database: Database, letter: DeadLetter) -> bool:
    """Record a job's dead-lettered message where ``hie jobs failed`` and the job's error listing
    show it: the item in hand when its worker kept dying (or the whole range, when its task gave
    up) fails with the broker's reason, and the job goes on with the rest (``hie jobs retry``
    reruns what failed). A split that kept killing its worker fails the job. False for a
    letter that is not a job's (left in the queue)."""
    if letter.task not in ("hie.workers.ingest.ingest_items", "hie.workers.ingest.split_job"):
        return False
    try:
        job_id = UUID(str(letter.args[0]))
    except (IndexError, ValueError):
        return False
    reason = letter.describe()
    with database.transaction() as tx:
        if get_job(tx.conn, job_id) is None:
            return True  # a job deleted since: nothing to record, the letter goes
        if letter.task.endswith("split_job"):
            note_error(tx.conn, job_id, f"split {reason}", fail=letter.reason == "delivery_limit")
            return True
        first, last = int(letter.args[1]), int(letter.args[2])
        items = set_aside_dead(
            tx.conn,
            job_id,
            first,
            last,
            whole_range=letter.reason != "delivery_limit",
            code=DEAD_LETTER,
            outcome=operation_outcome(
                [OutcomeIssue("error", "exception", f"items {first}-{last}: {reason}")]
            ),
        )
        if not finish_if_done(tx.conn, job_id):
            tx.after_commit(lambda: resume_range(database, job_id, first, last))
    log.warning("job %s: items %s set aside, %s", job_id, items or "none", reason)
    return True


def resume_range(database: Database, job_id: UUID, first: int, last: int) -> None:
    """The rest of a dead-lettered range sent again, alone: the job's other ranges are still
    queued or in hand (sending the whole job again would queue each of them twice)."""
    if current_app.conf.task_always_eager:
        start_job(database, job_id)
        return
    from hie.workers.ingest import ingest_items

    try:
        send_task(ingest_items, str(job_id), first, last)
    except Exception:  # the items stay pending; the sweep (or `hie jobs retry`) sends them
        log.warning("job %s: items %s-%s not queued again yet", job_id, first, last)
