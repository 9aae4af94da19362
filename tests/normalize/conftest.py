"""Shared helpers of the normalization tests: the default catalog and the CDA fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from hie.catalog import Catalog, default_catalog_path, read_catalog

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cda"


class CdaFixtures:
    """The CDA fixture files: bytes, a copy with edits, and the line a piece of text is on (so
    that tests assert real line numbers)."""

    folder = FIXTURES

    def bytes(self, name: str) -> bytes:
        return (FIXTURES / name).read_bytes()

    def text(self, name: str) -> str:
        return self.bytes(name).decode("utf-8")

    def edited(self, name: str, *edits: tuple[str, str]) -> bytes:
        """The fixture with each ``old`` replaced by ``new``; each must occur exactly once."""
        text = self.text(name)
        for old, new in edits:
            assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {name}"
            text = text.replace(old, new)
        return text.encode("utf-8")

    @staticmethod
    def line_of(data: bytes | str, marker: str) -> int:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return text.count("\n", 0, text.index(marker)) + 1


@pytest.fixture(scope="session")
def cda() -> CdaFixtures:
    return CdaFixtures()


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return read_catalog(default_catalog_path())
