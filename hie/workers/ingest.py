"""The ``ingest`` queue's tasks: split a bulk job into items, then store ranges of its items.

Messages carry a job's id and a range of item numbers, never data: the items are in
PostgreSQL, each with its state, so a task delivered twice, or again after its worker was
killed, skips what is already stored. Transient errors (the database unreachable) are retried
inside the task with a growing wait; when they last too long the message is rejected and goes
to the dead letters, and ``hie jobs retry`` or the sweep sends the job again.

Retrying inside the task, not with Celery's countdown: a quorum queue holds no delayed
messages (Celery would need RabbitMQ's delayed-delivery exchanges for that).

The job machinery (``hie.jobs``, which loads the whole write path) is imported in the task
bodies: processes that only queue tasks (the web app, the command line) import this module too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

import kombu.exceptions
from celery import shared_task
from celery.exceptions import Reject

from hie.workers.runtime import TRANSIENT, task_database, task_settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Waits between attempts of a task whose dependency is down (about 1 minute in all).
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
RETRIED = (*TRANSIENT, kombu.exceptions.OperationalError, ConnectionError)

_processor: Any = None


def processor() -> Any:
    """This worker process's :class:`hie.jobs.processor.JobProcessor`."""
    global _processor
    if _processor is None:
        from hie.jobs.processor import JobProcessor

        _processor = JobProcessor(task_settings(), task_database())
    return _processor


def patiently(work: Callable[[], T], what: str) -> T:
    for delay in (*BACKOFF, None):
        try:
            return work()
        except RETRIED as exc:
            if delay is None:
                # Dead-lettered: the message leaves the queue with its reason.
                raise Reject(f"{what}: {type(exc).__name__}", requeue=False) from exc
            log.warning("%s: %s, retrying in %g s", what, type(exc).__name__, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


@shared_task(name="hie.workers.ingest.split_job", acks_late=True, reject_on_worker_lost=True)
def split_job(job_id: str) -> int:
    """Split a stored job into items (once), and queue a task per range of pending items."""
    job = UUID(job_id)
    ranges = patiently(lambda: processor().plan(job), f"split job {job_id}")
    for first, last in ranges:

        def send(first: int = first, last: int = last) -> Any:
            return ingest_items.apply_async(args=(job_id, first, last))

        patiently(send, f"queue items of job {job_id}")
    return len(ranges)


@shared_task(name="hie.workers.ingest.ingest_items", acks_late=True, reject_on_worker_lost=True)
def ingest_items(job_id: str, first: int, last: int) -> dict[str, int]:
    """Store the pending items ``first``..``last`` of a job."""
    job = UUID(job_id)
    # No item is set aside by its own count of attempts here: the quorum queue counts the
    # deliveries of the range (DELIVERY_LIMIT) and dead-letters it when its worker keeps dying;
    # `record_dead_letters` then sets aside the item that was in hand, with the broker's reason,
    # and sends the rest of the range again. One count, and the dead letters hold every poison.
    done = patiently(
        lambda: processor().process(job, first, last, max_attempts=None),
        f"items {first}-{last} of job {job_id}",
    )
    return {"stored": done.done, "skipped": done.skipped, "failed": done.failed}


@shared_task(name="hie.workers.ingest.sweep_jobs", acks_late=True, reject_on_worker_lost=True)
def sweep_jobs(idle_seconds: float = 600.0) -> list[str]:
    """Send again the open jobs that have not moved for ``idle_seconds``: their messages were
    lost (the broker down when the job was accepted) or dead-lettered."""
    from hie.storage.jobs import stalled_jobs

    with task_database().connection() as conn:
        stalled = stalled_jobs(conn, idle_seconds)
    for job in stalled:
        split_job.apply_async(args=(str(job.id),))
    return [str(job.id) for job in stalled]


@shared_task(name="hie.workers.ingest.record_dead_letters", acks_late=True)
def record_dead_letters() -> list[str]:
    """Record the jobs' dead letters (``<prefix>.dead``) on their items, with the broker's
    reason, and send the rest of their ranges again; the ids of the tasks recorded."""
    from celery import current_app

    from hie.jobs.service import record_dead_letter
    from hie.workers.deadletters import drain_dead_letters

    database = task_database()
    letters = drain_dead_letters(current_app, lambda letter: record_dead_letter(database, letter))
    return [letter.task_id or "" for letter in letters]
