"""Backfilling the person index from the stored records: those stored before the index existed
(migration 0013), or all of them again after its matching rules changed.

Each record is normalized again from its stored payload (the CDA document as uploaded, the FHIR
resource), not from ``record_version.normalized``: versions stored before the index kept no
demographics, and a change of rules may read more of the record. Then it goes through
:func:`hie.persons.service.link_record`, the very step a new upload takes, so a rebuild links
exactly as the store step would have. Linking an already linked record again changes nothing,
which makes the rebuild safe to run twice or to resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import tzinfo

from hie.catalog import Table
from hie.normalize import PatientIdentity
from hie.normalize.cda import normalize_cda
from hie.normalize.fhir import normalize_resource
from hie.persons.service import Outcome, link_record, link_records, unlink_record
from hie.storage import Connection
from hie.storage import persons as store
from hie.storage.persons import Cursor, Indexable
from hie.validators.xml import parse_xml

BATCH = 500


@dataclass
class Progress:
    """What a rebuild did so far."""

    records: int = 0
    linked: int = 0  # had no link, now has one
    moved: int = 0  # linked to another person than before
    unchanged: int = 0
    unlinked: int = 0  # had a link, but is deleted or no longer names anyone
    skipped: int = 0  # names no one and had no link (nothing to do)

    def add(self, other: Progress) -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def line(self) -> str:
        return (
            f"{self.records:,} records: {self.linked:,} linked, {self.moved:,} moved,"
            f" {self.unchanged:,} unchanged, {self.unlinked:,} unlinked,"
            f" {self.skipped:,} without a patient"
        )


def identity_of(record: Indexable, table: Table, zone: tzinfo) -> PatientIdentity | None:
    """Who a stored record is about, read again from its payload (None: no one)."""
    if record.deleted:
        return None
    if record.raw_xml is not None:
        parsed = parse_xml(record.raw_xml)
        if parsed.tree is None:
            return None
        return normalize_cda(parsed.tree, table, zone=zone).patient
    if record.resource is not None:
        return normalize_resource(record.resource, table).patient
    return None


def rebuild_batch(
    conn: Connection,
    tables: Callable[[str], Table | None],
    after: Cursor | None,
    *,
    zone: tzinfo,
    limit: int = BATCH,
    one_by_one: bool = False,
) -> tuple[Progress, Cursor | None]:
    """Link up to ``limit`` stored records (in the caller's transaction); what was done, and
    where the next batch starts (None when every record has been seen). Records are linked in
    the order they arrived, as the store step linked them: by :func:`link_records`, or with
    ``one_by_one`` by :func:`link_record` for each (slower; the same links)."""
    records = store.indexable_records(conn, after, limit)
    progress = Progress()
    identities = [
        identity_of(r, tables(r.table_code) or Table(r.table_code, r.table_code, "", ""), zone)
        for r in records
    ]
    if one_by_one:
        outcomes = [
            _link_one(conn, r, identity) for r, identity in zip(records, identities, strict=True)
        ]
    else:
        outcomes = link_records(
            conn,
            [
                (r.institution_code, r.logical_id, identity)
                for r, identity in zip(records, identities, strict=True)
            ],
        )
    for previous, linked in outcomes:
        progress.records += 1
        if linked is None:
            if previous is None:
                progress.skipped += 1
            else:
                progress.unlinked += 1
        elif previous is None:
            progress.linked += 1
        elif previous.person_id != linked.person_id:
            progress.moved += 1
        else:
            progress.unchanged += 1
    return progress, records[-1].cursor if len(records) == limit else None


def _link_one(conn: Connection, record: Indexable, identity: PatientIdentity | None) -> Outcome:
    """The store step's own link, one record at a time (kept to check the batch against)."""
    previous = store.get_link(conn, record.institution_code, record.logical_id)
    if identity is None:
        unlink_record(conn, record.institution_code, record.logical_id)
        return previous, None
    return previous, link_record(conn, record.institution_code, record.logical_id, identity)
