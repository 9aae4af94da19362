"""The person index's tables: persons, the records linked to them with their identifiers and
demographics, the review list and the history of links, merges and unmerges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from psycopg.types.json import Jsonb

from hie.storage.database import Connection

# (system, value, key_institution): '' for regional keys, the institution for local numbers.
KeyRow = tuple[str, str, str]


@dataclass(frozen=True)
class Link:
    institution_code: str
    record_id: str
    person_id: int
    rule: str
    score: float | None
    name: str | None
    birth_date: date | None
    gender: str | None
    address: str | None
    linked_at: datetime


def lock_keys(conn: Connection, keys: list[str]) -> None:
    """Serialise concurrent links of one identifier (or birth date) until the commit, so two
    uploads of a new resident make one person. Taken in one statement, in order."""
    if keys:
        conn.execute(
            "select pg_advisory_xact_lock(hashtextextended('person:' || k, 0))"
            " from unnest(%s::text[]) as k order by k",
            (sorted(set(keys)),),
        )


def create_person(conn: Connection) -> int:
    row = conn.execute("insert into person default values returning id").fetchone()
    if row is None:
        raise RuntimeError("insert returned no row")
    return int(row["id"])


def person_exists(conn: Connection, person_id: int) -> tuple[bool, int | None]:
    """(exists, merged_into)."""
    row = conn.execute("select merged_into from person where id = %s", (person_id,)).fetchone()
    return (False, None) if row is None else (True, row["merged_into"])


def persons_by_keys(conn: Connection, keys: list[KeyRow]) -> list[tuple[int, KeyRow]]:
    """Every (person, key) pair where a linked record carries one of ``keys``."""
    if not keys:
        return []
    rows = conn.execute(
        """
        select distinct l.person_id, i.system, i.value, i.key_institution
        from person_identifier i
        join person_link l using (institution_code, record_id)
        join unnest(%s::text[], %s::text[], %s::text[]) as k (system, value, inst)
          on i.system = k.system and i.value = k.value and i.key_institution = k.inst
        order by l.person_id
        """,
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
    ).fetchall()
    return [(r["person_id"], (r["system"], r["value"], r["key_institution"])) for r in rows]


def persons_by_number(conn: Connection, system: str, value: str) -> list[int]:
    """The persons a medical-record number names at any institution."""
    rows = conn.execute(
        """
        select distinct l.person_id from person_identifier i
        join person_link l using (institution_code, record_id)
        where i.system = %s and i.value = %s order by 1
        """,
        (system, value),
    ).fetchall()
    return [int(r["person_id"]) for r in rows]


def values_of(conn: Connection, person_id: int, system: str) -> set[str]:
    rows = conn.execute(
        """
        select distinct i.value from person_identifier i
        join person_link l using (institution_code, record_id)
        where l.person_id = %s and i.system = %s
        """,
        (person_id, system),
    ).fetchall()
    return {r["value"] for r in rows}


def born_on(conn: Connection, birth_date: date, limit: int = 500) -> list[Link]:
    """Linked records with this birth date: the candidates of a probabilistic match."""
    rows = conn.execute(
        "select * from person_link where birth_date = %s order by person_id limit %s",
        (birth_date, limit),
    ).fetchall()
    return [Link(**r) for r in rows]


def get_link(conn: Connection, institution_code: str, record_id: str) -> Link | None:
    row = conn.execute(
        "select * from person_link where institution_code = %s and record_id = %s",
        (institution_code, record_id),
    ).fetchone()
    return None if row is None else Link(**row)


def put_link(
    conn: Connection,
    institution_code: str,
    record_id: str,
    person_id: int,
    *,
    rule: str,
    score: float | None,
    demographics: dict[str, Any],
    keys: list[KeyRow],
) -> None:
    """Link a record (again), replacing its identifiers with ``keys``: one statement, as it
    runs for every stored Patient and document (identifiers kept are neither deleted nor
    inserted, so the parts cannot collide)."""
    systems, values, institutions = (
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    conn.execute(
        """
        with link as (
            insert into person_link (institution_code, record_id, person_id, rule, score,
                                     name, birth_date, gender, address)
            values (%(inst)s, %(rec)s, %(person)s, %(rule)s, %(score)s,
                    %(name)s, %(birth)s, %(gender)s, %(address)s)
            on conflict (institution_code, record_id) do update set
                person_id = excluded.person_id, rule = excluded.rule, score = excluded.score,
                name = excluded.name, birth_date = excluded.birth_date,
                gender = excluded.gender, address = excluded.address, linked_at = now()
            returning 1
        ),
        keys as (
            select * from unnest(%(systems)s::text[], %(values)s::text[], %(insts)s::text[])
                as k (system, value, inst)
        ),
        gone as (
            delete from person_identifier i
            where i.institution_code = %(inst)s and i.record_id = %(rec)s
              and not exists (
                select 1 from keys k
                where k.system = i.system and k.value = i.value and k.inst = i.key_institution
              )
        )
        insert into person_identifier (institution_code, record_id, system, value,
                                       key_institution)
        select %(inst)s, %(rec)s, k.system, k.value, k.inst from keys k, link
        on conflict do nothing
        """,
        {
            "inst": institution_code,
            "rec": record_id,
            "person": person_id,
            "rule": rule,
            "score": score,
            "name": demographics.get("name"),
            "birth": demographics.get("birth_date"),
            "gender": demographics.get("gender"),
            "address": demographics.get("address"),
            "systems": systems,
            "values": values,
            "insts": institutions,
        },
    )


def delete_link(conn: Connection, institution_code: str, record_id: str) -> None:
    conn.execute(
        "delete from person_link where institution_code = %s and record_id = %s",
        (institution_code, record_id),
    )


def links_of(conn: Connection, person_id: int) -> list[Link]:
    rows = conn.execute(
        "select * from person_link where person_id = %s order by institution_code, record_id",
        (person_id,),
    ).fetchall()
    return [Link(**r) for r in rows]


def identifiers_of(conn: Connection, person_id: int) -> list[dict[str, Any]]:
    """Every identifier of the person's records: institution, record, system, value."""
    rows = conn.execute(
        """
        select i.institution_code, i.record_id, i.system, i.value, i.key_institution
        from person_identifier i join person_link l using (institution_code, record_id)
        where l.person_id = %s
        order by i.institution_code, i.record_id, i.system, i.value
        """,
        (person_id,),
    ).fetchall()
    return [dict(r) for r in rows]


