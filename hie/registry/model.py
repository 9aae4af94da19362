"""Institution values. No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from hie.catalog.model import KINDS

# The same rule as the database's check constraint, said here so errors can be clear.
CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

__all__ = ["CODE_PATTERN", "KINDS", "Institution", "check_code"]


def check_code(code: str) -> str | None:
    """Why ``code`` is not a valid institution code, or None when it is."""
    if not CODE_PATTERN.fullmatch(code):
        return (
            f"{code!r} is not an institution code "
            "(letters, digits, '.', '_' or '-', starting with a letter or digit, up to 64)"
        )
    return None


@dataclass(frozen=True)
class Institution:
    code: str
    name: str
    kind: str
    district_code: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
