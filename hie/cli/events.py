"""``hie events``: the record events of the ``hie.events`` exchange: ``tail`` (watch them live),
``relay`` (the process publishing the outbox; ``hie worker`` starts it) and ``status``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from hie.cli.context import console, database, fail, reported_errors, run_in_foreground
from hie.config import Settings, load_settings

app = typer.Typer(help="Record events for downstream systems: tail, relay, status.")


def _broker_url(settings: Settings) -> str:
    if settings.broker_url is None:
        raise fail("HIE_BROKER_URL is not set: events are published to RabbitMQ")
    return settings.broker_url.get_secret_value()


def binding_key(outcome: str | None, kind: str | None, table: str | None) -> str:
    """The topic pattern of ``tail``'s filters (``*`` for each one not given)."""
    from hie.events.model import routing_segment

    parts = [outcome, kind, table]
    return "record." + ".".join(routing_segment(p) if p else "*" for p in parts)


@app.command()
def tail(
    table: Annotated[str | None, typer.Option(help="Only this catalog table (e.g. C0002).")] = None,
    kind: Annotated[
        str | None, typer.Option(help="Only institutions of this kind (hospital, district).")
    ] = None,
    outcome: Annotated[
        str | None, typer.Option(help="Only 'accepted' or 'rejected' records.")
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many events.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each event's JSON body.")] = False,
) -> None:
    """Print record events as they are published, until Ctrl-C. A temporary queue of its own is
    bound to the exchange: watching takes nothing from other consumers."""
    import pika

    from hie.events.broker import connection_parameters, declare_exchange

    if outcome not in (None, "accepted", "rejected"):
        raise fail(f"--outcome takes accepted or rejected, not {outcome!r}", 2)
    with reported_errors():
        settings = load_settings()
    key = binding_key(outcome, kind, table)
    try:
        broker = pika.BlockingConnection(connection_parameters(_broker_url(settings)))
    except pika.exceptions.AMQPError as exc:
        raise fail(f"RabbitMQ does not answer ({type(exc).__name__})") from None
    channel = broker.channel()
    declare_exchange(channel, settings.events_exchange)
    queue = channel.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
    channel.queue_bind(queue=queue, exchange=settings.events_exchange, routing_key=key)
    console.print(f"listening on {settings.events_exchange} for {key}", highlight=False)
    seen = 0
    try:
        for _method, _properties, body in channel.consume(queue, auto_ack=True):
            event = json.loads(body)
            if as_json:
                console.print_json(json.dumps(event))
            else:
                console.print(_line(event), highlight=False)
            seen += 1
            if count is not None and seen >= count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        if broker.is_open:
            broker.close()


def _line(event: dict[str, Any]) -> str:
    record = event.get("record") or {}
    what = (
        f"{record.get('resource_type')}/{record.get('id')} v{record.get('version')}"
        if record.get("kind") == "fhir"
        else f"document {record.get('document_id')} v{record.get('version')}"
        if record
        else "rules " + ", ".join(event.get("rules") or [])
    )
    style = "green" if event["type"] == "record.accepted" else "red"
    institution = event["institution"]
    return (
        f"{event['received_at']} [{style}]{event['type']}[/] "
        f"{institution['code']} ({institution['kind']}) {event['table'] or '-'} {what} "
        f"[dim]{event['event_id']}[/]"
    )


@app.command()
def relay(
    batch: Annotated[int, typer.Option(min=1, help="Events read and published per round.")] = 200,
) -> None:
    """Publish the outbox to the events exchange until SIGTERM or Ctrl-C (a batch in hand is
    finished first). `hie worker` runs this beside the Celery workers."""
    from hie.events.relay import Relay

    with reported_errors():
        settings = load_settings()
    url = _broker_url(settings)
    stop = run_in_foreground()
    with database(settings) as db:
        worker = Relay(db, url, settings.events_exchange, batch=batch)
        worker.run(stop)
    console.print(f"relay stopped: {worker.published} events published", highlight=False)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Events waiting in the outbox for the relay, and since when."""
    from hie.storage.outbox import outbox_counts

    with database() as db, db.connection() as conn:
        counts = outbox_counts(conn)
    oldest = counts["oldest_pending"]
    body = {"pending": counts["pending"], "oldest_pending": oldest and oldest.isoformat()}
    if as_json:
        console.print_json(json.dumps(body))
    else:
        console.print(
            f"pending: {body['pending']}"
            + (f" (oldest written {body['oldest_pending']})" if oldest else ""),
            highlight=False,
        )
