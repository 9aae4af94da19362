"""``hie forward``: forwarding accepted records to upstream FHIR servers (the provincial
platform): ``add``, ``list``, ``remove``, ``status``, ``retry``, and ``run`` (the forwarder process;
``hie worker`` starts it)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from hie.cli.context import actor, console, database, fail, reported_errors, run_in_foreground
from hie.config import Settings, load_settings

app = typer.Typer(
    help="Forward accepted records to upstream FHIR servers: add, list, remove, status, retry, "
    "run.",
    no_args_is_help=True,
)


def _broker_url(settings: Settings) -> str | None:
    return None if settings.broker_url is None else settings.broker_url.get_secret_value()


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="A name of your choice (lower case, e.g. province).")],
    url: Annotated[str, typer.Argument(help="The upstream FHIR base URL.")],
    token_env: Annotated[
        str,
        typer.Option(
            "--token-env",
            help="The environment variable holding the upstream's bearer token, read by the "
            "forwarder at each send (the token itself is never stored).",
        ),
    ],
    tables: Annotated[
        list[str] | None,
        typer.Option("--tables", help="Forward only these catalog tables (repeatable)."),
    ] = None,
    documents: Annotated[
        str,
        typer.Option(
            help="CDA documents as 'mhd' (DocumentReference + Binary) or 'inline' "
            "(the bytes in the DocumentReference, as another hie takes them)."
        ),
    ] = "mhd",
) -> None:
    """Add a destination. With HIE_BROKER_URL set, its queue is declared at once: the events of
    accepted records are kept for it from now on, even before a forwarder runs."""
    import pika.exceptions

    from hie.forwarding import queues, service
    from hie.storage.catalog import current_catalog

    with reported_errors():
        settings = load_settings()
    with database(settings) as db, reported_errors(), db.transaction() as tx:
        destination = service.checked_destination(
            name, url, token_env, tables, documents, current_catalog(tx.conn)
        )
        service.add(tx.conn, destination, actor=actor())
        broker = _broker_url(settings)
        if broker is not None:
            # Inside the transaction: no destination is stored whose queue could not be made.
            queue = queues.queue_of(settings.task_queue, name)
            try:
                queues.declare(broker, settings.events_exchange, queue, destination.tables)
            except (pika.exceptions.AMQPError, OSError) as exc:
                raise fail(f"RabbitMQ does not answer ({type(exc).__name__})") from None
    what = ", ".join(destination.tables) if destination.tables else "every table"
    console.print(f"added {name}: {what} to {destination.base_url}", highlight=False)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The destinations (the token's variable name, never the token)."""
    from rich.table import Table

    from hie.storage.forwarding import list_destinations

    with database() as db, db.connection() as conn:
        found = list_destinations(conn)
    if as_json:
        body = [
            {
                "name": d.name,
                "url": d.base_url,
                "token_env": d.token_env,
                "tables": list(d.tables) if d.tables else None,
                "documents": d.documents,
            }
            for d in found
        ]
        console.print_json(json.dumps(body))
        return
    if not found:
        console.print("no destinations: add one with `hie forward add NAME URL --token-env VAR`")
        return
    table = Table(title="destinations")
    for column in ("name", "url", "token variable", "tables", "documents"):
        table.add_column(column)
    for d in found:
        tables = ", ".join(d.tables) if d.tables else "all"
        table.add_row(d.name, d.base_url, d.token_env, tables, d.documents)
    console.print(table)


@app.command()
def remove(name: Annotated[str, typer.Argument(help="The destination's name.")]) -> None:
    """Remove a destination, its delivery state and its queue (events waiting in it are
    dropped)."""
    import pika.exceptions

    from hie.forwarding import queues, service

    with reported_errors():
        settings = load_settings()
    with database(settings) as db, reported_errors(), db.transaction() as tx:
        service.remove(tx.conn, name, actor=actor())
    # After the commit: a forwarder whose consumer the deletion cancels finds the destination
    # gone and does not declare the queue again.
    broker = _broker_url(settings)
    if broker is not None:
        try:
            queues.delete(broker, queues.queue_of(settings.task_queue, name))
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise fail(
                f"removed {name}, but RabbitMQ does not answer ({type(exc).__name__}): "
                f"delete the queue {queues.queue_of(settings.task_queue, name)} by hand"
            ) from None
    console.print(f"removed {name}", highlight=False)


@app.command()
def retry(name: Annotated[str, typer.Argument(help="The destination's name.")]) -> None:
    """Send a destination's failed records again (once the upstream or its configuration is
    fixed). Records whose event left the outbox (7 days after publication) cannot be."""
    import pika.exceptions

    from hie.forwarding import service

    with reported_errors():
        settings = load_settings()
    broker = _broker_url(settings)
    if broker is None:
        raise fail("HIE_BROKER_URL is not set: the forwarder reads the events from RabbitMQ")
    with database(settings) as db, reported_errors():
        try:
            again, left = service.retry_failed(db, broker, settings.task_queue, name)
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise fail(f"RabbitMQ does not answer ({type(exc).__name__})") from None
    console.print(f"{name}: {again} failed records sent again", highlight=False)
    if left:
        console.print(f"{left} failed records are no longer in the outbox", highlight=False)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per destination: pending (waiting in its queue or being retried), sent and failed, and
    the latest failures. Exit 1 when some record failed."""
    from rich.table import Table

    from hie.forwarding import service

    with reported_errors():
        settings = load_settings()
    with database(settings) as db, db.connection() as conn:
        body = service.current_status(conn, _broker_url(settings), settings.task_queue)
    if as_json:
        console.print_json(json.dumps(body))
    elif not body:
        console.print("no destinations")
    else:
        table = Table(title="forwarding")
        for column in ("destination", "pending", "sent", "failed", "last activity"):
            table.add_column(column)
        for row in body:
            pending = str(row["pending"]) + ("" if row["queued"] is not None else " (+ queue?)")
            table.add_row(
                row["name"], pending, str(row["sent"]), str(row["failed"]), row["last_activity"]
            )
        console.print(table)
        for row in body:
            for failure in row["recent_failures"]:
                console.print(
                    f"{row['name']}: {failure['record']} v{failure['version']} "
                    f"({failure['institution']}): {failure['error']}",
                    highlight=False,
                    markup=False,
                )
    raise typer.Exit(1 if any(row["failed"] for row in body) else 0)


@app.command()
def run() -> None:
    """Forward until SIGTERM or Ctrl-C: a consumer per destination, following additions and
    removals. `hie worker` runs this beside the Celery workers and the relay."""
    from hie.forwarding.forwarder import Forwarder

    with reported_errors():
        settings = load_settings()
    broker = _broker_url(settings)
    if broker is None:
        raise fail("HIE_BROKER_URL is not set: the forwarder reads the events from RabbitMQ")
    stop = run_in_foreground()
    with database(settings) as db:
        forwarder = Forwarder(db, broker, settings.events_exchange, settings.task_queue)
        forwarder.run(stop)
    console.print(f"forwarder stopped: {forwarder.sent} records sent", highlight=False)
