"""The one pipeline every entry point calls once a payload is validated and normalized: store the
record version with its aggregates, or count the rejection, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid4

from hie.catalog import Table
from hie.consent.service import record_stored as record_consent
from hie.documents.service import (
    is_fhir_document,
    register_cda,
    register_fhir_document,
    withdraw_fhir_document,
)
from hie.metrics import units_of
from hie.metrics.timeliness import latency_bucket
from hie.normalize import NormalizedRecord
from hie.persons.service import index_stored
from hie.storage import Connection
from hie.storage.outbox import NewEvent, append_events
from hie.storage.records import (
    Head,
    NewVersion,
    WriteResult,
    get_head,
    get_heads,
    write_version,
    write_versions,
)
from hie.storage.uploads import count_rejection


@dataclass(frozen=True)
class Arrival:
    """When and for whom a payload arrived: receipt time decides the month and day it counts in."""

    institution_code: str
    received_at: datetime
    day: date  # receipt day in the platform's time zone
    upload_id: UUID
    token_id: int | None = None


@dataclass
class Stored:
    result: WriteResult
    record: NormalizedRecord
    table: Table
    chain_key: str
    person_key: str | None


def chain_key_of(conn: Connection, arrival: Arrival, record: NormalizedRecord) -> str:
    """The document chain a record belongs to: a replacement joins its parent's chain."""
    if record.replaces:
        parent = get_head(conn, arrival.institution_code, record.replaces)
        if parent is not None and parent.chain_key:
            return parent.chain_key
        return record.replaces
    return record.chain_id or record.logical_id


def person_key_of(
    conn: Connection,
    arrival: Arrival,
    record: NormalizedRecord,
    persons_in_upload: Mapping[str, str | None],
) -> str | None:
    """The record's person: its own patient identity, or its subject Patient's, found in the same
    upload first and then among the institution's stored Patients."""
    if record.patient is not None and record.patient.person_key:
        return record.patient.person_key
    reference = record.subject_reference
    if reference is None:
        return None
    if reference in persons_in_upload:
        return persons_in_upload[reference]
    stored = get_head(conn, arrival.institution_code, reference)
    return None if stored is None or stored.deleted else stored.person_key


@dataclass
class Incoming:
    """One validated, normalized record of a request, to be written by :func:`store_records`."""

    table: Table
    record: NormalizedRecord
    content_sha256: bytes
    raw_xml: bytes | None = None
    resource: dict[str, Any] | None = None
    # The upload it came in, when not the arrival's (each line of a bulk job is an upload of
    # its own, as if sent alone).
    upload_id: UUID | None = None


def store_record(
    conn: Connection,
    arrival: Arrival,
    table: Table,
    record: NormalizedRecord,
    *,
    content_sha256: bytes,
    raw_xml: bytes | None = None,
    resource: dict[str, Any] | None = None,
    immutable: bool,
    if_match: int | None = None,
    deleted: bool = False,
    persons_in_upload: Mapping[str, str | None] | None = None,
) -> Stored:
    """Write ``record`` as a new version (or find it unchanged/conflicting), with its aggregates."""
    chain_key = chain_key_of(conn, arrival, record)
    person_key = person_key_of(conn, arrival, record, persons_in_upload or {})
    new = _new_version(
        arrival, table, record, content_sha256, raw_xml, resource, deleted, chain_key, person_key
    )
    result = write_version(conn, new, immutable=immutable, if_match=if_match)
    if result.written:
        _after_write(conn, arrival, table, record, resource, raw_xml, deleted=deleted)
    if result.written and result.head is not None:
        # The event of this version, in its transaction: it exists if and only if the version does.
        append_events(conn, [_accepted(arrival, table, record, result.head.version, deleted)])
    return Stored(result, record, table, chain_key, person_key)


def _after_write(
    conn: Connection,
    arrival: Arrival,
    table: Table,
    record: NormalizedRecord,
    resource: dict[str, Any] | None,
    raw_xml: bytes | None,
    *,
    deleted: bool,
) -> None:
    """What a written version brings along in its own transaction: the person index, a
    Consent's projection, and the document registry (MHD: a document's DocumentReference exists
    if and only if the document does)."""
    institution = arrival.institution_code
    index_stored(conn, institution, record, deleted=deleted)
    record_consent(conn, institution, record, resource, deleted=deleted)
    if deleted:
        if record.logical_id.startswith("Bundle/"):
            withdraw_fhir_document(conn, institution, record.logical_id)
    elif raw_xml is not None:
        register_cda(conn, institution, table, record, raw_xml, arrival.received_at)
    elif resource is not None and is_fhir_document(resource):
        register_fhir_document(conn, institution, table, record, resource, arrival.received_at)


