"""``hie catalog``: the tables the platform collects."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from hie.catalog import read_catalog
from hie.cli.context import actor, console, database
from hie.storage.catalog import catalog_source, current_catalog, replace_catalog

app = typer.Typer(help="The catalog of upload tables.", no_args_is_help=True)


@app.command("load")
def load(
    file: Annotated[Path, typer.Argument(help="Catalog CSV (see schemas/catalog.csv).")],
) -> None:
    """Replace the loaded catalog with FILE. A broken file changes nothing."""
    with database() as db:
        catalog = read_catalog(file)
        sha256 = hashlib.sha256(file.read_bytes()).hexdigest()
        with db.transaction() as tx:
            summary = replace_catalog(
                tx.conn, catalog, source=str(file), sha256=sha256, actor=actor()
            )
    console.print(
        f"loaded {len(catalog)} tables from {file}: {len(summary['added'])} added, "
        f"{len(summary['removed'])} removed, {len(summary['kept'])} kept"
    )


@app.command("show")
def show(
    kind: Annotated[
        str | None, typer.Option(help="Only the tables required of hospital or district.")
    ] = None,
) -> None:
    """Print the loaded catalog."""
    with database() as db, db.connection() as conn:
        catalog = current_catalog(conn)
        source = catalog_source(conn)
    table = RichTable(title=f"catalog ({source['source'] if source else 'none'})")
    for column in ("code", "名称", "name", "standard", "recognised by", "required for", "feeds"):
        table.add_column(column)
    for entry in catalog:
        if kind and kind not in entry.required_for:
            continue
        recognised = entry.fhir_resource_type or " ".join(
            x for x in (entry.cda_template_id, entry.cda_code) if x
        )
        table.add_row(
            entry.code,
            entry.name_zh,
            entry.name_en,
            entry.standard,
            recognised,
            ", ".join(sorted(entry.required_for)),
            ", ".join(sorted(entry.feeds)),
        )
    console.print(table)
