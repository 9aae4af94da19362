"""``hie institutions``: the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from hie.cli.context import actor, console, database, fail, read_input
from hie.errors import Conflict
from hie.registry import Institution, parse_institutions_csv
from hie.storage.declarations import declarations_at
from hie.storage.institutions import (
    add_institution,
    get_institution,
    import_institutions,
    list_institutions,
)

app = typer.Typer(help="Hospitals and district networks that upload.", no_args_is_help=True)


@app.command("add")
def add(
    code: Annotated[str, typer.Argument(help="Institution code (机构代码).")],
    name: Annotated[str, typer.Option(help="Name as the bulletin prints it.")],
    kind: Annotated[str, typer.Option(help="hospital or district.")],
    district: Annotated[
        str | None, typer.Option(help="The district a hospital belongs to.")
    ] = None,
) -> None:
    """Register an institution. Registering it again exactly as it is changes nothing."""
    if kind not in ("hospital", "district"):
        raise fail(f"--kind must be hospital or district, not {kind!r}", 2)
    wanted = Institution(code, name, kind, district)
    with database() as db, db.transaction() as tx:
        try:
            with tx.conn.transaction():  # a savepoint: a conflict leaves the transaction usable
                add_institution(tx.conn, wanted, actor=actor())
        except Conflict:
            # Rerunning a walkthrough or a script is fine; a different institution is not.
            existing = get_institution(tx.conn, code)
            if (existing.name, existing.kind, existing.district_code) != (name, kind, district):
                raise fail(
                    f"institution {code} already exists, as {existing.kind} "
                    f"{existing.name} (district {existing.district_code or '-'}); "
                    "choose another code"
                ) from None
            console.print(f"{kind} {code} {name} is registered already (unchanged)")
            return
    console.print(f"added {kind} {code} {name}")


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="CSV with columns code,name,kind[,district].")],
) -> None:
    """Add or update institutions from a CSV file, all or nothing."""
    with database() as db:
        data = read_input(file)
        institutions = parse_institutions_csv(data, str(file))
        with db.transaction() as tx:
            summary = import_institutions(tx.conn, institutions, source=str(file), actor=actor())
    console.print(f"{file}: {summary['added']} added, {summary['updated']} updated")


@app.command("list")
def list_command(
    kind: Annotated[str | None, typer.Option(help="Only hospitals or districts.")] = None,
) -> None:
    """List institutions with their declaration."""
    from datetime import UTC, datetime

    with database() as db, db.connection() as conn:
        found = list_institutions(conn, kind=kind)
        declared = declarations_at(conn, datetime.now(UTC))
    table = RichTable()
    for column in ("code", "name", "kind", "district", "declared"):
        table.add_column(column)
    for inst in found:
        tables = declared.get(inst.code)
        table.add_row(
            inst.code,
            inst.name,
            inst.kind,
            inst.district_code or "",
            "未反馈" if tables is None else str(len(tables)),
        )
    console.print(table)
