"""``hie persons``: show, review, merge and unmerge as an administrator uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hie.cli import app
from hie.storage import Database
from tests.persons.conftest import (
    HEALTH_CARD,
    HEALTH_RECORD,
    RESIDENT_ID,
    ZHANG_ID,
    ZHANG_LEGACY,
    StoreFn,
    patient,
)


@pytest.fixture
def hie(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HIE_DATABASE_URL", database_url)
    monkeypatch.setenv("HIE_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def run(*args: str, expect: int = 0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == expect, result.output
        return result.output

    return run


def test_review_merge_unmerge_from_the_command_line(region: Database, store: StoreFn, hie) -> None:
    store("H1", patient("a", (RESIDENT_ID, ZHANG_ID), (HEALTH_CARD, "HC-778")))
    store("D1", patient("c", (HEALTH_RECORD, "JK-3201"), address="南京市玄武区孝陵卫街道200号"))
    with region.connection() as conn:
        [item] = conn.execute("select * from person_review").fetchall()
    listed = hie("persons", "review")
    assert "Patient/c" in listed and "1 open" in listed

    shown = hie("persons", "show", "--identifier", f"2.16.156.10011.1.3|{ZHANG_LEGACY}")
    assert "Patient/a" in shown and "health card" in shown
    assert ZHANG_ID not in shown and ZHANG_LEGACY not in shown

    candidate, person = str(item["candidate_id"]), str(item["person_id"])
    assert "1 record(s) moved" in hie("persons", "merge", candidate, person)
    assert "0 open" in hie("persons", "review")
    assert "Patient/c" in hie("persons", "show", candidate)
    assert "merged into" in hie("persons", "merge", candidate, person, expect=1)
    assert "1 record(s) moved back" in hie("persons", "unmerge", person)
    assert "Patient/c" not in hie("persons", "show", candidate)
    with region.connection() as conn:
        actions = [r["action"] for r in conn.execute("select action from audit_event").fetchall()]
    assert {"person.merge", "person.unmerge", "person.show"} <= set(actions)


def test_dismissed_reviews_leave_the_list(region: Database, store: StoreFn, hie) -> None:
    store("H1", patient("a", (RESIDENT_ID, ZHANG_ID)))
    store("D1", patient("c", address="南京市玄武区孝陵卫街道200号"))
    with region.connection() as conn:
        [item] = conn.execute("select id from person_review").fetchall()
    hie("persons", "review", "--dismiss", str(item["id"]))
    assert "0 open" in hie("persons", "review")
    assert "already dismissed" in hie("persons", "review", "--dismiss", str(item["id"]), expect=1)


def test_a_clinician_token_belongs_to_an_institution(region: Database, hie) -> None:
    hie("tokens", "create", "H2", "--role", "clinician")
    assert "needs an institution" in hie("tokens", "create", "--role", "clinician", expect=1)
