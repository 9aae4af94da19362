"""Declarations (声明上传表): the tables an institution has told the regulator it will upload."""

from __future__ import annotations

from datetime import datetime

from hie.errors import InvalidInput, NotFound, Problem
from hie.registry import Institution
from hie.storage.audit import record_event
from hie.storage.catalog import current_catalog
from hie.storage.database import Connection
from hie.storage.institutions import get_institution, institution_columns


def current_declaration(
    conn: Connection, code: str, *, at: datetime | None = None
) -> list[str] | None:
    """The declared table codes in force at ``at`` (now by default); None when there is none."""
    get_institution(conn, code)
    row = conn.execute(
        """
        select tables from declaration
        where institution_code = %s and (%s::timestamptz is null or declared_at <= %s)
        order by declared_at desc, id desc limit 1
        """,
        (code, at, at),
    ).fetchone()
    return None if row is None else row["tables"]


def institution_and_declaration(
    conn: Connection, code: str
) -> tuple[Institution, list[str] | None]:
    """The institution and its current declaration (None when there is none), in one query
    (an upload needs both before it is validated); ``NotFound`` when there is no institution."""
    row = conn.execute(
        f"""
        select {institution_columns("i")}, d.tables from institution i
        left join lateral (
            select tables from declaration where institution_code = i.code
            order by declared_at desc, id desc limit 1
        ) d on true
        where i.code = %s
        """,  # noqa: S608 (constant column names)
        (code,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no institution with code {code!r}")
    tables = row.pop("tables")
    return Institution(**row), tables


def declarations_at(conn: Connection, at: datetime) -> dict[str, list[str] | None]:
    """Every institution's declaration in force at ``at``; None where there is none.

    An institution that had not declared anything yet at ``at`` is held to its first declaration:
    history backfilled after registration is judged by what the institution declared when it
    joined, not reported as 未反馈.
    """
    rows = conn.execute(
        """
        select i.code, d.tables from institution i
        left join lateral (
            select tables from declaration
            where institution_code = i.code
            order by declared_at <= %s desc,
                case when declared_at <= %s then declared_at end desc nulls last,
                declared_at, id desc
            limit 1
        ) d on true
        """,
        (at, at),
    ).fetchall()
    return {r["code"]: r["tables"] for r in rows}


def set_declaration(
    conn: Connection, code: str, tables: list[str], *, actor: str, source: str | None = None
) -> list[str]:
    """Replace the institution's declaration with ``tables``; unknown table codes refuse it."""
    get_institution(conn, code)
    catalog = current_catalog(conn)
    unknown = catalog.unknown_codes(tables)
    if unknown:
        raise InvalidInput(
            source or f"declaration of {code}",
            [
                Problem(f"{u!r} is not a table of the loaded catalog", field="tables")
                for u in unknown
            ],
        )
    return _insert(conn, code, tables, actor)


def _insert(conn: Connection, code: str, tables: list[str], actor: str) -> list[str]:
    declared = sorted(set(tables))
    conn.execute(
        "insert into declaration (institution_code, tables, declared_by) values (%s, %s, %s)",
        (code, declared, actor),
    )
    record_event(conn, actor, "declaration.set", code, tables=declared)
    return declared


def clear_declaration(conn: Connection, code: str, *, actor: str) -> None:
    """Back to "no declaration" (未反馈), which is not the same as declaring nothing."""
    get_institution(conn, code)
    conn.execute(
        "insert into declaration (institution_code, tables, declared_by) values (%s, null, %s)",
        (code, actor),
    )
    record_event(conn, actor, "declaration.clear", code)


def import_declarations(
    conn: Connection, declarations: list[tuple[int, str, list[str]]], *, source: str, actor: str
) -> int:
    """Set every declaration of a file, all or nothing; problems name the file's line."""
    catalog = current_catalog(conn)
    codes = [code for _, code, _ in declarations]
    known = {
        r["code"]
        for r in conn.execute(
            "select code from institution where code = any(%s)", (codes,)
        ).fetchall()
    }
    problems: list[Problem] = []
    for line, code, tables in declarations:
        if code not in known:
            problems.append(Problem(f"no institution with code {code!r}", line, "institution"))
        for unknown in catalog.unknown_codes(tables):
            problems.append(
                Problem(f"{unknown!r} is not a table of the loaded catalog", line, "tables")
            )
    if problems:
        raise InvalidInput(source, problems)
    for _, code, tables in declarations:
        _insert(conn, code, tables, actor)
    return len(declarations)
