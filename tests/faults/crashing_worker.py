"""Fault injection, for tests only: ``celery -A tests.faults.crashing_worker worker`` runs hie's
Celery workers unchanged but for one thing: an NDJSON item containing ``POISON`` (from
``conftest.py``, so that tests name it without importing this module's patch) kills the
worker process working on it (SIGKILL, as the kernel's out-of-memory killer or a crash in a C
library would), every time it is worked on. Nothing in ``hie`` knows of it."""

from __future__ import annotations

import os
import signal
from typing import Any

from hie.jobs.processor import JobProcessor
from hie.workers import app
from tests.faults.conftest import POISON

# Where every NDJSON line is read, whether it is then written with others or alone.
_fhir_line = JobProcessor._fhir_line


def _crash_on_poison(self: JobProcessor, job: Any, seq: int, data: bytes, *args: Any) -> Any:
    if POISON.encode() in data:
        os.kill(os.getpid(), signal.SIGKILL)
    return _fhir_line(self, job, seq, data, *args)


setattr(JobProcessor, "_fhir_line", _crash_on_poison)  # noqa: B010 (a method replaced)

__all__ = ["app"]
