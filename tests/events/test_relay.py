"""The relay as a process: killed with SIGKILL mid-stream and started again, it publishes every
event, each record's in order; a duplicate carries the same event id. And `hie events tail`."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from hie.config import Settings
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.storage.outbox import NewEvent, append_events
from tests.events.conftest import HIE, Consumer, hie_env

RECORDS, VERSIONS = 100, 12


def write_events(settings: Settings) -> None:
    """Versions of many records, interleaved as concurrent uploads would write them."""
    database = open_database(settings)
    start = datetime(2019, 7, 10, tzinfo=UTC)
    try:
        with database.transaction() as tx:
            add_institution(tx.conn, Institution("H1", "医院", "hospital"), actor="t")
            append_events(
                tx.conn,
                [
                    NewEvent(
                        event_id=uuid.uuid4(),
                        outcome="accepted",
                        institution_code="H1",
                        received_at=start + timedelta(seconds=v),
                        upload_id=uuid.uuid4(),
                        table_code="HSDA00.01",
                        record_kind="fhir",
                        logical_id=f"Patient/p{r}",
                        version=v,
                    )
                    for v in range(1, VERSIONS + 1)
                    for r in range(RECORDS)
                ],
            )
    finally:
        database.close()


def published(settings: Settings) -> tuple[int, int]:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value(), row_factory=dict_row) as conn:
        row = conn.execute(
            "select count(published_at) as done, count(*) as total from event_outbox"
        ).fetchone()
    assert row is not None
    return row["done"], row["total"]


def pending(env: dict[str, str]) -> int:
    out = subprocess.run(
        [*HIE, "events", "status", "--json"], env=env, capture_output=True, text=True, check=True
    ).stdout
    return int(json.loads(out)["pending"])


def wait_for(condition: object, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def test_relay_killed_mid_stream_and_restarted_publishes_every_event_in_order_per_record(
    event_settings: Settings, consumer: Consumer
) -> None:
    write_events(event_settings)
    total = RECORDS * VERSIONS
    relay = [*HIE, "events", "relay", "--batch", "5"]
    env = hie_env(event_settings)

    assert pending(env) == total  # what `hie events status` tells before any relay ran

    first = subprocess.Popen(relay, env=env)
    try:
        wait_for(lambda: published(event_settings)[0] >= 50)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    before = published(event_settings)[0]
    assert before < total  # killed mid-stream

    second = subprocess.Popen(relay, env=env)
    try:
        wait_for(lambda: published(event_settings)[0] == total)
    finally:
        second.send_signal(signal.SIGTERM)  # a clean stop
        assert second.wait(timeout=60) == 0

    assert pending(env) == 0
    assert event_settings.database_url is not None
    with psycopg.connect(event_settings.database_url.get_secret_value()) as conn:
        ids = {str(row[0]) for row in conn.execute("select event_id from event_outbox")}
    wait_for(
        lambda: (
            consumer.channel.queue_declare(consumer.queue, passive=True).method.message_count
            >= total
        )
    )
    messages = consumer.drain()
    assert {body["event_id"] for _, _, body in messages} == ids  # every event, at least once
    assert len(messages) >= total
    # A duplicate is the same event: same id, same body.
    by_id: dict[str, dict[str, object]] = {}
    for key, properties, body in messages:
        assert properties.message_id == body["event_id"]
        assert key == "record.accepted.hospital.HSDA00_01" and body["table"] == "HSDA00.01"
        assert by_id.setdefault(body["event_id"], body) == body
    # Each record's versions arrive in order (counting each event where it first arrives).
    seen: set[str] = set()
    versions: dict[str, list[int]] = {}
    for _, _, body in messages:
        if body["event_id"] not in seen:
            seen.add(body["event_id"])
            record = body["record"]
            versions.setdefault(record["id"], []).append(record["version"])
    assert all(v == list(range(1, VERSIONS + 1)) for v in versions.values())
    assert len(versions) == RECORDS


def test_hie_events_tail_shows_events_live(event_settings: Settings) -> None:
    env = hie_env(event_settings)
    tail = subprocess.Popen(
        [*HIE, "events", "tail", "--table", "HSDA00.01", "--kind", "hospital", "--count", "1"],
        env={**env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stdout is not None
        first = tail.stdout.readline()
        assert "listening on" in first and "record.*.hospital.HSDA00_01" in first
        write_events(event_settings)
        relay = subprocess.Popen([*HIE, "events", "relay"], env=env)
        try:
            out, _ = tail.communicate(timeout=120)
        finally:
            relay.send_signal(signal.SIGTERM)
            relay.wait(timeout=60)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 0
    assert event_settings.database_url is not None
    with psycopg.connect(event_settings.database_url.get_secret_value()) as conn:
        row = conn.execute("select event_id from event_outbox order by seq limit 1").fetchone()
    assert row is not None
    assert "record.accepted" in out and "Patient/p0 v1" in out and str(row[0]) in out
