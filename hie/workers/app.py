"""The Celery application: RabbitMQ when a broker is configured, in-process otherwise."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import kombu.exceptions
from celery import Celery, current_app
from celery.schedules import crontab
from celery.signals import worker_ready
from kombu import Exchange, Queue

from hie.config import Settings
from hie.errors import Unavailable

log = logging.getLogger(__name__)

TASK_MODULES = ["hie.workers.maintenance", "hie.workers.reports", "hie.workers.ingest"]

# The queues, each worked by its own workers if need be: a night's flood of bulk uploads on
# `ingest` never delays the month's report on `figures`.
QUEUES = ("ingest", "figures", "maintenance")
ROUTES = {
    "hie.workers.ingest.split_job": "ingest",
    "hie.workers.ingest.ingest_items": "ingest",
    "hie.workers.ingest.sweep_jobs": "maintenance",
    "hie.workers.ingest.record_dead_letters": "maintenance",
    "hie.workers.reports.*": "figures",
    "hie.workers.maintenance.*": "maintenance",
}
# A message redelivered this often (its worker died each time) is dead-lettered; the dead
# letters of jobs are recorded on their items (hie.workers.deadletters, `hie jobs dead`).
DELIVERY_LIMIT = 10


def queue_name(settings_or_prefix: Settings | str, queue: str) -> str:
    """The RabbitMQ name of one of ``QUEUES`` (or ``dead``): ``HIE_TASK_QUEUE`` as prefix, so
    that two platforms (or test runs) on one broker never share a queue."""
    prefix = (
        settings_or_prefix if isinstance(settings_or_prefix, str) else settings_or_prefix.task_queue
    )
    return f"{prefix}.{queue}"


def declared_queues(prefix: str) -> list[Queue]:
    """Quorum queues (replicated, and safe from a node's loss in a cluster) whose rejected and
    over-delivered messages go to the dead-letter queue."""
    dead = queue_name(prefix, "dead")
    arguments = {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": dead,
        "x-dead-letter-routing-key": dead,
        "x-delivery-limit": DELIVERY_LIMIT,
    }
    return [
        Queue(
            queue_name(prefix, name),
            Exchange(queue_name(prefix, name), type="direct"),
            routing_key=queue_name(prefix, name),
            queue_arguments=arguments,
        )
        for name in QUEUES
    ]


def dead_letter_queue(prefix: str) -> Queue:
    dead = queue_name(prefix, "dead")
    return Queue(
        dead,
        Exchange(dead, type="direct"),
        routing_key=dead,
        queue_arguments={"x-queue-type": "quorum"},
    )


def configure(settings: Settings) -> Celery:
    """Make a Celery app from ``settings`` and make it the current one.

    Tasks are declared with ``shared_task``, so they are sent through whichever app is current:
    import time makes one from the environment; entry points given explicit settings (tests, an
    embedding application) call this again, and nothing of the old app's connections is reused.
    """
    release(current_app)
    app = Celery("hie", include=TASK_MODULES, set_as_current=True)
    common: dict[str, Any] = {
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "timezone": settings.timezone,
        "enable_utc": True,
        "task_queues": declared_queues(settings.task_queue),
        "task_default_queue": queue_name(settings, "maintenance"),
        "task_routes": {
            task: {"queue": queue_name(settings, queue)} for task, queue in ROUTES.items()
        },
        # A task is acknowledged when it has finished, and given back if its worker dies, so that
        # a crash loses nothing; one task at a time per process keeps long tasks from hoarding.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        # RabbitMQ gone mid-task: the task in hand runs to its end (its items are claimed in
        # their own transactions) and, its acknowledgement lost with the connection, comes back
        # once the worker has reconnected and finds them stored. Celery 6 would cancel it
        # instead, throwing away work already done: kept as it is.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "result_expires": 3600,
        "beat_schedule": {
            # Jobs whose messages were lost or dead-lettered are sent again.
            "sweep-jobs": {
                "task": "hie.workers.ingest.sweep_jobs",
                "schedule": 300.0,
            },
            # Ranges the broker dead-lettered: their poison item set aside with its reason,
            # the rest sent again (a minute's wait at most for a batch's other items).
            "record-dead-letters": {
                "task": "hie.workers.ingest.record_dead_letters",
                "schedule": 60.0,
            },
            "partitions-ahead": {
                "task": "hie.workers.maintenance.create_partitions",
                "schedule": 6 * 3600.0,
            },
            # Events published a week ago leave the outbox.
            "purge-events": {
                "task": "hie.workers.maintenance.purge_events",
                "schedule": crontab(minute=15, hour=3),
            },
            # The month in progress, refreshed every hour.
            "report-current-month": {
                "task": "hie.workers.reports.compute_month_report",
                "schedule": crontab(minute=5),
                "args": ("current",),
            },
            # The month just closed, finalized shortly after midnight on the 1st (platform zone).
            "report-previous-month": {
                "task": "hie.workers.reports.compute_month_report",
                "schedule": crontab(minute=30, hour=0, day_of_month=1),
                "args": ("previous",),
            },
        },
    }
    if settings.broker_url is None:
        app.conf.update(
            broker_url="memory://",
            result_backend="cache+memory://",
            task_always_eager=True,
            task_eager_propagates=True,
            task_store_eager_result=False,
            **common,
        )
    else:
        app.conf.update(
            broker_url=settings.broker_url.get_secret_value(),
            result_backend="rpc://",
            # Bounds how long queueing a task tries to reach the broker (kombu keeps retrying
            # for this long), so a request is answered 503 promptly while RabbitMQ is down.
            broker_connection_timeout=settings.broker_timeout,
            task_always_eager=False,
            task_eager_propagates=False,
            **common,
        )
    # Current for this thread, and the default for every other (request handlers run in a pool).
    app.set_current()
    app.set_default()
    return app


def release(app: Celery) -> None:
    """Close the broker connections an app opened: its pool and a result consumer, if any."""
    backend = getattr(app._local, "backend", None)  # only if a result was ever awaited
    consumer = getattr(backend, "result_consumer", None)
    if consumer is not None and getattr(consumer, "_connection", None) is not None:
        consumer.stop()
    app.close()


def send_task(task: Any, *args: Any) -> Any:
    """Queue ``task`` (its ``AsyncResult``), or raise ``Unavailable("broker")`` when the broker
    cannot be reached within ``HIE_BROKER_TIMEOUT``: nothing was queued, the caller may retry."""
    try:
        return task.apply_async(args=args)
    except kombu.exceptions.OperationalError as exc:
        log.warning("broker unavailable while queueing %s: %s", task.name, type(exc).__name__)
        raise Unavailable("broker") from None


def broker_status(app: Celery) -> dict[str, str]:
    """Whether the broker answers; in-process mode has none to ask."""
    if app.conf.task_always_eager:
        return {"status": "ok", "mode": "in-process"}
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=app.conf.broker_connection_timeout)
    except Exception as exc:
        return {"status": "unavailable", "mode": "rabbitmq", "error": type(exc).__name__}
    return {"status": "ok", "mode": "rabbitmq"}


def declare_dead_letters(app: Celery) -> None:
    """The dead-letter exchange and queue (nobody consumes it, so no worker declares it)."""
    prefix = str(app.conf.task_default_queue).rsplit(".", 1)[0]
    with app.connection_for_write() as connection:
        dead_letter_queue(prefix).declare(channel=connection.default_channel)


@worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None) or current_app
    try:
        declare_dead_letters(app)
    except Exception as exc:  # the worker runs on; the next start declares it
        log.warning("dead-letter queue not declared: %s", type(exc).__name__)


def queue_status(app: Celery) -> dict[str, Any]:
    """Messages waiting and consumers (live worker processes) of every queue, and the dead
    letters; in-process mode has no queues."""
    if app.conf.task_always_eager:
        return {"mode": "in-process"}
    prefix = str(app.conf.task_default_queue).rsplit(".", 1)[0]
    queues: dict[str, Any] = {}
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=app.conf.broker_connection_timeout)
        for name in (*QUEUES, "dead"):
            channel = connection.channel()
            try:
                _, messages, consumers = channel.queue_declare(
                    queue_name(prefix, name), passive=True
                )
                queues[name] = {"messages": messages, "consumers": consumers}
            except Exception:  # not declared yet: no worker ever started
                queues[name] = {"messages": 0, "consumers": 0, "declared": False}
            finally:
                with contextlib.suppress(Exception):  # a channel closed by the 404 already
                    channel.close()
    return {
        "mode": "rabbitmq",
        "queues": {k: v for k, v in queues.items() if k != "dead"},
        "dead_letters": queues["dead"]["messages"],
        "workers": max(queues[name]["consumers"] for name in QUEUES),
    }
