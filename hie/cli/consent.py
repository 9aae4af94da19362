"""``hie consent``: residents' consents and the break-glass review list."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table as RichTable

from hie.cli.context import actor, console, database
from hie.consent import service
from hie.storage.audit import record_event

app = typer.Typer(help="Consent to share records, and break-glass accesses.", no_args_is_help=True)


@app.command("breakglass")
def breakglass(
    review: Annotated[
        int | None, typer.Option(help="Mark this break-glass access reviewed.")
    ] = None,
    all_entries: Annotated[
        bool, typer.Option("--all", help="Reviewed ones too, not only those to review.")
    ] = False,
) -> None:
    """Accesses made by break-glass (without consent, or over a resident's deny, with a stated
    reason), to review."""
    with database() as db, db.transaction() as tx:
        if review is not None:
            service.review_break_glass(tx.conn, review, actor=actor())
            record_event(tx.conn, actor(), "consent.breakglass.review", f"break-glass/{review}")
            console.print(f"break-glass access {review} reviewed")
            return
        entries = service.break_glass_list(tx.conn, all_entries=all_entries)
    columns = ["id", "when", "who", "institution", "person", "records of", "target", "reason"]
    table = RichTable(*columns)
    if all_entries:
        table.add_column("reviewed")
    for entry in entries:
        row = [
            str(entry["id"]),
            entry["at"].strftime("%Y-%m-%d %H:%M:%S"),
            entry["actor"],
            entry["institution_code"] or "",
            str(entry["person_id"]),
            entry["source_institution"],
            entry["target"] or "",
            entry["reason"],
        ]
        if all_entries:
            reviewed = entry["reviewed_at"]
            row.append("" if reviewed is None else f"{reviewed:%Y-%m-%d} {entry['reviewed_by']}")
        table.add_row(*row)
    console.print(table)
    for entry in entries:
        # Below the table, not a column: the consent's id must stay whole on a narrow terminal.
        if entry.get("overrode_deny"):
            console.print(
                f"{entry['id']}: overrode the resident's deny in {entry['overrode_deny']}",
                soft_wrap=True,
            )
    console.print(f"{len(entries)} {'entries' if all_entries else 'to review'}")
