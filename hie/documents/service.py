"""The document registry, in the caller's transaction: every stored CDA document's entry (the
store step's hook), superseding on replacement, who may read an entry, retrieval, backfill."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from typing import Any

from hie.auth import Principal
from hie.catalog import Table
from hie.documents.model import Facility, cda_entry, document_id, read_header
from hie.errors import NotFound, PermissionDenied
from hie.normalize import NormalizedRecord
from hie.normalize.cda import normalize_cda
from hie.storage import Connection
from hie.storage import documents as store
from hie.storage.documents import DocumentRow
from hie.storage.records import get_head, read_version
from hie.validators.xml import parse_xml

# Said alike for a document that does not exist and one the caller may not read: an answer
# must not tell a caller that a resident has records elsewhere.
NOT_READABLE = "no document you may read has this id"


def register_cda(
    conn: Connection,
    institution_code: str,
    table: Table,
    record: NormalizedRecord,
    data: bytes,
    received_at: datetime,
) -> DocumentRow | None:
    """The store step's hook for a written CDA document: its DocumentReference, in the same
    transaction; the document it replaces becomes ``superseded``. None when the stored bytes
    cannot be read as XML (never: they passed validation)."""
    parsed = parse_xml(data)
    if parsed.tree is None:
        return None
    return _register(conn, institution_code, table, record, parsed.tree, data, received_at)


def _register(
    conn: Connection,
    institution_code: str,
    table: Table,
    record: NormalizedRecord,
    tree: Any,
    data: bytes,
    received_at: datetime,
) -> DocumentRow:
    replaces = None
    if record.replaces:
        parent = store.by_record(conn, institution_code, record.replaces)
        replaces = parent.id if parent else document_id(institution_code, record.replaces)
        if parent is not None and parent.status == "current":
            store.set_status(conn, parent.id, "superseded")
    facts = store.registration_facts(
        conn, institution_code, document_id(institution_code, record.logical_id)
    )
    if facts is None:
        raise NotFound(f"no institution with code {institution_code!r}")
    name, kind, replaced_by = facts
    entry = cda_entry(
        record,
        table,
        read_header(tree),
        Facility(institution_code, name, kind),
        data,
        received_at,
        replaces=replaces,
    )
    # Stored before the document it replaces (a backfill in another order): superseded at once.
    if replaced_by is not None:
        entry.status = entry.resource["status"] = "superseded"
    store.put_document(conn, entry)
    return entry


def readable(
    conn: Connection, principal: Principal, documents: Sequence[DocumentRow]
) -> list[DocumentRow]:
    """The one place that decides which registry entries a caller may see and retrieve.

    Today: an admin every entry; a submitter or clinician its own institution's; a regulator
    none (figures, not contents). The consent rule (a clinician reading another institution's
    documents with the resident's consent or by break-glass) plugs in here; ``conn`` is there
    for it.
    """
    del conn  # read by the consent rule, not by the institution rule
    if principal.role == "admin":
        return list(documents)
    if principal.role in ("submitter", "clinician"):
        return [d for d in documents if d.institution_code == principal.institution_code]
    return []


def require_searcher(principal: Principal) -> None:
    """Who may search the registry at all (the rest is :func:`readable`)."""
    principal.require_role("admin", "submitter", "clinician")


def retrieve(conn: Connection, principal: Principal, doc_id: str) -> tuple[DocumentRow, bytes]:
    """A document's entry and its original bytes (ITI-68). Unknown and unreadable ids are
    answered alike, except to an admin."""
    entry = store.get_document(conn, doc_id)
    if entry is None or not readable(conn, principal, [entry]):
        if principal.role == "admin":
            raise NotFound(f"no document has id {doc_id!r}")
        raise PermissionDenied(NOT_READABLE)
    data = original_bytes(conn, entry)
    if data is None:
        raise NotFound(f"the content of document {doc_id!r} is no longer stored")
    return entry, data


def original_bytes(conn: Connection, entry: DocumentRow) -> bytes | None:
    """The bytes as uploaded: the CDA record's raw XML, or an ITI-65 Binary's content."""
    if entry.document_record is None:
        return store.get_content(conn, entry.id)
    head = get_head(conn, entry.institution_code, entry.document_record)
    if head is None or head.deleted:
        return None
    version = read_version(conn, head)
    raw = None if version is None else version.get("raw_xml")
    return None if raw is None else bytes(raw)


def rebuild_batch(
    conn: Connection,
    tables: Callable[[str], Table | None],
    after: tuple[str, str] | None,
    *,
    zone: tzinfo,
    limit: int = 200,
) -> tuple[int, tuple[str, str] | None]:
    """Register up to ``limit`` stored CDA documents that have no entry (stored before the
    registry existed). Returns how many were registered and where the next batch starts (None
    when done). ``tables`` looks a table up by its code."""
    pending = store.stored_cda_without_entry(conn, after, limit)
    done = 0
    for institution_code, logical_id in pending:
        head = get_head(conn, institution_code, logical_id)
        version = None if head is None else read_version(conn, head)
        if head is None or version is None or version.get("raw_xml") is None:
            continue
        data = bytes(version["raw_xml"])
        parsed = parse_xml(data)
        if parsed.tree is None:
            continue
        table = tables(head.table_code) or Table(head.table_code, head.table_code, "", "")
        record = normalize_cda(parsed.tree, table, zone=zone)
        _register(conn, institution_code, table, record, parsed.tree, data, head.received_at)
        done += 1
    return done, (pending[-1] if len(pending) == limit else None)
