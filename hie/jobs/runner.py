"""Jobs without a broker: a background thread of ``hie serve`` works them, one at a time, so
that the embedded default handles ``$import`` alone. At start it resumes every job left open
(by a crash or a stop): their stored items say what is left."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from uuid import UUID

from hie.config import Settings
from hie.jobs.processor import JobProcessor
from hie.storage import Database
from hie.storage.jobs import open_jobs
from hie.workers.runtime import TRANSIENT

log = logging.getLogger(__name__)

T = TypeVar("T")

# Waits between attempts while the database is unreachable (then the job waits for the next
# start, or for `hie jobs retry`).
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
# Ranges of items worked at once.
THREADS = 3


class JobRunner:
    """One thread working the jobs handed to it, in order."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.processor = JobProcessor(settings, database)
        self._database = database
        self._queue: queue.SimpleQueue[UUID | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="hie-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()
        try:
            with self._database.connection() as conn:
                left = open_jobs(conn)
        except TRANSIENT:
            left = []
        for job in left:
            self.submit(job.id)

    def submit(self, job_id: UUID) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(job_id)

    def wait(self, timeout: float = 60.0) -> bool:
        """Until every job handed over so far is worked (tests, the command line)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop after the current range of items; what is left resumes at the next start."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._work(job_id)
            except Exception:
                log.exception("job %s stopped", job_id)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _work(self, job_id: UUID) -> None:
        ranges = self._patiently(lambda: self.processor.plan(job_id))
        # The items wait on the database far more than they compute: ranges are worked side
        # by side, like the Celery workers' processes would.
        with ThreadPoolExecutor(THREADS, thread_name_prefix="hie-jobs-items") as pool:

            def work(first: int, last: int) -> object:
                if self._stopping.is_set():
                    return None
                return self._patiently(lambda: self.processor.process(job_id, first, last))

            for future in [pool.submit(work, first, last) for first, last in ranges or []]:
                future.result()

    def _patiently(self, work: Callable[[], T]) -> T | None:
        for delay in (*BACKOFF, None):
            try:
                return work()
            except TRANSIENT:
                if delay is None or self._stopping.is_set():
                    raise
                log.warning("database unavailable while working a job; retrying in %g s", delay)
                time.sleep(delay)
        return None


_runners: dict[int, JobRunner] = {}
_lock = threading.Lock()


def start_runner(settings: Settings, database: Database) -> JobRunner:
    with _lock:
        runner = _runners.get(id(database))
        if runner is None:
            runner = _runners[id(database)] = JobRunner(settings, database)
            runner.start()
        return runner


def stop_runner(database: Database) -> None:
    with _lock:
        runner = _runners.pop(id(database), None)
    if runner is not None:
        runner.close()


def runner_of(database: Database) -> JobRunner | None:
    return _runners.get(id(database))
