"""``hie persons rebuild``: records stored before the person index existed are linked exactly as
the store step links them, in batches, and a second run changes nothing."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

import pytest
from typer.testing import CliRunner

from hie.cli import app
from hie.ingest import Arrival, store_record
from hie.normalize.cda import normalize_cda
from hie.storage import Database
from hie.validators.cda import validate_cda
from tests.persons.conftest import (
    HEALTH_CARD,
    HEALTH_RECORD,
    JULY,
    OTHER_ID,
    RESIDENT_ID,
    ZHANG_ID,
    ZHANG_LEGACY,
    StoreFn,
    patient,
)


def _store_region(region: Database, store: StoreFn, cda: Any, catalog: Any) -> None:
    store("H1", patient("a", (RESIDENT_ID, ZHANG_ID), (HEALTH_CARD, "HC-778")))
    store("H2", patient("b", (HEALTH_CARD, "HC-778")))  # the same man, by his health card
    store("H2", patient("x", (RESIDENT_ID, ZHANG_LEGACY)))  # and by his legacy number
    # Demographics only, a new address: close enough for review, not for a link.
    store("D1", patient("c", (HEALTH_RECORD, "JK-3201"), address="南京市玄武区孝陵卫街道200号"))
    store("H1", patient("o", (RESIDENT_ID, OTHER_ID), name="王芳", gender="female"))
    store("H2", patient("gone", (HEALTH_CARD, "HC-1")), deleted=True)
    data = cda.bytes("C0001-valid.xml")
    result = validate_cda(data, catalog=catalog)
    with region.transaction() as tx:
        store_record(
            tx.conn,
            Arrival("H1", JULY, JULY.date(), uuid.uuid4()),
            result.table,
            normalize_cda(result.tree, result.table),
            content_sha256=hashlib.sha256(data).digest(),
            raw_xml=data,
            immutable=True,
        )


def _index(region: Database) -> dict[str, Any]:
    """The index as a partition of records into persons (ids aside), and its review list."""
    with region.connection() as conn:
        links = conn.execute(
            "select institution_code || ':' || record_id as record, person_id from person_link"
        ).fetchall()
        reviews = conn.execute(
            "select institution_code || ':' || record_id as record, candidate_id"
            " from person_review where status = 'open' order by 1"
        ).fetchall()
        history = conn.execute("select count(*) as n from person_history").fetchone()
    groups: dict[int, set[str]] = {}
    for row in links:
        groups.setdefault(row["person_id"], set()).add(row["record"])
    return {
        "persons": sorted(sorted(g) for g in groups.values()),
        # Each uncertain record with the records of the person it may be.
        "reviews": [(r["record"], sorted(groups[r["candidate_id"]])) for r in reviews],
        "history": history["n"] if history else 0,
    }


@pytest.fixture
def hie(database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HIE_DATABASE_URL", database_url)
    monkeypatch.setenv("HIE_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    return run


def test_rebuild_links_records_stored_before_the_index_as_the_store_step_does(
    region: Database, store: StoreFn, cda: Any, catalog: Any, hie: Any, monkeypatch: Any
) -> None:
    # The same region stored once with the store step's hook: what the rebuild must reproduce.
    _store_region(region, store, cda, catalog)
    expected = _index(region)
    zhang = ["H1:Patient/a", "H2:Patient/b", "H2:Patient/x"]
    assert zhang in expected["persons"]
    assert expected["reviews"] == [("D1:Patient/c", zhang)]
    with region.transaction() as tx:
        for table in ("person_review", "person_history", "person_identifier", "person_link"):
            tx.conn.execute(f"delete from {table}")  # noqa: S608 (fixed names)
        tx.conn.execute("delete from person")
    # Stored without the hook, as before migration 0013: nothing is linked.
    monkeypatch.setattr("hie.ingest.index_stored", lambda *args, **kwargs: None)
    assert _index(region)["persons"] == []

    output = hie("persons", "rebuild", "--batch", "3")
    lines = [line for line in output.splitlines() if line.startswith("persons rebuild:")]
    assert len(lines) == 3  # 7 records in batches of 3: a progress line after each
    assert lines[-1] == (
        "persons rebuild: 7 records: 6 linked, 0 moved, 0 unchanged, 0 unlinked,"
        " 1 without a patient"
    )
    rebuilt = _index(region)
    assert rebuilt["persons"] == expected["persons"]
    assert rebuilt["reviews"] == expected["reviews"]

    # Again: nothing moves, nothing is added to the history or the review list.
    again = hie("persons", "rebuild")
    assert "7 records: 0 linked, 0 moved, 6 unchanged, 0 unlinked, 1 without a patient" in again
    assert _index(region) == rebuilt
    with region.connection() as conn:
        actions = [r["action"] for r in conn.execute("select action from audit_event")]
    assert actions.count("person.rebuild") == 2


def test_rebuild_applies_changed_rules_and_unlinks_what_no_longer_names_anyone(
    region: Database, store: StoreFn, hie: Any, monkeypatch: Any
) -> None:
    store("H1", patient("a", (RESIDENT_ID, ZHANG_ID)))
    store("H2", patient("b", (HEALTH_RECORD, "JK-9"), name="李四", birth="1960-01-01"))
    store("H2", patient("d", (HEALTH_CARD, "HC-5"), name="赵六", birth="1970-01-01"))
    with region.connection() as conn:
        before = {r["record_id"]: r["person_id"] for r in conn.execute("select * from person_link")}
    assert before["Patient/a"] != before["Patient/b"]
    # A rule change: the health-record number now also reads the resident ID number.
    from hie.persons import model

    original = model.keys_of

    def keys_of(identity: Any, institution: str) -> list[model.Key]:
        keys = original(identity, institution)
        if identity.health_record_number == "JK-9":
            keys.insert(0, model.Key(RESIDENT_ID, ZHANG_ID))
        return keys

    monkeypatch.setattr("hie.persons.service.keys_of", keys_of)
    with region.transaction() as tx:  # and a record whose payload names no one any more
        tx.conn.execute(
            "update record_version set resource = resource - 'identifier' - 'name' - 'birthDate'"
            " where logical_id = 'Patient/d'"
        )
    output = hie("persons", "rebuild")
    assert re.search(r"3 records: 0 linked, 1 moved, 1 unchanged, 1 unlinked", output), output
    with region.connection() as conn:
        after = {r["record_id"]: r["person_id"] for r in conn.execute("select * from person_link")}
        actions = [r["action"] for r in conn.execute("select action from person_history")]
    assert set(after) == {"Patient/a", "Patient/b"}
    assert after["Patient/b"] == after["Patient/a"] == before["Patient/a"]
    assert "unlink" in actions and "relink" in actions
