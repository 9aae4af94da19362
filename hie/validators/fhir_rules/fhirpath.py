"""FHIRPath as the rule families run it: fhirpathpy on R4's model, one evaluation at a time.

fhirpathpy keeps per-evaluation state in module globals, so every evaluation holds ``LOCK`` (the
server validates in several threads). ``compile_r4`` adds what fhirpathpy lacks for R4's own
expressions: ``hasValue()``, and a silent ``trace()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models

LOCK = threading.Lock()


def _has_value(inputs: list[Any]) -> list[bool]:
    """FHIRPath hasValue(), which fhirpathpy does not implement: a single primitive value."""
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], dict | list)]


def _ignore_trace(label: object, value: object) -> None:
    """Some R4 expressions call trace(); fhirpathpy would print to stdout."""


OPTIONS = {
    "userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}}},
    "traceFn": _ignore_trace,
}


def compile_r4(expression: str) -> Callable[..., Any]:
    """``expression`` compiled against R4's model; raises on a syntax error."""
    compiled: Callable[..., Any] = compile_fhirpath(expression, models["r4"], OPTIONS)
    return compiled
