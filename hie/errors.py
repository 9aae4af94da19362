"""The exception tree. Entry points (HTTP, CLI) translate these into responses and exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class HieError(Exception):
    """Base of every error hie raises on purpose. ``status`` is the HTTP status it is answered
    with (hie/http/errors.py) and audited as (hie/audit.py); 500 for a fault of the platform."""

    status = 500


class ConfigError(HieError):
    """The settings or the environment cannot work."""


class NotFound(HieError):
    """A named thing (institution, token, table) does not exist."""

    status = 404


class Conflict(HieError):
    """The request contradicts what is stored."""

    status = 409


class PermissionDenied(HieError):
    """The caller is known but may not do this."""

    status = 403


class Unauthenticated(HieError):
    """No valid credentials were presented."""

    status = 401


class Unavailable(HieError):
    """A service hie depends on (``database``, ``broker``) does not answer: nothing was done,
    and the same request may be sent again later."""

    status = 503

    def __init__(self, dependency: str) -> None:
        self.dependency = dependency
        super().__init__(f"the {dependency} is unavailable; retry later")


@dataclass(frozen=True)
class Problem:
    """One located problem in an input file or request body."""

    message: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field {self.field}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class InvalidInput(HieError):
    """Input that was refused as a whole, with every problem found in it."""

    status = 422

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        shown = "\n".join(f"  {source}: {p}" for p in problems)
        super().__init__(f"{source} was refused ({len(problems)} problem(s)):\n{shown}")
