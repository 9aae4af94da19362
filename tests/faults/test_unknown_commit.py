"""A connection lost while COMMIT is under way: the server cannot know whether the upload was
stored, answers 503, and the client's retry gets the upload's receipt without storing it twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import psycopg
import pytest

from hie.app import create_app
from hie.catalog import default_catalog_path, read_catalog
from hie.client import PlatformClient, Retry
from hie.config import Settings
from hie.registry import Institution
from hie.server import BackgroundServer
from hie.storage import Database, Transaction, open_database
from hie.storage.declarations import set_declaration
from hie.storage.institutions import import_institutions
from hie.storage.tokens import create_token
from hie.synth import Upload, plan_month
from hie.validators.cda_rules.content import default_content_rules

pytestmark = pytest.mark.fault


def _uploads() -> tuple[Any, Upload, Upload]:
    plan = plan_month(
        date(2026, 10, 1),
        read_catalog(default_catalog_path()),
        default_content_rules(),
        seed=11,
        scale=0.2,
    )
    clean = [u for u in plan.uploads if u.expect == "accepted" and not u.note]
    cda = next(u for u in clean if u.channel == "cda")
    fhir = next(u for u in clean if u.channel == "fhir")  # a transaction Bundle of PUTs
    return plan, cda, fhir


@pytest.fixture
def platform(settings: Settings) -> Iterator[tuple[str, str, Database, Any]]:
    plan, cda, fhir = _uploads()
    database = open_database(settings)
    with database.transaction() as tx:
        import_institutions(
            tx.conn,
            [Institution(m.code, m.name, m.kind, m.district) for m in plan.members],
            source="test",
            actor="t",
        )
        for code, tables in plan.declarations.items():
            if tables is not None:
                set_declaration(tx.conn, code, tables, actor="t")
        _, token = create_token(tx.conn, role="admin", institution_code=None, label="", actor="t")
    with BackgroundServer(create_app(settings, database=database)) as server:
        yield server.url, token, database, (cda, fhir)
    database.close()


def _lose_the_next_commit(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The next write transaction commits, then fails as a connection dropped before the
    server's answer to COMMIT arrived would."""
    original = Database.transaction
    lost: list[int] = []

    @contextmanager
    def transaction(self: Database, **options: Any) -> Iterator[Transaction]:
        with original(self, **options) as tx:
            yield tx
        if not lost:
            lost.append(1)
            raise psycopg.OperationalError("consuming input failed: server closed the connection")

    monkeypatch.setattr(Database, "transaction", transaction)
    return lost


def _count(database: Database) -> dict[str, int]:
    with database.connection() as conn:
        row = conn.execute(
            "select (select count(*) from record_version) as versions,"
            " (select count(*) from upload) as uploads"
        ).fetchone()
    assert row is not None
    return dict(row)


@pytest.mark.parametrize("channel", ["cda", "fhir"])
def test_a_retry_after_an_unknown_commit_is_answered_without_storing_twice(
    platform: tuple[str, str, Database, Any], monkeypatch: pytest.MonkeyPatch, channel: str
) -> None:
    url, token, database, (cda, fhir) = platform
    lost = _lose_the_next_commit(monkeypatch)
    retries: list[Retry] = []
    with PlatformClient(url, token, sleep=lambda _: None, on_retry=retries.append) as client:
        if channel == "cda":
            receipt = client.submit_cda(cda.body)
            records = 1
        else:
            receipt = client.submit_fhir(fhir.body, institution=fhir.institution)
            records = len(json.loads(fhir.body)["entry"])
    assert lost, "the fault was not injected"
    # The first attempt was answered 503 (its commit had in fact succeeded); the retry found
    # the upload stored and answered with a receipt instead of storing it again.
    assert [r.status for r in retries] == [503]
    assert receipt.status == 200 and receipt.outcome == "unchanged", receipt.body
    # One upload row for the committed attempt, one for the retry; each record once.
    assert _count(database) == {"versions": records, "uploads": 2}
