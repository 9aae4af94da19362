"""What the record browser reads about one resident: the records linked to a person (CDA
documents, FHIR document Bundles) and the FHIR documents and encounters about the person's
Patients, across institutions, with what their current versions say; and the linked records
matching a resident's demographics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from hie.storage.database import Connection

# FHIR resources about a Patient that the timeline shows, found through the search index.
TIMELINE_TYPES = ("Encounter", "Composition", "DocumentReference")
PATIENT_PARAMETERS = ("patient", "subject")


@dataclass(frozen=True)
class TimelineRow:
    institution_code: str
    institution_name: str
    logical_id: str  # CDA "<root>^<extension>", FHIR "<Type>/<id>"
    table_code: str
    table_zh: str | None
    table_en: str | None
    received_at: datetime
    cda: bool  # a CDA document (its bytes as uploaded are stored)
    normalized: dict[str, Any]


_ROW = """
        select h.institution_code, i.name as institution_name, h.logical_id, h.table_code,
               c.name_zh as table_zh, c.name_en as table_en, h.received_at,
               v.raw_xml is not null as cda, v.normalized
"""
_ROW_JOINS = """
        join institution i on i.code = h.institution_code
        join record_version v on v.received_at = h.received_at and v.id = h.record_id
        left join catalog_table c on c.code = h.table_code
"""


_ONE_ROW = f"""
    {_ROW} from record_head h {_ROW_JOINS}
    where h.institution_code = %s and h.logical_id = %s and not h.deleted
"""
_TIMELINE = f"""
    with links as (
        select institution_code, record_id from person_link where person_id = %(person)s
    ),
    about as (
        select distinct s.institution_code, s.resource_type || '/' || s.resource_id as id
        from links l
        join fhir_search_index s
          on s.institution_code = l.institution_code and s.resource_type = any(%(types)s)
         and s.param = any(%(params)s) and s.value = l.record_id
        where l.record_id like 'Patient/%%'
    ),
    entries as (
        select institution_code, record_id as id from links
        where record_id not like 'Patient/%%'
        union
        select institution_code, id from about
    )
    {_ROW}
    from entries e
    join record_head h on h.institution_code = e.institution_code and h.logical_id = e.id
    {_ROW_JOINS}
    where not h.deleted
    order by h.received_at desc
    limit %(limit)s
"""  # noqa: S608 (constant fragments; values are parameters)


def timeline_row(conn: Connection, institution_code: str, logical_id: str) -> TimelineRow | None:
    """One live record as a timeline row."""
    row = conn.execute(
        _ONE_ROW,
        (institution_code, logical_id),
    ).fetchone()
    return None if row is None else TimelineRow(**row)


def timeline_rows(conn: Connection, person_id: int, limit: int) -> list[TimelineRow]:
    """The person's documents and encounters at every institution, live versions only: the
    ``limit`` received last (the caller dates and orders them from ``normalized``)."""
    rows = conn.execute(
        _TIMELINE,
        {
            "person": person_id,
            "types": list(TIMELINE_TYPES),
            "params": list(PATIENT_PARAMETERS),
            "limit": limit,
        },
    ).fetchall()
    return [TimelineRow(**r) for r in rows]


@dataclass(frozen=True)
class LinkedRecord:
    """One record linked to a person, with the demographics its current version states."""

    person_id: int
    institution_code: str
    institution_name: str
    record_id: str
    name: str | None  # as written in the record (person_link keeps a folded form)
    birth_date: date | None
    gender: str | None  # "1" male, "2" female


_LINKED = """
    select l.person_id, l.institution_code, i.name as institution_name, l.record_id,
           v.normalized -> 'patient' ->> 'name' as name, l.birth_date, l.gender
    from person_link l
    join institution i on i.code = l.institution_code
    left join record_head h on h.institution_code = l.institution_code
                           and h.logical_id = l.record_id
    left join record_version v on v.received_at = h.received_at and v.id = h.record_id
"""


def linked_records(conn: Connection, person_ids: list[int]) -> list[LinkedRecord]:
    if not person_ids:
        return []
    rows = conn.execute(
        _LINKED + " where l.person_id = any(%s) order by l.person_id, l.institution_code,"
        " l.record_id",
        (person_ids,),
    ).fetchall()
    return [LinkedRecord(**r) for r in rows]


def records_matching(
    conn: Connection,
    birth_date: date,
    name: str | None,
    gender: str | None,
    limit: int,
) -> list[LinkedRecord]:
    """Linked records born on ``birth_date`` (the index's blocking key, indexed) whose folded
    name starts with ``name`` and whose gender is ``gender``, when given."""
    rows = conn.execute(
        _LINKED
        + """
        where l.birth_date = %(birth)s
          and (%(name)s::text is null or starts_with(l.name, %(name)s::text))
          and (%(gender)s::text is null or l.gender = %(gender)s::text)
        order by l.person_id, l.institution_code, l.record_id
        limit %(limit)s
        """,
        {"birth": birth_date, "name": name, "gender": gender, "limit": limit},
    ).fetchall()
    return [LinkedRecord(**r) for r in rows]
