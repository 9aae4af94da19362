"""Institutions (接入单位): hospitals and district networks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hie.errors import Conflict, InvalidInput, NotFound, Problem
from hie.registry import Institution, check_code
from hie.storage.audit import record_event
from hie.storage.database import Connection

_COLUMNS = "code, name, kind, district_code, created_at, updated_at"


def institution_columns(alias: str) -> str:
    """The columns an :class:`Institution` is read from, qualified by a table alias."""
    return ", ".join(f"{alias}.{c.strip()}" for c in _COLUMNS.split(","))


def _institution(row: dict[str, Any]) -> Institution:
    return Institution(**row)


def get_institution(conn: Connection, code: str) -> Institution:
    row = conn.execute(f"select {_COLUMNS} from institution where code = %s", (code,)).fetchone()  # noqa: S608
    if row is None:
        raise NotFound(f"no institution with code {code!r}")
    return _institution(row)


def list_institutions(
    conn: Connection, *, kind: str | None = None, district: str | None = None
) -> list[Institution]:
    rows = conn.execute(
        f"""
        select {_COLUMNS} from institution
        where (%(kind)s::text is null or kind = %(kind)s)
          and (%(district)s::text is null or district_code = %(district)s or code = %(district)s)
        order by kind desc, code
        """,  # noqa: S608
        {"kind": kind, "district": district},
    ).fetchall()
    return [_institution(r) for r in rows]


def _check(conn: Connection, institution: Institution, *, pending: Iterable[str] = ()) -> list[str]:
    problems = []
    if why := check_code(institution.code):
        problems.append(why)
    if not institution.name.strip():
        problems.append("the name is empty")
    if institution.kind not in ("hospital", "district"):
        problems.append(f"{institution.kind!r} is not hospital or district")
    if institution.district_code is not None:
        if institution.kind != "hospital":
            problems.append("only a hospital belongs to a district")
        elif institution.district_code not in pending:
            row = conn.execute(
                "select kind from institution where code = %s", (institution.district_code,)
            ).fetchone()
            if row is None:
                problems.append(f"no district with code {institution.district_code!r}")
            elif row["kind"] != "district":
                problems.append(f"{institution.district_code!r} is a {row['kind']}, not a district")
    return problems


def add_institution(conn: Connection, institution: Institution, *, actor: str) -> Institution:
    """Register a new institution; an existing code is a conflict, not an update."""
    if problems := _check(conn, institution):
        raise InvalidInput(f"institution {institution.code!r}", [Problem(p) for p in problems])
    row = conn.execute(
        f"""
        insert into institution (code, name, kind, district_code) values (%s, %s, %s, %s)
        on conflict (code) do nothing returning {_COLUMNS}
        """,  # noqa: S608
        (institution.code, institution.name.strip(), institution.kind, institution.district_code),
    ).fetchone()
    if row is None:
        raise Conflict(f"institution {institution.code!r} already exists")
    record_event(conn, actor, "institution.add", institution.code, kind=institution.kind)
    return _institution(row)


def update_institution(
    conn: Connection, code: str, *, name: str | None, district_code: str | None, actor: str
) -> Institution:
    current = get_institution(conn, code)
    changed = Institution(
        code, name if name is not None else current.name, current.kind, district_code
    )
    if problems := _check(conn, changed):
        raise InvalidInput(f"institution {code!r}", [Problem(p) for p in problems])
    row = conn.execute(
        f"""
        update institution set name = %s, district_code = %s, updated_at = now()
        where code = %s returning {_COLUMNS}
        """,  # noqa: S608
        (changed.name.strip(), changed.district_code, code),
    ).fetchone()
    if row is None:  # deleted between the read and the update
        raise NotFound(f"no institution with code {code!r}")
    record_event(conn, actor, "institution.update", code)
    return _institution(row)


def import_institutions(
    conn: Connection, institutions: list[Institution], *, source: str, actor: str
) -> dict[str, int]:
    """Add or update every institution of a file, all or nothing (inside the caller's transaction).

    A kind never changes on import: it decides required tables and past figures.
    """
    codes = {i.code for i in institutions}
    existing = {
        r["code"]: r["kind"]
        for r in conn.execute(
            "select code, kind from institution where code = any(%s)", (list(codes),)
        ).fetchall()
    }
    pending_districts = {i.code for i in institutions if i.kind == "district"}
    problems: list[Problem] = []
    for inst in institutions:
        for why in _check(conn, inst, pending=pending_districts):
            problems.append(Problem(why, field=inst.code))
        if inst.code in existing and existing[inst.code] != inst.kind:
            problems.append(
                Problem(
                    f"is registered as a {existing[inst.code]}; a kind cannot be changed by import",
                    field=inst.code,
                )
            )
    if problems:
        raise InvalidInput(source, problems)
    # Districts first, so that hospitals can refer to districts from the same file.
    ordered = sorted(institutions, key=lambda i: i.kind != "district")
    with conn.cursor() as cur:
        cur.executemany(
            """
            insert into institution (code, name, kind, district_code) values (%s, %s, %s, %s)
            on conflict (code) do update set name = excluded.name,
                district_code = excluded.district_code, updated_at = now()
            """,
            [(i.code, i.name.strip(), i.kind, i.district_code) for i in ordered],
        )
    added = len(codes - existing.keys())
    summary = {"added": added, "updated": len(codes) - added}
    record_event(conn, actor, "institution.import", None, source=source, **summary)
    return summary
