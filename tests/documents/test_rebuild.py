"""``hie documents rebuild`` registers the CDA documents stored before the registry existed."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hie.cli import app
from tests.conftest import CdaFixtures
from tests.documents.conftest import Tokens, auth

CDA = {"Content-Type": "application/hl7-cda+xml"}


def entries(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("select document_record, status from document_reference").fetchall()
    return {str(record): str(status) for record, status in rows}


def test_rebuild_registers_documents_stored_before_the_registry(
    client: TestClient,
    tokens: Tokens,
    cda: CdaFixtures,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("C0002-valid.xml", "C0002-replacement.xml", "C0053-valid.xml"):
        response = client.post("/cda", content=cda.bytes(name), headers=auth(tokens.a, **CDA))
        assert response.status_code == 201
    before = entries(database_url)
    assert sorted(before.values()) == ["current", "current", "superseded"]
    with psycopg.connect(database_url) as conn:
        conn.execute("delete from document_reference")  # as before migration 0017
    monkeypatch.setenv("HIE_DATABASE_URL", database_url)
    monkeypatch.setenv("HIE_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    # Batches of one: the replacement is met in any order relative to what it replaces.
    result = runner.invoke(app, ["documents", "rebuild", "--batch", "1"])
    assert result.exit_code == 0, result.output
    assert "registered 3" in result.output
    assert entries(database_url) == before
    again = runner.invoke(app, ["documents", "rebuild"])
    assert "registered 0" in again.output
