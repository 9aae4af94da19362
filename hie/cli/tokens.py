"""``hie tokens``: bearer tokens for EMR systems, regulators and administrators."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table as RichTable

from hie.auth import ROLES
from hie.cli.context import actor, console, database, errors, fail
from hie.storage.tokens import create_token, list_tokens, revoke_token

app = typer.Typer(help="Access tokens (only their hashes are stored).", no_args_is_help=True)


@app.command("create")
def create(
    code: Annotated[
        str | None,
        typer.Argument(
            help="Institution the token acts for (required for submitter and clinician)."
        ),
    ] = None,
    role: Annotated[
        str, typer.Option(help="submitter, regulator, admin or clinician.")
    ] = "submitter",
    label: Annotated[str, typer.Option(help="A note to recognise the token by.")] = "",
) -> None:
    """Create a token and print it once. Store it now: it cannot be shown again."""
    if role not in ROLES:
        raise fail(f"--role must be one of {', '.join(ROLES)}, not {role!r}", 2)
    with database() as db, db.transaction() as tx:
        token_id, token = create_token(
            tx.conn, role=role, institution_code=code, label=label, actor=actor()
        )
    errors.print(f"token {token_id} ({role}{' for ' + code if code else ''}); shown only once:")
    # The token alone on standard output, so that scripts can capture it.
    typer.echo(token)


@app.command("revoke")
def revoke(
    token_id: Annotated[int, typer.Argument(help="Token id, as `hie tokens list` shows.")],
) -> None:
    """Revoke a token: it stops working at once."""
    with database() as db, db.transaction() as tx:
        revoke_token(tx.conn, token_id, actor=actor())
    console.print(f"token {token_id} revoked")


@app.command("list")
def list_command(
    institution: Annotated[str | None, typer.Option(help="Only this institution's tokens.")] = None,
) -> None:
    """List tokens (never the tokens themselves)."""
    with database() as db, db.connection() as conn:
        rows = list_tokens(conn, institution_code=institution)
    table = RichTable()
    for column in (
        "id",
        "token",
        "role",
        "institution",
        "label",
        "created",
        "last used",
        "revoked",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["hint"],
            r["role"],
            r["institution_code"] or "",
            r["label"],
            f"{r['created_at']:%Y-%m-%d %H:%M}",
            f"{r['last_used_at']:%Y-%m-%d %H:%M}" if r["last_used_at"] else "",
            f"{r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "",
        )
    console.print(table)
