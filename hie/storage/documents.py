"""The MHD document registry's tables (0017): ``document_reference`` and ``document_content``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from hie.storage import Connection


@dataclass
class DocumentRow:
    """One registry entry: the DocumentReference and the columns it is searched by."""

    id: str
    institution_code: str
    status: str
    master_identifier: str
    content_type: str
    size: int
    hash: str
    resource: dict[str, Any]
    document_record: str | None = None
    subject_record: str | None = None
    identifiers: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    facilities: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    related: list[str] = field(default_factory=list)
    date: datetime | None = None
    period_low: datetime | None = None
    period_high: datetime | None = None
    replaces: str | None = None


_COLUMNS = (
    "id, institution_code, status, master_identifier, content_type, size, hash, resource,"
    " document_record, subject_record, identifiers, types, categories, formats, facilities,"
    " settings, authors, related, date, period_low, period_high, replaces"
)


def _row(row: dict[str, Any]) -> DocumentRow:
    return DocumentRow(**row)


def put_document(conn: Connection, doc: DocumentRow) -> None:
    """Insert the entry, or replace the one with its id (same institution)."""
    conn.execute(
        f"insert into document_reference ({_COLUMNS}) values"  # noqa: S608
        " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " on conflict (id) do update set status = excluded.status,"
        " master_identifier = excluded.master_identifier, content_type = excluded.content_type,"
        " size = excluded.size, hash = excluded.hash, resource = excluded.resource,"
        " document_record = excluded.document_record, subject_record = excluded.subject_record,"
        " identifiers = excluded.identifiers, types = excluded.types,"
        " categories = excluded.categories, formats = excluded.formats,"
        " facilities = excluded.facilities, settings = excluded.settings,"
        " authors = excluded.authors, related = excluded.related, date = excluded.date,"
        " period_low = excluded.period_low, period_high = excluded.period_high,"
        " replaces = excluded.replaces"
        " where document_reference.institution_code = excluded.institution_code",
        (
            doc.id,
            doc.institution_code,
            doc.status,
            doc.master_identifier,
            doc.content_type,
            doc.size,
            doc.hash,
            Jsonb(doc.resource),
            doc.document_record,
            doc.subject_record,
            doc.identifiers,
            doc.types,
            doc.categories,
            doc.formats,
            doc.facilities,
            doc.settings,
            doc.authors,
            doc.related,
            doc.date,
            doc.period_low,
            doc.period_high,
            doc.replaces,
        ),
    )


def get_document(conn: Connection, document_id: str, *, lock: bool = False) -> DocumentRow | None:
    row = conn.execute(
        f"select {_COLUMNS} from document_reference where id = %s"  # noqa: S608
        + (" for update" if lock else ""),
        (document_id,),
    ).fetchone()
    return None if row is None else _row(row)


def by_record(conn: Connection, institution_code: str, document_record: str) -> DocumentRow | None:
    """The entry of a stored CDA document."""
    row = conn.execute(
        f"select {_COLUMNS} from document_reference"  # noqa: S608
        " where institution_code = %s and document_record = %s",
        (institution_code, document_record),
    ).fetchone()
    return None if row is None else _row(row)


def by_master_identifier(
    conn: Connection, institution_code: str, master_identifier: str
) -> DocumentRow | None:
    row = conn.execute(
        f"select {_COLUMNS} from document_reference"  # noqa: S608
        " where institution_code = %s and master_identifier = %s",
        (institution_code, master_identifier),
    ).fetchone()
    return None if row is None else _row(row)


def registration_facts(
    conn: Connection, institution_code: str, document_id: str
) -> tuple[str, str, str | None] | None:
    """For a new entry, in one round trip: its institution's name and kind, and the id of an
    entry already replacing it (a backfill may store a replacement first). None: no such
    institution."""
    row = conn.execute(
        "select name, kind, (select id from document_reference where replaces = %s"
        " order by created_at limit 1) as replaced_by from institution where code = %s",
        (document_id, institution_code),
    ).fetchone()
    if row is None:
        return None
    return str(row["name"]), str(row["kind"]), row["replaced_by"]


def set_status(conn: Connection, document_id: str, status: str) -> None:
    """A new status, in the column and in the stored DocumentReference alike."""
    conn.execute(
        "update document_reference set status = %s,"
        " resource = jsonb_set(resource, '{status}', to_jsonb(%s::text))"
        " where id = %s",
        (status, status, document_id),
    )


def put_content(conn: Connection, document_id: str, data: bytes) -> None:
    conn.execute(
        "insert into document_content (id, data) values (%s, %s)"
        " on conflict (id) do update set data = excluded.data",
        (document_id, data),
    )


def get_content(conn: Connection, document_id: str) -> bytes | None:
    row = conn.execute("select data from document_content where id = %s", (document_id,)).fetchone()
    return None if row is None else bytes(row["data"])


@dataclass(frozen=True)
class DocumentQuery:
    """An ITI-67 search, already resolved to the resident: the ``persons`` of the person index
    (every record linked to them, at any institution) and ``records`` named directly
    ((institution, record) pairs, e.g. a Patient that links to no person)."""

    persons: list[int]
    records: list[tuple[str, str]]
    statuses: list[str]
    # Each list is one parameter: an entry matches when it has any of the tokens.
    token_filters: list[tuple[str, list[str]]] = field(default_factory=list)
    # (column, operator, moment): date and period bounds, already turned into comparisons.
    bounds: list[tuple[str, str, datetime]] = field(default_factory=list)
    limit: int = 1000


_TOKEN_COLUMNS = frozenset(
    {
        "identifiers",
        "types",
        "categories",
        "formats",
        "facilities",
        "settings",
        "authors",
        "related",
    }
)
_BOUND_COLUMNS = frozenset({"date", "period_low", "period_high"})
_OPERATORS = frozenset({"<", "<=", ">", ">="})


def search_documents(conn: Connection, query: DocumentQuery) -> list[DocumentRow]:
    """The entries of the resident's records that pass every filter, newest first."""
    if not query.persons and not query.records:
        return []
    # The resident's records joined in the database (one search of a resident with hundreds
    # of linked documents is one statement, not their list sent back and forth).
    where = [
        "(institution_code, subject_record) in"
        " (select l.institution_code, l.record_id from person_link l"
        "  where l.person_id = any(%s)"
        "  union all select * from unnest(%s::text[], %s::text[]))",
        "status = any(%s)",
    ]
    params: list[Any] = [
        query.persons,
        [i for i, _ in query.records],
        [r for _, r in query.records],
        query.statuses,
    ]
    for column, tokens in query.token_filters:
        if column not in _TOKEN_COLUMNS:
            raise ValueError(f"not a token column: {column}")
        where.append(f"{column} && %s")
        params.append(tokens)
    for column, operator, moment in query.bounds:
        if column not in _BOUND_COLUMNS or operator not in _OPERATORS:
            raise ValueError(f"not a bound: {column} {operator}")
        # An open end of a period satisfies any bound on that end.
        open_end = column == "period_high" and operator in (">", ">=")
        where.append(f"({column} {operator} %s" + (f" or {column} is null)" if open_end else ")"))
        params.append(moment)
    params.append(query.limit)
    rows = conn.execute(
        f"select {_COLUMNS} from document_reference where "  # noqa: S608
        + " and ".join(where)
        + " order by date desc nulls last, id limit %s",
        params,
    ).fetchall()
    return [_row(row) for row in rows]


def stored_cda_without_entry(
    conn: Connection, after: tuple[str, str] | None, limit: int
) -> list[tuple[str, str]]:
    """Stored (not deleted) CDA documents with no registry entry, in (institution, logical id)
    order after ``after``, for a backfill. CDA logical ids are "<root>^<extension>", FHIR ones
    "<Type>/<id>"."""
    institution, logical_id = after or ("", "")
    rows = conn.execute(
        "select h.institution_code, h.logical_id from record_head h"
        " where (h.institution_code, h.logical_id) > (%s, %s) and not h.deleted"
        " and h.logical_id not like '%%/%%'"
        " and not exists (select 1 from document_reference d"
        "  where d.institution_code = h.institution_code and d.document_record = h.logical_id)"
        " order by h.institution_code, h.logical_id limit %s",
        (institution, logical_id, limit),
    ).fetchall()
    return [(str(r["institution_code"]), str(r["logical_id"])) for r in rows]
