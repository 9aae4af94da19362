"""Text PostgreSQL cannot store: U+0000 (refused by ``text`` and ``jsonb``) and lone UTF-16
surrogates (not encodable as UTF-8), both of which a JSON ``\\u`` escape or a percent-encoded
URL can carry. Input is checked where it enters, so the refusal names the place instead of
failing deep in the database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None. Never echoes the text."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"contains a NUL character (U+0000) at position {found.start() + 1}"
    return f"contains a lone UTF-16 surrogate at position {found.start() + 1}"


def printable(text: str) -> str:
    """``text`` with its unstorable characters replaced by U+FFFD, fit to be echoed."""
    return _UNSTORABLE.sub("\ufffd", text)


def unstorable_in(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(element path, reason) of every unstorable key or string in a parsed JSON value."""
    if isinstance(value, str):
        if (why := unstorable(value)) is not None:
            yield path, why
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unstorable_in(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            if (why := unstorable(key)) is not None:
                yield f"{path}.{printable(key)}", f"the property name {why}"
            yield from unstorable_in(item, f"{path}.{printable(key)}")
