"""Tasks leave only after their transaction commits: in-process, and through RabbitMQ to a real
worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from hie.config import Settings
from hie.storage import Database, open_database
from hie.workers import configure
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


@pytest.fixture(scope="module")
def worker(
    make_database, broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """A real `celery -A hie.workers worker` process on a database and a queue of its own."""
    queue = f"hie-test-{uuid.uuid4().hex[:8]}"
    database_url = make_database()
    tmp_path = tmp_path_factory.mktemp("worker")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
    env |= {
        "HIE_DATABASE_URL": database_url,
        "HIE_BROKER_URL": broker_url,
        "HIE_TASK_QUEUE": queue,
        "HIE_DATA_DIR": str(tmp_path),
    }
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "hie.workers",
            "worker",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    broker_settings = Settings(
        database_url=database_url,
        broker_url=broker_url,
        task_queue=queue,
        data_dir=tmp_path,
        secret_key="s" * 40,
    )
    configure(broker_settings)
    try:
        yield broker_settings
    finally:
        # Cold shutdown: the tasks are done, and a warm one waits out broker timeouts.
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        configure(Settings(data_dir=tmp_path))
        if process.returncode not in (0, -signal.SIGQUIT):
            print((tmp_path / "worker.log").read_text())


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
        _, waiting, _ = connection.default_channel.queue_declare(worker.task_queue, passive=True)
    assert waiting == 0
