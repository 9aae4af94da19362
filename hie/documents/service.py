"""The document registry, in the caller's transaction: every stored CDA document's and FHIR
document Bundle's entry (the store step's hooks), superseding on replacement, who may read an
entry, retrieval, backfill."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from hie.auth import Principal
from hie.catalog import Table
from hie.consent.model import Consent, Verdict
from hie.consent.service import audit_detail, consents_for, decide_access
from hie.documents.model import (
    FHIR_MEDIA_TYPE,
    Facility,
    cda_entry,
    composition_of,
    document_id,
    fhir_document_bytes,
    fhir_entry,
    fhir_master_identifier,
    master_token,
    read_header,
    replaced_targets,
)
from hie.errors import NotFound, PermissionDenied
from hie.normalize import NormalizedRecord
from hie.normalize.cda import normalize_cda
from hie.normalize.fhir import normalize_resource
from hie.storage import Connection
from hie.storage import documents as store
from hie.storage.documents import DocumentRow
from hie.storage.persons import persons_of_records
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


def is_fhir_document(resource: dict[str, Any] | None) -> bool:
    return (
        resource is not None
        and resource.get("resourceType") == "Bundle"
        and resource.get("type") == "document"
    )


def register_fhir_document(
    conn: Connection,
    institution_code: str,
    table: Table,
    record: NormalizedRecord,
    bundle: dict[str, Any],
    received_at: datetime,
) -> DocumentRow:
    """The store step's hook for a written FHIR document Bundle: its DocumentReference, in the
    same transaction. A new version of the same Bundle rewrites its entry (same id and URL: the
    bytes served are the new version's). Another Bundle with the same Bundle.identifier, or one
    whose Composition.relatesTo ``replaces`` names a stored document, supersedes that entry;
    of two Bundles with one identifier the one received later is current."""
    doc_id = document_id(institution_code, record.logical_id)
    facts = store.registration_facts(conn, institution_code, doc_id)
    if facts is None:
        raise NotFound(f"no institution with code {institution_code!r}")
    name, kind, replaced_by = facts
    own = store.get_document(conn, doc_id)
    replaces = own.replaces if own is not None else None
    # A Bundle deleted and stored again is current again; one superseded stays so.
    status = "superseded" if own is not None and own.status == "superseded" else "current"
    if replaced_by is not None:
        status = "superseded"
    master = master_token(fhir_master_identifier(bundle, doc_id))
    same = store.by_master_identifier(conn, institution_code, master)
    if same is not None and same.id != doc_id:
        if same.date is not None and same.date > received_at:
            # Met after its successor (a backfill): registered superseded.
            status = "superseded"
        else:
            replaces = same.id
            if same.status == "current":
                store.set_status(conn, same.id, "superseded")
            # The latest stored under the identifier is current, whatever it was before.
            status = "current" if replaced_by in (None, same.id) else "superseded"
    for kind_of, target in replaced_targets(composition_of(bundle)):
        parent = (
            store.by_master_identifier(conn, institution_code, target)
            if kind_of == "identifier"
            else store.by_record(conn, institution_code, target)
        )
        if parent is not None and parent.id != doc_id:
            replaces = parent.id
            if parent.status == "current":
                store.set_status(conn, parent.id, "superseded")
    entry = fhir_entry(
        bundle,
        record,
        table,
        Facility(institution_code, name, kind),
        received_at,
        status=status,
        replaces=replaces,
    )
    store.put_document(conn, entry)
    return entry


def withdraw_fhir_document(conn: Connection, institution_code: str, logical_id: str) -> None:
    """The store step's hook for a deleted FHIR document Bundle: its entry stays (a reader may
    hold its id) as ``entered-in-error``; ITI-68 answers that its content is no longer stored."""
    entry = store.by_record(conn, institution_code, logical_id)
    if entry is not None and entry.content_type == FHIR_MEDIA_TYPE:
        store.set_status(conn, entry.id, "entered-in-error")


@dataclass
class Readable:
    """What a caller may see of some registry entries, and what the access's audit entry names:
    the persons (ids) the entries are about, each verdict that let an entry through (the consent
    or break-glass used) and, when an entry was kept back, why."""

    documents: list[DocumentRow] = field(default_factory=list)
    verdicts: list[tuple[int, Verdict]] = field(default_factory=list)
    persons: set[int] = field(default_factory=set)
    refused: str | None = None

    def audit(self, searched: Sequence[int] = ()) -> dict[str, Any]:
        """The audit entry's detail (``hie.consent.service.audit_detail``): every person the
        access was about, shown or not, so the resident's access history lists attempts too."""
        detail = audit_detail(self.verdicts, [f"DocumentReference/{d.id}" for d in self.documents])
        detail["persons"] = sorted(self.persons | set(searched))
        if self.refused is not None:
            detail["refused"] = self.refused
        return detail


