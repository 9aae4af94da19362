"""``hie db``: the schema, and the embedded PostgreSQL's state."""

from __future__ import annotations

import typer

from hie.cli.context import console, database, reported_errors
from hie.config import load_settings
from hie.storage.embedded import embedded_state, stop_embedded
from hie.storage.migrator import applied, available, upgrade

app = typer.Typer(
    help="The database: migrations, and the embedded PostgreSQL's state.", no_args_is_help=True
)


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


@app.command("reindex")
def reindex_command(
    institution: str | None = typer.Option(None, help="Only this institution's resources."),
    resource_type: str | None = typer.Option(None, "--type", help="Only this resource type."),
) -> None:
    """Rebuild the FHIR search index of stored resources (after an upgrade that adds search
    parameters, such as migration 0009): each live resource's rows written anew."""
    # Imported here: every other command would pay for loading the FHIR server at start.
    from hie.fhir.reindex import reindex

    with reported_errors():
        settings = load_settings()
    with database(settings) as db:
        done = reindex(db, settings.zone, institution=institution, resource_type=resource_type)
    console.print(f"reindexed {done} FHIR resources")


@app.command("status")
def status() -> None:
    """Say which database hie uses (and whether the embedded one is running), then list the
    migrations and which are applied."""
    with reported_errors():
        settings = load_settings()
    if settings.embedded:
        state = embedded_state(settings.embedded_pgdata)
        if state.pid is None:
            running = "stopped (it starts with the next hie command that needs it)"
        else:
            holders = ", ".join(str(p) for p in state.holders) or "none"
            running = f"running (postgres pid {state.pid}; hie processes using it: {holders})"
        console.print(f"database: embedded PostgreSQL in {state.pgdata}, {running}")
    else:
        console.print("database: HIE_DATABASE_URL")
    with database(settings, migrate=False) as db, db.connection() as conn:
        done = applied(conn)
    for migration in available():
        mark = "applied" if migration.version in done else "pending"
        console.print(f"{migration.version:04d}_{migration.name}  {mark}")


@app.command("stop")
def stop() -> None:
    """Stop the embedded PostgreSQL. It normally stops with the last hie process that used it;
    this is for one left running by a process that was killed."""
    with reported_errors():
        settings = load_settings()
    if not settings.embedded:
        console.print("hie uses HIE_DATABASE_URL: it has no embedded PostgreSQL to stop")
        return
    if stop_embedded(settings.embedded_pgdata):
        console.print(f"stopped the embedded PostgreSQL in {settings.embedded_pgdata}")
    else:
        console.print(f"the embedded PostgreSQL in {settings.embedded_pgdata} was not running")
