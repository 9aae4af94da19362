"""``hie audit verify`` exits 0 on an intact trail and 1 naming the first broken entry;
``hie audit list`` shows recent entries."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from hie.cli import app


@pytest.fixture
def hie(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HIE_DATABASE_URL", database_url)
    monkeypatch.setenv("HIE_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def run(*args: str, expect: int = 0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == expect, result.output
        return result

    return run


def _changes(hie) -> None:
    hie("institutions", "add", "H001", "--name", "医院一", "--kind", "hospital")
    hie("institutions", "add", "H002", "--name", "医院二", "--kind", "hospital")
    hie("tokens", "create", "H001")


def test_verify_an_intact_trail(hie) -> None:
    _changes(hie)
    result = hie("audit", "verify")
    assert "intact" in result.output
    assert "intact" in hie("audit", "verify", "--month", "2001-01").output
    hie("audit", "verify", "--month", "soon", expect=2)


@pytest.mark.parametrize(
    ("tamper", "word"),
    [
        (
            "update audit_event set target = 'H009' where action = 'institution.add'"
            " and target = 'H002'",
            "edited",
        ),
        ("delete from audit_event where action = 'institution.add' and target = 'H001'", "deleted"),
        (
            "insert into audit_event (actor, action, target) values ('cli:x', 'token.revoke', '1')",
            "inserted",
        ),
    ],
    ids=["edited", "deleted", "inserted"],
)
def test_verify_names_the_first_broken_entry(
    hie, database_url: str, tamper: str, word: str
) -> None:
    _changes(hie)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(tamper)
    result = hie("audit", "verify", expect=1)
    assert "first broken entry" in result.output or "first broken a missing" in result.output
    assert word in result.output


def test_list_shows_recent_entries_without_tokens(hie) -> None:
    _changes(hie)
    token = hie("tokens", "create", "H002").stdout.strip().splitlines()[-1]
    rows = [json.loads(line) for line in hie("audit", "list", "--json").stdout.splitlines()]
    assert rows[0]["action"] == "token.create"
    assert rows[0]["actor"].startswith("cli")
    assert all(token not in json.dumps(row) for row in rows)
    created = hie("audit", "list", "--action", "C", "--target", "H001", "--json").stdout
    actions = [json.loads(line)["action"] for line in created.splitlines()]
    assert actions == ["token.create", "institution.add"]
    assert "action" in hie("audit", "list").stdout  # the table for people
    assert hie("audit", "list", "--failed", "--json").stdout == ""