def consent_classes(entry: DocumentRow) -> frozenset[str]:
    """What a consent's ``provision.class`` names to cover this document: its class (the
    category, e.g. ``discharge``), its type (e.g. the LOINC or WS/T code), or the resource type
    ``DocumentReference`` (as a FHIR read of it asks)."""
    codes = {token for token in (*entry.categories, *entry.types) if "|" not in token}
    return frozenset({"DocumentReference", *codes})


def readable(
    conn: Connection,
    principal: Principal,
    documents: Sequence[DocumentRow],
    *,
    break_glass: str | None = None,
) -> Readable:
    """The one place that decides which registry entries a caller may see and retrieve.

    An admin every entry; a submitter its own institution's; a regulator none (figures, not
    contents); a clinician its own institution's, and another's as
    :func:`hie.consent.service.decide_access` says: under the resident's active consent covering
    the clinician's institution and the document's class (:func:`consent_classes`), or by
    break-glass (``break_glass``: the stated reason), flagged for review once per resident and
    institution. An entry whose resident the person index does not know has no consent to
    give: only its own institution reads it."""
    if principal.role == "regulator":
        return Readable()
    if principal.role == "admin":
        shown = Readable(list(documents))
        shown.persons.update(_persons(conn, documents).values())
        return shown
    own = principal.institution_code
    if principal.role not in ("submitter", "clinician") or own is None:
        return Readable()
    if principal.role == "submitter":
        shown = Readable([d for d in documents if d.institution_code == own])
        shown.persons.update(_persons(conn, shown.documents).values())
        return shown
    persons = _persons(conn, documents)
    consents: dict[int, list[Consent]] = {}
    glass: dict[tuple[int, str, str | None], Verdict] = {}
    answer = Readable()
    for entry in documents:
        person = persons.get(entry.id)
        if person is None:
            if entry.institution_code == own:
                answer.documents.append(entry)
            else:
                answer.refused = "the resident of this document is not in the person index"
            continue
        answer.persons.add(person)
        source = entry.institution_code
        if source != own and person not in consents:
            consents[person] = consents_for(conn, person)
        verdict = decide_access(
            conn,
            principal,
            person,
            source,
            classes=consent_classes(entry),
            consents=consents.get(person, []),
        )
        if not verdict.allowed and break_glass:
            # One flag per resident and institution (and deny overridden, so its review entry
            # names it), however many documents one search lists.
            key = (person, source, verdict.denied_by)
            if key not in glass:
                glass[key] = decide_access(
                    conn,
                    principal,
                    person,
                    source,
                    classes=consent_classes(entry),
                    break_glass=break_glass,
                    target=f"DocumentReference/{entry.id}",
                    consents=consents[person],
                )
            verdict = glass[key]
        if verdict.allowed:
            answer.documents.append(entry)
            answer.verdicts.append((person, verdict))
        else:
            answer.refused = verdict.why
    return answer


