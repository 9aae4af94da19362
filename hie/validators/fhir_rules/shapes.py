"""JSON as it arrives, read without trusting its shape: the rule families skip what is not the
shape they expect (the walk in ``tree.py`` reports it) instead of raising."""

from __future__ import annotations

from typing import Any


def objects(value: Any) -> list[dict[str, Any]]:
    """The JSON objects of an array; nothing when ``value`` is not an array."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def indexed_objects(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """(index, object) of the JSON objects of an array, indexes as in the array."""
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)]
