"""Test fixtures on the real PostgreSQL and RabbitMQ.

PostgreSQL: HIE_TEST_POSTGRES_URL (default: the local server on 127.0.0.1:5432). Off CI, when no
server answers there, an embedded PostgreSQL is started for the session instead.
RabbitMQ: HIE_TEST_BROKER_URL (default guest@127.0.0.1:5672). Off CI, the tests that need it are
skipped with that reason when it does not answer; on CI (CI=true) they fail instead.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

# Settings come from the environment: keep the developer's own HIE_* out of the tests.
_TEST_POSTGRES = os.environ.pop(
    "HIE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_TEST_BROKER = os.environ.pop("HIE_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
for _name in [n for n in os.environ if n.startswith("HIE_")]:
    del os.environ[_name]

from hie.catalog import Catalog, default_catalog_path, read_catalog  # noqa: E402
from hie.config import Settings  # noqa: E402
from hie.storage import Database, open_database  # noqa: E402
from hie.workers import configure  # noqa: E402
from tests.rabbitmq import remove_queues  # noqa: E402

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser URL of a running PostgreSQL."""
    if _answers(_TEST_POSTGRES, 5432):
        yield _TEST_POSTGRES
        return
    if ON_CI:
        pytest.fail(f"PostgreSQL does not answer at {_TEST_POSTGRES}")
    from hie.storage.embedded import start_embedded

    server = start_embedded(tmp_path_factory.mktemp("pg") / "postgres")
    try:
        yield server.url
    finally:
        server.close()


def _create_database(admin_url: str, name: str, template: str | None = None) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        statement = sql.SQL("create database {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" template {}").format(sql.Identifier(template))
        conn.execute(statement)


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


@pytest.fixture
def empty_database_url(postgres_url: str) -> Iterator[str]:
    """A new database with nothing in it, dropped after the test."""
    name = f"hie_test_{uuid.uuid4().hex[:12]}"
    _create_database(postgres_url, name)
    try:
        yield with_database(postgres_url, name)
    finally:
        _drop_database(postgres_url, name)


@pytest.fixture(scope="session")
def template_database(postgres_url: str) -> Iterator[str]:
    """One migrated database per test session (with the default catalog), used as a template."""
    name = f"hie_template_{uuid.uuid4().hex[:12]}"
    _create_database(postgres_url, name)
    url = with_database(postgres_url, name)
    database = open_database(Settings(database_url=url, data_dir=Path("/nonexistent")))
    database.close()
    try:
        yield name
    finally:
        _drop_database(postgres_url, name)


@pytest.fixture(scope="session")
def make_database(postgres_url: str, template_database: str) -> Iterator[Callable[[], str]]:
    """Makes migrated databases (copies of the template); all are dropped at the end."""
    made: list[str] = []

    def make() -> str:
        name = f"hie_test_{uuid.uuid4().hex[:12]}"
        _create_database(postgres_url, name, template=template_database)
        made.append(name)
        return with_database(postgres_url, name)

    try:
        yield make
    finally:
        for name in made:
            _drop_database(postgres_url, name)


@pytest.fixture
def database_url(make_database: Callable[[], str]) -> str:
    """A migrated database of the test's own, for code that opens its own connections
    (CLI commands, the HTTP app, worker processes)."""
    return make_database()


@pytest.fixture(scope="session")
def rollback_database_url(postgres_url: str, template_database: str) -> Iterator[str]:
    """A migrated database that tests only ever touch inside rolled-back transactions.

    Separate from the template, which must have no connections when databases are copied from it.
    """
    name = f"hie_rollback_{uuid.uuid4().hex[:12]}"
    _create_database(postgres_url, name, template=template_database)
    try:
        yield with_database(postgres_url, name)
    finally:
        _drop_database(postgres_url, name)


@pytest.fixture
def db(rollback_database_url: str) -> Iterator[Database]:
    """The migrated database inside a transaction that is rolled back after the test."""
    url = rollback_database_url
    with (
        psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn,
        conn.transaction(force_rollback=True),
    ):
        yield Database(connection=conn)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url, data_dir=tmp_path, secret_key=secrets.token_urlsafe(48)
    )


@pytest.fixture(scope="session")
def broker_url() -> str:
    if not _answers(_TEST_BROKER, 5672):
        message = f"RabbitMQ does not answer at {urlsplit(_TEST_BROKER).hostname}"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    return _TEST_BROKER


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public test material beside the checkout (``../shared/data``); absent on a user's
    fresh clone, where the tests that read it skip with that reason."""
    if not SHARED_DATA.is_dir():
        if ON_CI:
            pytest.fail(f"the shared test data is missing at {SHARED_DATA}")
        pytest.skip("../shared/data (public test material) is not beside this checkout")
    return SHARED_DATA


@pytest.fixture
def queue_prefix(broker_url: str) -> Iterator[str]:
    """A ``HIE_TASK_QUEUE`` of the test's own, its queues removed from the broker afterwards."""
    prefix = f"hie-test-{uuid.uuid4().hex[:8]}"
    yield prefix
    remove_queues(broker_url, prefix)


@pytest.fixture(scope="session")
def worker_process(
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
            # Its own node name: two test runs on one RabbitMQ must not share a pidbox queue.
            "--hostname",
            f"{queue}@%h",
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
        secret_key=secrets.token_urlsafe(48),
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
        remove_queues(broker_url, queue)
        if process.returncode not in (0, -signal.SIGQUIT):
            print((tmp_path / "worker.log").read_text())


@pytest.fixture
def worker(worker_process: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Tasks go through RabbitMQ to the session's worker process during the test."""
    configure(worker_process)
    yield worker_process
    configure(Settings(data_dir=tmp_path))


CDA_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cda"


class CdaFixtures:
    """The CDA fixture files: bytes, a copy with edits, and the line a piece of text is on (so
    that tests assert real line numbers)."""

    folder = CDA_FIXTURES

    def bytes(self, name: str) -> bytes:
        return (CDA_FIXTURES / name).read_bytes()

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
