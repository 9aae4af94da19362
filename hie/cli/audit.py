"""``hie audit``: check the audit trail's hash chain, and read its recent entries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table as RichTable

from hie.cli.context import console, database, errors, fail
from hie.metrics.report import parse_month
from hie.storage.audit import EventFilter, search_events, verify_chain
from hie.storage.partitions import next_month

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


@app.command("verify")
def verify(
    month: Annotated[
        str | None,
        typer.Option(help="Only the chain segments of this month (YYYY-MM, UTC days)."),
    ] = None,
) -> None:
    """Walk every chain segment in order. Exit 0 when intact; exit 1 naming the first broken
    entry (edited, deleted, inserted or reordered)."""
    start = end = None
    if month is not None:
        try:
            start = parse_month(month)
        except ValueError as exc:
            raise fail(f"--month: {exc}", 2) from None
        end = next_month(start)
    with database() as db, db.connection() as conn:
        result = verify_chain(conn, start=start, end=end)
    scope = f" of {month}" if month else ""
    if result.intact:
        console.print(
            f"audit trail{scope} intact: {result.entries} entries in {result.segments} segments"
        )
        return
    first = result.breaks[0]
    errors.print(f"[bold red]audit trail{scope} broken:[/] first broken {first.describe()}")
    for other in result.breaks[1:]:
        errors.print(f"  also {other.describe()}", highlight=False)
    raise typer.Exit(1)


@app.command("list")
def list_command(
    actor: Annotated[str | None, typer.Option(help="Only this actor (token:12, cli:name).")] = None,
    action: Annotated[
        str | None, typer.Option(help="An action (fhir.read) or a code (C, R, U, D, E).")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="A resource (Patient/123) or a type (Patient).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time (ISO 8601; without an offset, UTC).")
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only refused or failed ones.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Recent audit entries, newest first."""
    moment = None
    if since is not None:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            raise fail(f"--since: {since!r} is not an ISO 8601 time", 2) from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    f = EventFilter(actor=actor, target=target, action=action, since=moment, failed=failed)
    with database() as db, db.connection() as conn:
        rows = search_events(conn, f, limit=limit)
    if as_json:
        for row in rows:
            shown = {k: v for k, v in row.items() if k not in ("day", "shard", "seq")}
            typer.echo(json.dumps(shown, default=str, ensure_ascii=False))
        return
    table = RichTable()
    for column in ("id", "at (UTC)", "actor", "role", "address", "action", "target", "outcome"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            row["actor"] + (f" ({row['institution']})" if row["institution"] else ""),
            row["role"] or "",
            row["address"] or "",
            row["action"],
            row["target"] or "",
            str(row["outcome"]),
        )
    console.print(table)
