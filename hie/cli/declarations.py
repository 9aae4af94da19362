"""``hie declarations``: what each institution has declared it uploads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hie.cli.context import actor, console, database, read_input
from hie.registry import parse_declarations_csv
from hie.storage.declarations import (
    clear_declaration,
    current_declaration,
    import_declarations,
    set_declaration,
)

app = typer.Typer(help="Declared upload tables (声明上传表).", no_args_is_help=True)


@app.command("set")
def set_command(
    code: Annotated[str, typer.Argument(help="Institution code.")],
    tables: Annotated[
        list[str] | None, typer.Argument(help="Table codes; none declares an empty set.")
    ] = None,
) -> None:
    """Replace an institution's declaration with TABLES."""
    with database() as db, db.transaction() as tx:
        declared = set_declaration(tx.conn, code, tables or [], actor=actor())
    console.print(f"{code} declares {len(declared)} table(s)")


@app.command("clear")
def clear(code: Annotated[str, typer.Argument(help="Institution code.")]) -> None:
    """Back to no declaration (未反馈), which is not an empty declaration."""
    with database() as db, db.transaction() as tx:
        clear_declaration(tx.conn, code, actor=actor())
    console.print(f"{code} has no declaration")


@app.command("show")
def show(code: Annotated[str, typer.Argument(help="Institution code.")]) -> None:
    """Print an institution's current declaration."""
    with database() as db, db.connection() as conn:
        tables = current_declaration(conn, code)
    if tables is None:
        console.print(f"{code}: no declaration (未反馈)")
    else:
        console.print(f"{code}: {len(tables)} table(s) {' '.join(tables)}".rstrip())


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="CSV with columns institution,tables.")],
) -> None:
    """Set declarations from a CSV file, all or nothing."""
    with database() as db:
        data = read_input(file)
        declarations = parse_declarations_csv(data, str(file))
        with db.transaction() as tx:
            count = import_declarations(tx.conn, declarations, source=str(file), actor=actor())
    console.print(f"{file}: {count} declaration(s) set")
