"""What a task body works with: the caller's settings and database in-process, or one set per
worker process, opened on first use."""

from __future__ import annotations

import threading

import psycopg
from psycopg_pool import PoolTimeout

from hie.config import Settings, load_settings
from hie.storage import Database, open_database

# The only failures a task retries: the database or its pool briefly unreachable, a deadlock or
# serialization failure that a second attempt resolves. Anything else fails the task at once.
TRANSIENT: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    PoolTimeout,
)

_lock = threading.Lock()
_settings: Settings | None = None
_database: Database | None = None


def bind_runtime(settings: Settings, database: Database | None) -> None:
    """Make in-process tasks use the settings and database the application already has."""
    global _settings, _database
    with _lock:
        _settings, _database = settings, database


def task_settings() -> Settings:
    global _settings
    with _lock:
        if _settings is None:
            _settings = load_settings()
        return _settings


def task_database() -> Database:
    global _database
    settings = task_settings()
    with _lock:
        if _database is None:
            _database = open_database(settings)
        return _database
