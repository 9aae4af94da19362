"""``hie worker``: every background process one machine runs, as child processes: the Celery
workers of all queues, beat (the schedule; one per platform), the events relay (publishes the
outbox; a second one stands by), the subscription deliverer (FHIR rest-hook Subscriptions) and
the forwarder (sends accepted records upstream). ``--only`` runs one of them, for machines that
split the roles; ``celery -A hie.workers worker
-Q <prefix>.ingest`` still runs one queue alone."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Annotated

import typer

from hie.cli.context import console, fail, reported_errors
from hie.config import load_settings
from hie.workers.app import QUEUES, queue_name

ROLES = ("celery", "beat", "relay", "subscriptions", "forwarder")


def commands(
    prefix: str,
    data_dir: str,
    *,
    only: str | None,
    queues: list[str] | None,
    concurrency: int | None,
) -> list[list[str]]:
    """The command lines of the child processes."""
    base = [sys.executable, "-m", "celery", "-A", "hie.workers"]
    out = []
    if only in (None, "celery"):
        names = ",".join(queue_name(prefix, q) for q in (queues or list(QUEUES)))
        worker = [*base, "worker", "-Q", names, "--loglevel", "INFO"]
        if concurrency is not None:
            worker += ["--concurrency", str(concurrency)]
        out.append(worker)
    if only in (None, "beat"):
        out.append(
            [*base, "beat", "--loglevel", "INFO", "--schedule", f"{data_dir}/celerybeat-schedule"]
        )
    if only in (None, "relay"):
        out.append([sys.executable, "-m", "hie", "events", "relay"])
    if only in (None, "subscriptions"):
        out.append([sys.executable, "-m", "hie", "subscriptions", "deliver"])
    if only in (None, "forwarder"):
        out.append([sys.executable, "-m", "hie", "forward", "run"])
    return out


def worker(
    only: Annotated[
        str | None,
        typer.Option(
            help="Run only 'celery' (the workers), 'beat' (the schedule), 'relay' (events), "
            "'subscriptions' (the FHIR Subscription deliverer) or 'forwarder' (forwarding "
            "upstream)."
        ),
    ] = None,
    queue: Annotated[
        list[str] | None,
        typer.Option(help=f"Work only these queues ({', '.join(QUEUES)}); repeatable."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default: one per core).")
    ] = None,
) -> None:
    """Start the background processes of this machine: Celery workers for every queue, beat,
    the events relay, the subscription deliverer and the forwarder. Needs HIE_BROKER_URL
    (without a broker, `hie serve` works jobs itself). Stops them all on Ctrl-C or SIGTERM; exits
    when one of them exits."""
    with reported_errors():
        settings = load_settings()
    if only is not None and only not in ROLES:
        raise fail(f"--only takes {' or '.join(ROLES)}, not {only!r}", 2)
    unknown = [q for q in queue or [] if q not in QUEUES]
    if unknown:
        raise fail(f"unknown queue {unknown[0]!r}: the queues are {', '.join(QUEUES)}", 2)
    if settings.broker_url is None:
        raise fail(
            "HIE_BROKER_URL is not set: without a broker `hie serve` works the jobs itself "
            "and no worker is needed"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lines = commands(
        settings.task_queue,
        str(settings.data_dir),
        only=only,
        queues=queue,
        concurrency=concurrency,
    )
    children = [subprocess.Popen(line) for line in lines]  # noqa: S603 (our own interpreter)
    for line, child in zip(lines, children, strict=True):
        # celery's worker, beat; hie's events relay, subscriptions deliver, forward run
        role = " ".join(line[3:]) if line[2] == "hie" else line[5]
        console.print(f"started {role} (pid {child.pid})", highlight=False)

    def stop(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)  # warm shutdown: tasks in hand finish

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    finally:
        stop(signal.SIGTERM, None)
        for child in children:
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
            code = code or (child.returncode or 0)
    raise typer.Exit(0 if code in (0, -signal.SIGTERM) else 1)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The background side: the broker, each queue's waiting messages and live workers, the
    dead letters, and the open bulk jobs. Exit 1 when the broker does not answer."""
    import json

    from rich.table import Table as RichTable

    from hie.cli.context import database
    from hie.storage.jobs import open_jobs
    from hie.workers import broker_status, configure
    from hie.workers.app import queue_status

    with reported_errors():
        settings = load_settings()
    app = configure(settings)
    broker = broker_status(app)
    queues = queue_status(app) if broker["status"] == "ok" else {}
    with database(settings) as db, db.connection() as conn:
        jobs = open_jobs(conn)
    body = {"broker": broker, "queues": queues, "open_jobs": len(jobs)}
    if as_json:
        console.print_json(json.dumps(body))
    else:
        console.print(f"broker: {broker['status']} ({broker['mode']})", highlight=False)
        if queues.get("queues"):
            table = RichTable(title="queues")
            for column in ("queue", "waiting", "workers"):
                table.add_column(column)
            for name, queue in queues["queues"].items():
                table.add_row(
                    queue_name(settings, name), str(queue["messages"]), str(queue["consumers"])
                )
            console.print(table)
            console.print(f"dead letters: {queues['dead_letters']}", highlight=False)
        elif broker["mode"] == "in-process":
            console.print("no broker: `hie serve` works bulk jobs in its own thread")
        console.print(f"open bulk jobs: {len(jobs)}", highlight=False)
    raise typer.Exit(0 if broker["status"] == "ok" else 1)
