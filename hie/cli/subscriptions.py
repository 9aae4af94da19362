"""``hie subscriptions``: the FHIR Subscription deliverer (``deliver``; ``hie worker`` starts it)
and what the subscriptions stand at (``list``)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from hie.cli.context import console, database, fail, reported_errors, run_in_foreground
from hie.config import load_settings

app = typer.Typer(help="FHIR rest-hook Subscriptions: the deliverer, and their state.")


@app.command()
def deliver(
    attempts: Annotated[
        int, typer.Option(min=1, help="Tries of one delivery before the subscription errs.")
    ] = 8,
    backoff: Annotated[
        float, typer.Option(min=0.01, help="Seconds before the first retry (doubling after).")
    ] = 2.0,
) -> None:
    """Match record events against the active subscriptions and deliver to their endpoints, until
    SIGTERM or Ctrl-C. `hie worker` runs this beside the relay and the Celery workers."""
    from hie.subscriptions.deliverer import Deliverer

    with reported_errors():
        settings = load_settings()
    if settings.broker_url is None:
        raise fail("HIE_BROKER_URL is not set: subscriptions follow the events on RabbitMQ")
    stop = run_in_foreground()
    with database(settings) as db:
        worker = Deliverer(
            db,
            settings.broker_url.get_secret_value(),
            settings.zone,
            endpoints=settings.endpoint_policy,
            prefix=settings.task_queue,
            exchange=settings.events_exchange,
            attempts=attempts,
            backoff_base=backoff,
        )
        worker.run(stop)
    console.print(
        f"deliverer stopped: {worker.matched} matched, {worker.sent} sent", highlight=False
    )


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every subscription: status, criteria, and its deliveries by state."""
    from rich.table import Table as RichTable

    from hie.storage.subscriptions import delivery_counts, list_subscriptions

    with database() as db, db.connection() as conn:
        rows = list_subscriptions(conn, owner_token_id=None, limit=10_000)
        counts = {row["id"]: delivery_counts(conn, row["id"]) for row in rows}
    body = [
        {
            "id": row["id"],
            "status": row["status"],
            "error": row["error"],
            "criteria": row["criteria"],
            "owner": f"token:{row['owner_token_id']}",
            "deliveries": counts[row["id"]],
        }
        for row in rows
    ]
    if as_json:
        console.print_json(json.dumps(body))
        return
    table = RichTable(title="subscriptions")
    for column in ("id", "status", "criteria", "owner", "sent", "pending", "failed"):
        table.add_column(column)
    for item in body:
        d = item["deliveries"]
        table.add_row(
            item["id"],
            item["status"] + (f" ({item['error']})" if item["error"] else ""),
            item["criteria"],
            item["owner"],
            *(str(d.get(state, 0)) for state in ("sent", "pending", "failed")),
        )
    console.print(table)
