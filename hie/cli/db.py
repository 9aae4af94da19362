"""``hie db``: the schema."""

from __future__ import annotations

import typer

from hie.cli.context import console, database
from hie.storage.migrator import applied, available, upgrade

app = typer.Typer(help="The database schema: migrations.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command() -> None:
    """Apply pending migrations (safe to run from several processes at once)."""
    with database(migrate=False) as db:
        done = upgrade(db)
        with db.connection() as conn:
            version = max(applied(conn), default=0)
    for migration in done:
        console.print(f"applied {migration.version:04d}_{migration.name}")
    console.print(f"schema at version {version}")


@app.command("status")
def status() -> None:
    """List the migrations and which are applied."""
    with database(migrate=False) as db, db.connection() as conn:
        done = applied(conn)
    for migration in available():
        mark = "applied" if migration.version in done else "pending"
        console.print(f"{migration.version:04d}_{migration.name}  {mark}")
