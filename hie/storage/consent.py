"""The consent projection and the break-glass review list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from hie.storage.database import Connection


def put_consent(
    conn: Connection,
    institution_code: str,
    resource_id: str,
    patient_record: str,
    *,
    status: str,
    actors: list[str] | None,
    classes: list[str] | None,
    start: datetime | None,
    end: datetime | None,
    provision_type: str = "permit",
    exceptions: list[dict[str, Any]] | None = None,
) -> None:
    """Insert or replace the projection of one stored Consent."""
    conn.execute(
        """
        insert into consent (institution_code, resource_id, patient_record, status, actors,
                             classes, period_start, period_end, provision_type, exceptions)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        on conflict (institution_code, resource_id) do update set
            patient_record = excluded.patient_record, status = excluded.status,
            actors = excluded.actors, classes = excluded.classes,
            period_start = excluded.period_start, period_end = excluded.period_end,
            provision_type = excluded.provision_type, exceptions = excluded.exceptions,
            recorded_at = now()
        """,
        (
            institution_code,
            resource_id,
            patient_record,
            status,
            actors,
            classes,
            start,
            end,
            provision_type,
            Jsonb(exceptions or []),
        ),
    )


def delete_consent(conn: Connection, institution_code: str, resource_id: str) -> None:
    conn.execute(
        "delete from consent where institution_code = %s and resource_id = %s",
        (institution_code, resource_id),
    )


def consents_of(conn: Connection, person_id: int) -> list[dict[str, Any]]:
    """The consents recorded for the records now linked to a person (the person index's links
    decide whose they are, through merges and unmerges)."""
    rows = conn.execute(
        """
        select c.* from person_link l
        join consent c on c.institution_code = l.institution_code
                      and c.patient_record = l.record_id
        where l.person_id = %s
        order by c.institution_code, c.resource_id
        """,
        (person_id,),
    ).fetchall()
    return [dict(r) for r in rows]


def add_break_glass(
    conn: Connection,
    *,
    actor: str,
    institution_code: str | None,
    person_id: int,
    source_institution: str,
    target: str | None,
    reason: str,
    overrode_deny: str | None = None,
) -> int:
    row = conn.execute(
        """
        insert into break_glass (actor, institution_code, person_id, source_institution,
                                 target, reason, overrode_deny)
        values (%s, %s, %s, %s, %s, %s, %s) returning id
        """,
        (actor, institution_code, person_id, source_institution, target, reason, overrode_deny),
    ).fetchone()
    if row is None:
        raise RuntimeError("insert returned no row")
    return int(row["id"])


def break_glass_entries(
    conn: Connection, *, unreviewed: bool = True, limit: int = 100
) -> list[dict[str, Any]]:
    rows = conn.execute(
        "select * from break_glass where reviewed_at is null or not %s order by at, id limit %s",
        (unreviewed, limit),
    ).fetchall()
    return [dict(r) for r in rows]


def review_break_glass(conn: Connection, entry_id: int, actor: str) -> str | None:
    """Mark an entry reviewed; returns None when it does not exist, else whether it was open
    ("reviewed") or already reviewed ("already")."""
    row = conn.execute(
        "select reviewed_at from break_glass where id = %s for update", (entry_id,)
    ).fetchone()
    if row is None:
        return None
    if row["reviewed_at"] is not None:
        return "already"
    conn.execute(
        "update break_glass set reviewed_at = now(), reviewed_by = %s where id = %s",
        (actor, entry_id),
    )
    return "reviewed"


def access_history(
    conn: Connection, person_ids: list[int], limit: int = 200
) -> list[dict[str, Any]]:
    """The audit entries naming any of these persons, newest first (index 0016 on
    ``detail -> 'persons'``)."""
    if not person_ids:
        return []
    rows = conn.execute(
        """
        select distinct e.id, e.at, e.actor, e.role, e.institution, e.action, e.target,
               e.outcome, e.detail
        from unnest(%s::bigint[]) as p(id)
        cross join lateral (
            select * from audit_event where (detail -> 'persons') @> jsonb_build_array(p.id)
        ) as e
        order by e.at desc, e.id desc limit %s
        """,
        (person_ids, limit),
    ).fetchall()
    return [dict(r) for r in rows]


def persons_merged_into(conn: Connection, person_id: int) -> list[int]:
    """The person and every person merged into it, directly or not: their accesses are its."""
    rows = conn.execute(
        """
        with recursive tree(id) as (
            select %s::bigint
            union
            select p.id from person p join tree t on p.merged_into = t.id
        )
        select id from tree order by id
        """,
        (person_id,),
    ).fetchall()
    return [int(r["id"]) for r in rows]
