"""What the entry points record in the audit trail (``hie.storage.audit``): who is calling
(:class:`Agent`), from where, and what they asked for with resident ID numbers and tokens masked.

Writes record their entry in their own transaction; reads record theirs after answering, as one
statement on an autocommit connection (``record_read``), so a search pays one round trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from hie.auth import Principal
from hie.errors import HieError, NotFound, PermissionDenied, Unauthenticated
from hie.storage import Connection, Database
from hie.storage.audit import record_event

# 18-character resident ID numbers (17 digits and a check character), 15-digit old ones, and
# bearer tokens; the numbers are masked wherever they appear in a value (system|value too).
_SECRET = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9Xx])|hie_[A-Za-z0-9_\-]+")
MASK = "***"


def mask(text: str) -> str:
    """``text`` with anything that looks like a resident ID number or a token masked."""
    return _SECRET.sub(MASK, text)


def masked_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Search parameters as a query string for the audit trail, secrets masked."""
    return "&".join(f"{mask(name)}={mask(value)}" for name, value in pairs)


def address_of(connection: HTTPConnection) -> str | None:
    """The client's network address, as the server saw it."""
    return connection.client.host if connection.client else None


@dataclass(frozen=True)
class Agent:
    """Who an audit entry is about: the token (or local user), its role and institution, and
    the client's address."""

    actor: str
    role: str | None = None
    institution: str | None = None
    address: str | None = None

    @classmethod
    def of(cls, principal: Principal, address: str | None) -> Agent:
        return cls(principal.actor, principal.role, principal.institution_code, address)

    def record(
        self,
        conn: Connection,
        action: str,
        target: str | None,
        *,
        status: int = 200,
        **detail: Any,
    ) -> None:
        """Append the entry in ``conn``'s transaction (or alone, on an autocommit one)."""
        record_event(
            conn,
            self.actor,
            action,
            target,
            role=self.role,
            institution=self.institution,
            address=self.address,
            outcome=status,
            status=status,
            **detail,
        )


def status_of(exc: BaseException) -> int:
    """The HTTP status hie's error handlers answer an exception with."""
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Unauthenticated):
        return 401
    if isinstance(exc, HieError):
        return 400
    return 500


def record_read(
    database: Database,
    agent: Agent,
    action: str,
    target: str | None,
    *,
    status: int = 200,
    **detail: Any,
) -> None:
    """Record a read: one statement on an autocommit connection, after the answer is ready."""
    with database.connection() as conn:
        agent.record(conn, action, target, status=status, **detail)
