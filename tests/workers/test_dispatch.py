"""Tasks leave only after their transaction commits: in-process, and through RabbitMQ to a real
worker process."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hie.config import Settings
from hie.storage import Database, open_database
from hie.workers import configure
from hie.workers.app import queue_name
from hie.workers.dispatch import send_after_commit
from hie.workers.maintenance import create_partitions
from hie.workers.runtime import bind_runtime


class Boom(Exception):
    pass


def partition_exists(database: Database, name: str) -> bool:
    with database.connection() as conn:
        return conn.execute("select to_regclass(%s) is not null as e", (name,)).fetchone()["e"]  # type: ignore[index]


def send_in_rolled_back_transaction(database: Database, month: str) -> None:
    with pytest.raises(Boom), database.transaction() as tx:  # noqa: PT012 (the raise is the point)
        tx.conn.execute("insert into audit_event (actor, action) values ('test', 'doomed')")
        send_after_commit(tx, create_partitions, month)
        raise Boom


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = open_database(settings)
    yield database
    database.close()


def test_in_process_task_runs_after_commit_and_not_after_rollback(
    settings: Settings, database: Database
) -> None:
    configure(settings)
    bind_runtime(settings, database)
    try:
        send_in_rolled_back_transaction(database, "2030-01")
        assert not partition_exists(database, "record_version_y2030m01")
        with database.transaction() as tx:
            send_after_commit(tx, create_partitions, "2030-02")
            # Not yet: the transaction has not committed.
            assert not partition_exists(database, "record_version_y2030m02")
        assert partition_exists(database, "record_version_y2030m02")
        assert partition_exists(database, "upload_y2030m02")
    finally:
        bind_runtime(settings, None)


def wait_for(predicate, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def worker_database(worker: Settings) -> Iterator[Database]:
    database = open_database(worker)
    yield database
    database.close()


def test_task_runs_in_a_worker_process_through_rabbitmq(
    worker: Settings, worker_database: Database
) -> None:
    database = worker_database
    # The result travels back over RabbitMQ too: what `hie metrics compute` will wait on.
    created = create_partitions.delay("2031-03").get(timeout=60)
    assert created == ["upload_y2031m03", "record_version_y2031m03"]
    assert partition_exists(database, "record_version_y2031m03")


def test_task_of_a_rolled_back_transaction_never_reaches_the_worker(
    worker: Settings, worker_database: Database
) -> None:
    database = worker_database
    from celery import current_app

    send_in_rolled_back_transaction(database, "2031-01")
    with database.transaction() as tx:
        send_after_commit(tx, create_partitions, "2031-02")
    assert wait_for(lambda: partition_exists(database, "record_version_y2031m02"))
    # The queue is first in, first out and the worker takes one task at a time: had the first
    # task been sent, it would have run before the second.
    assert not partition_exists(database, "record_version_y2031m01")
    with current_app.connection_for_read() as connection:
        _, waiting, _ = connection.default_channel.queue_declare(
            queue_name(worker, "maintenance"), passive=True
        )
    assert waiting == 0