def store_records(
    conn: Connection,
    arrival: Arrival,
    incoming: list[Incoming],
    *,
    immutable: bool,
    persons_in_upload: Mapping[str, str | None] | None = None,
) -> list[Stored]:
    """:func:`store_record` of many records (no If-Match, none deleted), as if one after the
    other, in a few statements: the heads the chain and person keys need are read together,
    and the versions with their aggregates are written together (``write_versions``).

    A Patient among them counts for the records after it, as if it had been stored first;
    ``persons_in_upload`` adds the request's other Patients (a Bundle's, wherever they are)."""
    persons = dict(persons_in_upload or {})
    wanted: set[str] = set()
    for item in incoming:
        record = item.record
        if record.replaces:
            wanted.add(record.replaces)
        if not (record.patient is not None and record.patient.person_key):
            reference = record.subject_reference
            if reference is not None and reference not in persons:
                wanted.add(reference)
    heads = get_heads(conn, arrival.institution_code, sorted(wanted))
    chains: dict[str, str] = {}  # chain keys of this request's earlier records
    keys: list[tuple[str, str | None]] = []
    for item in incoming:
        record = item.record
        chain_key = _chain_key(record, heads.get(record.replaces or ""), chains)
        chains[record.logical_id] = chain_key
        keys.append((chain_key, _person_key(record, persons, heads)))
        if item.resource is not None and item.resource.get("resourceType") == "Patient":
            persons[record.logical_id] = record.patient.person_key if record.patient else None
    news = [
        _new_version(
            _arrival_of(arrival, item),
            item.table,
            item.record,
            item.content_sha256,
            item.raw_xml,
            item.resource,
            False,
            chain_key,
            person_key,
        )
        for item, (chain_key, person_key) in zip(incoming, keys, strict=True)
    ]
    results = write_versions(conn, news, immutable=immutable)
    for result, item in zip(results, incoming, strict=True):
        if result.written:
            _after_write(
                conn, arrival, item.table, item.record, item.resource, item.raw_xml, deleted=False
            )
    # The events of the versions written, in one statement of the same transaction.
    events = [
        _accepted(_arrival_of(arrival, item), item.table, item.record, result.head.version, False)
        for result, item in zip(results, incoming, strict=True)
        if result.written and result.head is not None
    ]
    if events:
        append_events(conn, events)
    return [
        Stored(result, item.record, item.table, chain_key, person_key)
        for result, item, (chain_key, person_key) in zip(results, incoming, keys, strict=True)
    ]


def _arrival_of(arrival: Arrival, item: Incoming) -> Arrival:
    if item.upload_id is None or item.upload_id == arrival.upload_id:
        return arrival
    return replace(arrival, upload_id=item.upload_id)


def _chain_key(record: NormalizedRecord, parent: Head | None, earlier: Mapping[str, str]) -> str:
    """:func:`chain_key_of` with the parent's head read beforehand."""
    if record.replaces:
        if record.replaces in earlier:
            return earlier[record.replaces]
        if parent is not None and parent.chain_key:
            return parent.chain_key
        return record.replaces
    return record.chain_id or record.logical_id


def _person_key(
    record: NormalizedRecord, persons: Mapping[str, str | None], heads: Mapping[str, Head]
) -> str | None:
    """:func:`person_key_of` with the subjects' heads read beforehand."""
    if record.patient is not None and record.patient.person_key:
        return record.patient.person_key
    reference = record.subject_reference
    if reference is None:
        return None
    if reference in persons:
        return persons[reference]
    stored = heads.get(reference)
    return None if stored is None or stored.deleted else stored.person_key


def _new_version(
    arrival: Arrival,
    table: Table,
    record: NormalizedRecord,
    content_sha256: bytes,
    raw_xml: bytes | None,
    resource: dict[str, Any] | None,
    deleted: bool,
    chain_key: str,
    person_key: str | None,
) -> NewVersion:
    units, unkeyed = (
        ([], []) if deleted else units_of(table, record, chain_key=chain_key, person_key=person_key)
    )
    return NewVersion(
        institution_code=arrival.institution_code,
        table_code=table.code,
        logical_id=record.logical_id,
        content_sha256=content_sha256,
        received_at=arrival.received_at,
        day=arrival.day,
        upload_id=arrival.upload_id,
        raw_xml=raw_xml,
        resource=resource,
        normalized=record.to_json(),
        deleted=deleted,
        chain_key=chain_key,
        person_key=person_key if record.patient is not None else None,
        units=units,
        unkeyed=unkeyed,
        latency_bucket=(
            latency_bucket(record.effective_time, arrival.received_at)
            if record.effective_time is not None
            else None
        ),
    )


def _accepted(
    arrival: Arrival, table: Table, record: NormalizedRecord, version: int, deleted: bool
) -> NewEvent:
    return NewEvent(
        event_id=uuid4(),
        outcome="accepted",
        institution_code=arrival.institution_code,
        received_at=arrival.received_at,
        upload_id=arrival.upload_id,
        table_code=table.code,
        record_kind=record.kind,
        logical_id=record.logical_id,
        version=version,
        deleted=deleted,
        replaces=record.replaces,
    )


def reject(
    conn: Connection, arrival: Arrival, rules: list[str], *, table: Table | None = None
) -> None:
    """Count one rejected document or resource for the report, with the rules that fired, and
    write its ``record.rejected`` event (``table`` when it could be told)."""
    count_rejection(conn, arrival.institution_code, arrival.day, rules)
    event = NewEvent(
        event_id=uuid4(),
        outcome="rejected",
        institution_code=arrival.institution_code,
        received_at=arrival.received_at,
        upload_id=arrival.upload_id,
        table_code=table.code if table is not None else None,
        rules=tuple(sorted(set(rules))),
    )
    append_events(conn, [event])