def move_links(
    conn: Connection, from_person: int, to_person: int, records: list[tuple[str, str]] | None
) -> list[tuple[str, str]]:
    """Move records from one person to another (all of them when ``records`` is None); the
    records moved."""
    if records is None:
        rows = conn.execute(
            "update person_link set person_id = %s where person_id = %s"
            " returning institution_code, record_id",
            (to_person, from_person),
        ).fetchall()
    else:
        rows = conn.execute(
            """
            update person_link l set person_id = %s
            from unnest(%s::text[], %s::text[]) as r (inst, rec)
            where l.person_id = %s and l.institution_code = r.inst and l.record_id = r.rec
            returning l.institution_code, l.record_id
            """,
            (to_person, [r[0] for r in records], [r[1] for r in records], from_person),
        ).fetchall()
    return sorted((r["institution_code"], r["record_id"]) for r in rows)


def set_merged_into(conn: Connection, person_id: int, into: int | None) -> None:
    conn.execute("update person set merged_into = %s where id = %s", (into, person_id))


def add_history(
    conn: Connection,
    action: str,
    person_id: int,
    *,
    actor: str,
    other_person_id: int | None = None,
    institution_code: str | None = None,
    record_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    row = conn.execute(
        """
        insert into person_history (action, person_id, other_person_id, institution_code,
                                    record_id, actor, detail)
        values (%s, %s, %s, %s, %s, %s, %s) returning id
        """,
        (
            action,
            person_id,
            other_person_id,
            institution_code,
            record_id,
            actor,
            Jsonb(detail or {}),
        ),
    ).fetchone()
    if row is None:
        raise RuntimeError("insert returned no row")
    return int(row["id"])


def last_merge(conn: Connection, merged_person: int) -> dict[str, Any] | None:
    """The merge that made ``merged_person`` part of another, not yet undone."""
    row = conn.execute(
        """
        select * from person_history
        where action = 'merge' and other_person_id = %s and undone_by is null
        order by id desc limit 1
        """,
        (merged_person,),
    ).fetchone()
    return None if row is None else dict(row)


def mark_undone(conn: Connection, history_id: int, by: int) -> None:
    conn.execute("update person_history set undone_by = %s where id = %s", (by, history_id))


def history_of(conn: Connection, person_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        """
        select * from person_history where person_id = %s or other_person_id = %s order by id
        """,
        (person_id, person_id),
    ).fetchall()
    return [dict(r) for r in rows]


def add_review(
    conn: Connection,
    institution_code: str,
    record_id: str,
    person_id: int,
    candidate_id: int,
    score: float,
    parts: dict[str, float],
) -> int | None:
    """A review item, or None when the record already waits for review with this candidate."""
    row = conn.execute(
        """
        insert into person_review (institution_code, record_id, person_id, candidate_id, score,
                                   parts)
        select %s, %s, %s, %s, %s, %s
        where not exists (
            select 1 from person_review
            where status = 'open' and institution_code = %s and record_id = %s
              and candidate_id = %s
        )
        returning id
        """,
        (
            institution_code,
            record_id,
            person_id,
            candidate_id,
            score,
            Jsonb(parts),
            institution_code,
            record_id,
            candidate_id,
        ),
    ).fetchone()
    return None if row is None else int(row["id"])


def open_reviews(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(
        "select * from person_review where status = 'open' order by id limit %s", (limit,)
    ).fetchall()
    return [dict(r) for r in rows]


def get_review(conn: Connection, review_id: int) -> dict[str, Any] | None:
    row = conn.execute("select * from person_review where id = %s", (review_id,)).fetchone()
    return None if row is None else dict(row)


def close_reviews(
    conn: Connection, person_a: int, person_b: int, status: str, actor: str
) -> list[int]:
    """Close the open reviews between two persons (either way round)."""
    rows = conn.execute(
        """
        update person_review set status = %s, decided_at = now(), decided_by = %s
        where status = 'open'
          and ((person_id = %s and candidate_id = %s) or (person_id = %s and candidate_id = %s))
        returning id
        """,
        (status, actor, person_a, person_b, person_b, person_a),
    ).fetchall()
    return [r["id"] for r in rows]


def close_review(conn: Connection, review_id: int, status: str, actor: str) -> None:
    conn.execute(
        "update person_review set status = %s, decided_at = now(), decided_by = %s where id = %s",
        (status, actor, review_id),
    )


def persons_of_records(
    conn: Connection, institution_code: str, record_ids: list[str]
) -> dict[str, int]:
    """The person each of an institution's records is linked to (unlinked ones left out)."""
    if not record_ids:
        return {}
    rows = conn.execute(
        "select record_id, person_id from person_link"
        " where institution_code = %s and record_id = any(%s)",
        (institution_code, list(record_ids)),
    ).fetchall()
    return {str(r["record_id"]): int(r["person_id"]) for r in rows}


# Where a walk over the stored versions stands: (received_at, id) of the last one seen.
Cursor = tuple[datetime, int]


@dataclass(frozen=True)
class Indexable:
    """A stored record the person index links (a Patient, a FHIR document Bundle, a CDA
    document), as its current version names it."""

    institution_code: str
    logical_id: str
    table_code: str
    deleted: bool
    raw_xml: bytes | None
    resource: dict[str, Any] | None
    cursor: Cursor


def indexable_records(conn: Connection, after: Cursor | None, limit: int) -> list[Indexable]:
    """The next ``limit`` records the index links, in the order their current versions arrived
    (the order the store step would have linked them: a probabilistic match depends on who was
    there first), after ``after``. A keyset walk over ``record_version``'s primary key, keeping
    current versions only; CDA documents are the rows of non-FHIR tables."""
    rows = conn.execute(
        """
        select v.institution_code, v.logical_id, v.table_code, v.deleted, v.raw_xml,
               v.resource, v.received_at, v.id
        from record_version v
        join record_head h on h.institution_code = v.institution_code
                          and h.logical_id = v.logical_id and h.record_id = v.id
        where (v.received_at, v.id) > (%s, %s)
          and (v.logical_id like 'Patient/%%' or v.logical_id like 'Bundle/%%'
               or v.table_code not like 'FHIR.%%')
        order by v.received_at, v.id
        limit %s
        """,
        (*(after or (datetime.min.replace(tzinfo=UTC), 0)), limit),
    ).fetchall()
    return [
        Indexable(
            r["institution_code"],
            r["logical_id"],
            r["table_code"],
            r["deleted"],
            None if r["raw_xml"] is None else bytes(r["raw_xml"]),
            r["resource"],
            (r["received_at"], r["id"]),
        )
        for r in rows
    ]


# Set-based forms of the above, for linking a batch of records in a few statements.


def links_of_records(
    conn: Connection, records: list[tuple[str, str]]
) -> dict[tuple[str, str], Link]:
    """The current link of each of ``records`` (institution, record id); unlinked ones left
    out."""
    if not records:
        return {}
    rows = conn.execute(
        """
        select l.* from person_link l
        join unnest(%s::text[], %s::text[]) as r (inst, rec)
          on l.institution_code = r.inst and l.record_id = r.rec
        """,
        ([r[0] for r in records], [r[1] for r in records]),
    ).fetchall()
    return {(r["institution_code"], r["record_id"]): Link(**r) for r in rows}


def keys_of_records(
    conn: Connection, records: list[tuple[str, str]]
) -> dict[tuple[str, str], set[KeyRow]]:
    """The identifiers each of ``records`` is linked by."""
    if not records:
        return {}
    rows = conn.execute(
        """
        select i.institution_code, i.record_id, i.system, i.value, i.key_institution
        from person_identifier i
        join unnest(%s::text[], %s::text[]) as r (inst, rec)
          on i.institution_code = r.inst and i.record_id = r.rec
        """,
        ([r[0] for r in records], [r[1] for r in records]),
    ).fetchall()
    keys: dict[tuple[str, str], set[KeyRow]] = {}
    for r in rows:
        keys.setdefault((r["institution_code"], r["record_id"]), set()).add(
            (r["system"], r["value"], r["key_institution"])
        )
    return keys


def values_of_persons(conn: Connection, person_ids: list[int], system: str) -> dict[int, set[str]]:
    """:func:`values_of` for many persons at once (persons without a value left out)."""
    if not person_ids:
        return {}
    rows = conn.execute(
        """
        select distinct l.person_id, i.value from person_identifier i
        join person_link l using (institution_code, record_id)
        where l.person_id = any(%s) and i.system = %s
        """,
        (person_ids, system),
    ).fetchall()
    values: dict[int, set[str]] = {}
    for r in rows:
        values.setdefault(int(r["person_id"]), set()).add(r["value"])
    return values


def create_persons(conn: Connection, count: int) -> list[int]:
    """``count`` new persons, their ids in the order they were made."""
    if count <= 0:
        return []
    rows = conn.execute(
        "insert into person select from generate_series(1, %s) returning id", (count,)
    ).fetchall()
    return sorted(int(r["id"]) for r in rows)


@dataclass(frozen=True)
class NewLink:
    """A link to write with :func:`put_links`: the record's identifiers are added to those it
    has (the caller links this way only records whose identifiers did not change)."""

    institution_code: str
    record_id: str
    person_id: int
    rule: str
    demographics: dict[str, Any]
    keys: list[KeyRow]
    history: bool  # a first link: recorded in the history


def put_links(conn: Connection, links: list[NewLink], *, actor: str) -> None:
    """:func:`put_link` and the "link" history entries for many records, in three statements
    (history in the order given)."""
    if not links:
        return
    conn.execute(
        """
        insert into person_link (institution_code, record_id, person_id, rule, score,
                                 name, birth_date, gender, address)
        select l.inst, l.rec, l.person, l.rule, null, l.name, l.birth, l.gender, l.address
        from unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[], %s::date[],
                    %s::text[], %s::text[]) as l (inst, rec, person, rule, name, birth, gender,
                                                  address)
        on conflict (institution_code, record_id) do update set
            person_id = excluded.person_id, rule = excluded.rule, score = excluded.score,
            name = excluded.name, birth_date = excluded.birth_date,
            gender = excluded.gender, address = excluded.address, linked_at = now()
        """,
        (
            [x.institution_code for x in links],
            [x.record_id for x in links],
            [x.person_id for x in links],
            [x.rule for x in links],
            [x.demographics.get("name") for x in links],
            [x.demographics.get("birth_date") for x in links],
            [x.demographics.get("gender") for x in links],
            [x.demographics.get("address") for x in links],
        ),
    )
    keys = [(x.institution_code, x.record_id, *k) for x in links for k in x.keys]
    if keys:
        conn.execute(
            """
            insert into person_identifier (institution_code, record_id, system, value,
                                           key_institution)
            select * from unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
            on conflict do nothing
            """,
            tuple([k[i] for k in keys] for i in range(5)),
        )
    first = [x for x in links if x.history]
    if first:
        conn.execute(
            """
            insert into person_history (action, person_id, institution_code, record_id, actor,
                                        detail)
            select 'link', h.person, h.inst, h.rec, %s,
                   jsonb_build_object('rule', h.rule, 'score', null)
            from unnest(%s::bigint[], %s::text[], %s::text[], %s::text[])
                with ordinality as h (person, inst, rec, rule, n)
            order by h.n
            """,
            (
                actor,
                [x.person_id for x in first],
                [x.institution_code for x in first],
                [x.record_id for x in first],
                [x.rule for x in first],
            ),
        )
