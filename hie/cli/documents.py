"""``hie documents``: the MHD document registry."""

from __future__ import annotations

from typing import Annotated

import typer

from hie.cli.context import actor, console, database, reported_errors
from hie.config import load_settings
from hie.documents.service import rebuild_batch
from hie.storage.audit import record_event
from hie.storage.catalog import current_catalog

app = typer.Typer(help="The document registry (IHE MHD).", no_args_is_help=True)


@app.command("rebuild")
def rebuild(
    batch: Annotated[int, typer.Option(help="Documents registered per transaction.")] = 200,
) -> None:
    """Give every stored CDA document that has none its DocumentReference (documents stored
    before the registry existed). Safe to run again: documents already registered are skipped."""
    with reported_errors():
        settings = load_settings()
    total = 0
    with database(settings) as db:
        with db.connection() as conn:
            catalog = current_catalog(conn)
        after: tuple[str, str] | None = None
        while True:
            # One transaction per batch: a long backfill holds no lock for its whole run.
            with db.transaction() as tx:
                done, after = rebuild_batch(
                    tx.conn, catalog.get, after, zone=settings.zone, limit=max(1, batch)
                )
                if done:
                    record_event(tx.conn, actor(), "documents.rebuild", None, registered=done)
            total += done
            if after is None:
                break
    console.print(f"registered {total} stored CDA documents")
