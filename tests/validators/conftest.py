"""Fixtures of the validator tests (the CDA fixtures and the catalog are in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cda_schema_dir(shared_data: Path) -> Path:
    return shared_data / "cda-schema" / "schema"
