"""Paging links of a search: ``first``, ``previous``, ``next``, ``last`` as keyset cursors.

Why a keyset cursor and not HAPI's stored snapshot of result ids: a page is found from the sort
key of the last (or first) resource the client saw, so creating or deleting resources between two
page requests neither skips nor repeats a match, without storing a result list per search
(a search over a million Observations would store a million ids, and every web process would need
the store) and without a clean-up job. What a snapshot would give and a cursor does not: a
resource updated between pages moves to its new place in the order (under the default
``_lastUpdated`` order, to the end), so it can be sent again in its new version; it is never
skipped. ``_offset`` is still accepted, and then pages by position as before.

The cursor is a Fernet token (AES with an HMAC, the ``cryptography`` package) under a key derived
from ``HIE_SECRET_KEY``: its sort-key values (which can be a date or a code of the last resource)
are unreadable in proxy and access logs, and it cannot be altered or forged. It is bound to the
institution, the token of the caller and the search's own parameters: another caller, or the
same link with other criteria, gets 400; after :data:`CURSOR_LIFETIME` it is 410 Gone, as HAPI
answers an expired search.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from cryptography.fernet import Fernet, InvalidToken

CURSOR = "_cursor"
CURSOR_LIFETIME = 24 * 3600  # seconds
# Parameters that do not decide which resources match or in which order: a cursor stays valid
# when they change (a client may change the page size between pages).
_NOT_BOUND = frozenset({CURSOR, "_offset", "_count", "_format", "_pretty", "_total"})

Direction = Literal["next", "previous", "last"]


class CursorError(ValueError):
    """A cursor that cannot be followed: ``status`` 400 (not this search's, altered) or 410."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Position:
    """Where a page starts: after ``key`` (``next``), before it (``previous``), or the end."""

    direction: Direction
    key: list[Any] | None

    @property
    def backwards(self) -> bool:
        return self.direction != "next"


@dataclass(frozen=True)
class Binding:
    """What a cursor is valid for."""

    institution_code: str
    token_id: int | None
    resource_type: str
    pairs: tuple[tuple[str, str], ...]

    def digest(self) -> str:
        bound = sorted((k, v) for k, v in self.pairs if k.split(":")[0] not in _NOT_BOUND)
        text = json.dumps([self.institution_code, self.token_id, self.resource_type, bound])
        return hashlib.sha256(text.encode()).hexdigest()


class Cursors:
    """Seals and opens cursors with a key derived from the server's secret."""

    def __init__(self, secret: str) -> None:
        derived = hashlib.sha256(f"hie.fhir.cursor\x00{secret}".encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, binding: Binding, position: Position, *, issued_at: int | None = None) -> str:
        """The cursor of ``position``; ``issued_at`` (seconds since the epoch) backdates it."""
        payload = json.dumps({"b": binding.digest(), "d": position.direction, "k": position.key})
        if issued_at is None:
            return self._fernet.encrypt(payload.encode()).decode()
        return self._fernet.encrypt_at_time(payload.encode(), issued_at).decode()

    def open(self, token: str, binding: Binding) -> Position:
        try:
            self._fernet.decrypt(token.encode(), ttl=None)
        except (InvalidToken, ValueError):
            raise CursorError(400, f"{CURSOR}: not a paging link of this server") from None
        try:
            payload = json.loads(self._fernet.decrypt(token.encode(), ttl=CURSOR_LIFETIME))
        except InvalidToken:
            raise CursorError(
                410, f"{CURSOR}: this paging link has expired; search again"
            ) from None
        if payload.get("b") != binding.digest():
            raise CursorError(
                400, f"{CURSOR}: this paging link belongs to another search or another caller"
            )
        direction = payload.get("d")
        if direction not in ("next", "previous", "last"):
            raise CursorError(400, f"{CURSOR}: not a paging link of this server")
        return Position(direction, payload.get("k"))


def page_url(self_url: str, pairs: list[tuple[str, str]], extra: list[tuple[str, str]]) -> str:
    """The search's URL with its paging parameters replaced by ``extra``."""
    base = self_url.split("?", 1)[0]
    kept = [(k, v) for k, v in pairs if k not in (CURSOR, "_offset")]
    return f"{base}?{urlencode([*kept, *extra])}"