def _persons(conn: Connection, documents: Sequence[DocumentRow]) -> dict[str, int]:
    """The person each entry is about (by entry id), one query per institution."""
    found: dict[str, int] = {}
    for institution in sorted({d.institution_code for d in documents}):
        of_institution = [d for d in documents if d.institution_code == institution]
        records = sorted({d.subject_record for d in of_institution if d.subject_record})
        linked = persons_of_records(conn, institution, records)
        for entry in of_institution:
            if entry.subject_record in linked:
                found[entry.id] = linked[entry.subject_record]
    return found


def require_searcher(principal: Principal) -> None:
    """Who may search the registry at all (the rest is :func:`readable`)."""
    principal.require_role("admin", "submitter", "clinician")


class Refused(PermissionDenied):
    """A retrieval refused, answered exactly as a document that does not exist; ``audit`` is
    for the audit entry only (the resident the caller asked about), never for the caller."""

    def __init__(self, audit: dict[str, Any]) -> None:
        super().__init__(NOT_READABLE)
        self.audit = audit


@dataclass(frozen=True)
class Retrieved:
    entry: DocumentRow
    data: bytes
    audit: dict[str, Any]  # the retrieval's audit entry: persons, consent or break-glass used


def retrieve(
    conn: Connection, principal: Principal, doc_id: str, *, break_glass: str | None = None
) -> Retrieved:
    """A document's entry and its original bytes (ITI-68). Unknown and unreadable ids are
    answered alike (:class:`Refused` carries what only the audit trail is told), except to an
    admin."""
    entry = store.get_document(conn, doc_id)
    if entry is None:
        if principal.role == "admin":
            raise NotFound(f"no document has id {doc_id!r}")
        raise PermissionDenied(NOT_READABLE)
    shown = readable(conn, principal, [entry], break_glass=break_glass)
    if not shown.documents:
        raise Refused(shown.audit())
    data = original_bytes(conn, entry)
    if data is None:
        raise NotFound(f"the content of document {doc_id!r} is no longer stored")
    return Retrieved(entry, data, shown.audit())


def original_bytes(conn: Connection, entry: DocumentRow) -> bytes | None:
    """The bytes as uploaded: the CDA record's raw XML, or an ITI-65 Binary's content; a FHIR
    document Bundle's stored form as canonical JSON (what its size and hash describe)."""
    if entry.document_record is None:
        return store.get_content(conn, entry.id)
    head = get_head(conn, entry.institution_code, entry.document_record)
    if head is None or head.deleted:
        return None
    version = read_version(conn, head)
    if entry.content_type == FHIR_MEDIA_TYPE:
        bundle = None if version is None else version.get("resource")
        return None if not isinstance(bundle, dict) else fhir_document_bytes(bundle)
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
    """Register up to ``limit`` stored CDA documents and FHIR document Bundles that have no
    entry (stored before the registry existed). Returns how many were registered and where the
    next batch starts (None when done). ``tables`` looks a table up by its code."""
    pending = store.stored_documents_without_entry(conn, after, limit)
    done = 0
    for institution_code, logical_id in pending:
        head = get_head(conn, institution_code, logical_id)
        version = None if head is None else read_version(conn, head)
        if head is None or version is None:
            continue
        table = tables(head.table_code) or Table(head.table_code, head.table_code, "", "")
        bundle = version.get("resource")
        if isinstance(bundle, dict) and is_fhir_document(bundle):
            record = normalize_resource(bundle, table)
            register_fhir_document(conn, institution_code, table, record, bundle, head.received_at)
            done += 1
            continue
        if version.get("raw_xml") is None:
            continue
        data = bytes(version["raw_xml"])
        parsed = parse_xml(data)
        if parsed.tree is None:
            continue
        record = normalize_cda(parsed.tree, table, zone=zone)
        _register(conn, institution_code, table, record, parsed.tree, data, head.received_at)
        done += 1
    return done, (pending[-1] if len(pending) == limit else None)
