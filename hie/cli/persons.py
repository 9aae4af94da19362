"""``hie persons``: the person index: show a person, the review list, merge and unmerge."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table as RichTable

from hie.cli.context import actor, console, database, fail
from hie.persons import service
from hie.persons.model import RESIDENT_ID, SYSTEM_NAMES, Key, mask
from hie.storage import persons as store
from hie.storage.audit import record_event

app = typer.Typer(help="The person index: one resident across institutions.", no_args_is_help=True)


def _shown(system: str, value: str) -> str:
    return mask(Key(system, value)) if system == RESIDENT_ID else value


@app.command("show")
def show(
    person: Annotated[int | None, typer.Argument(help="Person id.")] = None,
    identifier: Annotated[
        str | None,
        typer.Option(help="Find the person by SYSTEM|VALUE instead (SYSTEM an OID or its URI)."),
    ] = None,
    institution: Annotated[
        str, typer.Option(help="The institution of a medical-record number.")
    ] = "",
) -> None:
    """A person's records, identifiers (resident ID numbers masked) and history."""
    if (person is None) == (identifier is None):
        raise fail("give a person id or --identifier SYSTEM|VALUE", 2)
    found: list[int] = [] if person is None else [person]
    with database() as db, db.transaction() as tx:
        if identifier is not None:
            system, _, value = identifier.partition("|")
            found = service.find_persons(tx.conn, system, value, institution)
        if not found:
            raise fail("no person has that identifier")
        view = service.show(tx.conn, found[0])
        record_event(tx.conn, actor(), "person.show", f"person/{found[0]}")
    console.print(f"person {view.person_id}")
    records = RichTable("institution", "record", "linked by", "score", "linked at")
    for link in view.links:
        records.add_row(
            link.institution_code,
            link.record_id,
            SYSTEM_NAMES.get(link.rule, link.rule),
            "" if link.score is None else f"{link.score:.2f}",
            link.linked_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(records)
    identifiers = RichTable("institution", "record", "identifier", "value")
    for row in view.identifiers:
        identifiers.add_row(
            row["institution_code"],
            row["record_id"],
            SYSTEM_NAMES.get(row["system"], row["system"]),
            _shown(row["system"], row["value"]),
        )
    console.print(identifiers)
    history = RichTable("when", "action", "person", "other", "record", "by")
    for entry in view.history:
        history.add_row(
            entry["at"].strftime("%Y-%m-%d %H:%M"),
            entry["action"] + (" (undone)" if entry["undone_by"] else ""),
            str(entry["person_id"]),
            "" if entry["other_person_id"] is None else str(entry["other_person_id"]),
            f"{entry['institution_code'] or ''} {entry['record_id'] or ''}".strip(),
            entry["actor"],
        )
    console.print(history)


@app.command("review")
def review(
    dismiss: Annotated[
        int | None, typer.Option(help="Close this review item: not the same person.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many items.")] = 100,
) -> None:
    """Uncertain matches: `hie persons merge CANDIDATE PERSON` joins them, --dismiss ID not."""
    with database() as db, db.transaction() as tx:
        if dismiss is not None:
            service.dismiss_review(tx.conn, dismiss, actor=actor())
            record_event(tx.conn, actor(), "person.review.dismiss", f"review/{dismiss}")
            console.print(f"review {dismiss} dismissed")
            return
        items = store.open_reviews(tx.conn, limit)
    table = RichTable("review", "institution", "record", "person", "candidate", "score", "parts")
    for item in items:
        table.add_row(
            str(item["id"]),
            item["institution_code"],
            item["record_id"],
            str(item["person_id"]),
            str(item["candidate_id"]),
            f"{item['score']:.2f}",
            " ".join(f"{k}={v:.2f}" for k, v in item["parts"].items()),
        )
    console.print(table)
    console.print(f"{len(items)} open")


@app.command("merge")
def merge(
    survivor: Annotated[int, typer.Argument(help="The person that remains.")],
    merged: Annotated[int, typer.Argument(help="The person merged into it.")],
) -> None:
    """Merge a person into another (reversible with `hie persons unmerge`)."""
    with database() as db, db.transaction() as tx:
        moved = service.merge(tx.conn, survivor, merged, actor=actor(), reason="manual")
        record_event(
            tx.conn,
            actor(),
            "person.merge",
            f"person/{survivor}",
            merged=merged,
            records=len(moved),
        )
    console.print(f"person {merged} merged into person {survivor}: {len(moved)} record(s) moved")


@app.command("unmerge")
def unmerge(
    person: Annotated[int, typer.Argument(help="A person merged into another.")],
) -> None:
    """Undo a person's merge: the records it brought go back to it."""
    with database() as db, db.transaction() as tx:
        moved = service.unmerge(tx.conn, person, actor=actor())
        record_event(tx.conn, actor(), "person.unmerge", f"person/{person}", records=len(moved))
    console.print(f"person {person} separated again: {len(moved)} record(s) moved back")


@app.command("access-history")
def access_history(
    person: Annotated[int, typer.Argument(help="Person id.")],
    limit: Annotated[int, typer.Option(help="At most this many entries, newest first.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Who read this resident's records: every audited access naming the person (or a person
    merged into it), with the consent or break-glass reason used."""
    from hie.consent.service import access_history as history_of

    with database() as db, db.transaction() as tx:
        entries = history_of(tx.conn, person, limit)
        record_event(tx.conn, actor(), "person.access-history", f"person/{person}")
    if as_json:
        for entry in entries:
            console.print_json(data=_access_json(entry))
        return
    table = RichTable("when", "who", "role", "institution", "action", "target", "outcome", "used")
    for entry in entries:
        detail = entry["detail"]
        used = ", ".join(detail.get("consents", []))
        if detail.get("break_glass"):
            used = f"break-glass: {detail['break_glass']}"
        table.add_row(
            entry["at"].strftime("%Y-%m-%d %H:%M:%S"),
            entry["actor"],
            entry["role"] or "",
            entry["institution"] or "",
            entry["action"],
            entry["target"] or "",
            str(entry["outcome"]),
            used,
        )
    console.print(table)
    console.print(f"{len(entries)} entries")


def _access_json(entry: dict[str, object]) -> dict[str, object]:
    at = entry["at"]
    return {**entry, "at": at.isoformat() if hasattr(at, "isoformat") else at}
