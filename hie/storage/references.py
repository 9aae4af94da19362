"""Referential integrity look-ups over the FHIR tables (migration 0003, index of 0011): which
referenced resources an institution does not have, and which live resources refer to some."""

from __future__ import annotations

from dataclasses import dataclass

from hie.storage.database import Connection


@dataclass(frozen=True)
class Referrer:
    """A live resource whose search parameter ``param`` refers to ``target``."""

    resource_type: str
    resource_id: str
    param: str
    target: str


def missing(conn: Connection, institution_code: str, targets: list[str]) -> set[str]:
    """Those of ``targets`` ("<Type>/<id>") that are not live resources of the institution."""
    if not targets:
        return set()
    keys = [t.split("/", 1) for t in targets]
    rows = conn.execute(
        """
        select k.t || '/' || k.id as target
        from unnest(%s::text[], %s::text[]) as k(t, id)
        where not exists (
            select 1 from fhir_resource r
            where r.institution_code = %s and r.resource_type = k.t and r.resource_id = k.id)
        """,
        ([k[0] for k in keys], [k[1] for k in keys], institution_code),
    ).fetchall()
    return {str(row["target"]) for row in rows}


def referrers(
    conn: Connection, institution_code: str, targets: list[str], limit: int
) -> list[Referrer]:
    """Live resources of the institution whose indexed references name any of ``targets``."""
    if not targets:
        return []
    rows = conn.execute(
        """
        select distinct resource_type, resource_id, param, value as target
        from fhir_search_index
        where institution_code = %s and value = any(%s::text[])
          and value ~ '^[A-Z][A-Za-z]+/'  -- the predicate of fhir_search_reference_idx
        order by resource_type, resource_id, param
        limit %s
        """,
        (institution_code, targets, limit),
    ).fetchall()
    return [Referrer(**row) for row in rows]


def referring(
    conn: Connection, institution_code: str, target: str, limit: int
) -> list[tuple[str, str]]:
    """(type, id) of the live resources whose indexed references name ``target``."""
    rows = conn.execute(
        """
        select distinct resource_type, resource_id from fhir_search_index
        where institution_code = %s and value = %s
          and value ~ '^[A-Z][A-Za-z]+/'  -- the predicate of fhir_search_reference_idx
        order by resource_type, resource_id
        limit %s
        """,
        (institution_code, target, limit),
    ).fetchall()
    return [(str(row["resource_type"]), str(row["resource_id"])) for row in rows]
