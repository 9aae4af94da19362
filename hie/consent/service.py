"""Consents recorded, access decided, break-glass flagged, a resident's access history.

In the caller's transaction (or on its autocommit connection): ``record_stored`` is the store
step's hook for every written Consent (``ingest``); the rest is for entry points. The decision
itself is :func:`hie.consent.model.decide` (pure); :func:`decide_access` loads its inputs and
flags a break-glass access for review. How to call it from a new read path (e.g. MHD document
retrieval) is in docs/architecture.md ("Consent and break-glass").
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hie.auth import Principal
from hie.consent.model import AccessRequest, Consent, Rule, Verdict, decide, terms_of
from hie.errors import Conflict, NotFound, PermissionDenied
from hie.normalize import NormalizedRecord
from hie.persons import service as persons
from hie.storage import Connection
from hie.storage import consent as store
from hie.storage import persons as person_store

CONSENT = "Consent/"


def record_stored(
    conn: Connection,
    institution: str,
    record: NormalizedRecord,
    resource: dict[str, Any] | None,
    *,
    deleted: bool,
) -> None:
    """The store step's hook: a written Consent is projected into ``consent`` in the same
    transaction; a deleted one leaves it. Raises PermissionDenied when the institution holds no
    records of the resident (the whole write is then refused)."""
    if not record.logical_id.startswith(CONSENT):
        return
    if deleted or resource is None:
        store.delete_consent(conn, institution, record.logical_id)
        return
    terms = terms_of(resource)
    patient_record = _own_record(conn, institution, terms.patient_reference, terms)
    store.put_consent(
        conn,
        institution,
        record.logical_id,
        patient_record,
        status=terms.status,
        actors=None if terms.actors is None else sorted(terms.actors),
        classes=None if terms.classes is None else sorted(terms.classes),
        start=terms.start,
        end=terms.end,
        provision_type=terms.type,
        exceptions=[rule.to_json() for rule in terms.exceptions],
    )


def _own_record(conn: Connection, institution: str, reference: str | None, terms: Any) -> str:
    """The recording institution's own record of the resident the Consent names."""
    if reference is not None:
        if persons.person_of_record(conn, institution, reference) is not None:
            return reference
    elif terms.patient_identifier is not None:
        system, value = terms.patient_identifier
        for person in persons.find_persons(conn, system, value, institution):
            for link in person_store.links_of(conn, person):
                if link.institution_code == institution:
                    return link.record_id
    raise PermissionDenied(
        f"{institution} holds no records of this resident; a consent is recorded by an"
        " institution that does"
    )


def consents_for(conn: Connection, person_id: int) -> list[Consent]:
    return [
        Consent(
            consent_id=f"{row['institution_code']}/{row['resource_id']}",
            status=row["status"],
            actors=None if row["actors"] is None else frozenset(row["actors"]),
            classes=None if row["classes"] is None else frozenset(row["classes"]),
            start=row["period_start"],
            end=row["period_end"],
            type="deny" if row["provision_type"] == "deny" else "permit",
            exceptions=tuple(Rule.from_json(rule) for rule in row["exceptions"]),
        )
        for row in store.consents_of(conn, person_id)
    ]


def decide_access(
    conn: Connection,
    principal: Principal,
    person_id: int,
    source: str,
    *,
    classes: frozenset[str] = frozenset(),
    clinical: bool = True,
    break_glass: str | None = None,
    target: str | None = None,
    consents: list[Consent] | None = None,
) -> Verdict:
    """Load the resident's consents (unless given), decide, and flag a break-glass access for
    review (the entry's id in ``Verdict.break_glass_id``; the entry notes a deny it overrode)."""
    request = AccessRequest(
        source=source,
        at=datetime.now(UTC),
        classes=classes,
        clinical=clinical,
        break_glass=break_glass,
    )
    needs_consents = principal.role == "clinician" and principal.institution_code != source
    if consents is None:
        consents = consents_for(conn, person_id) if needs_consents else []
    verdict = decide(principal, consents, request)
    if verdict.decision == "break-glass" and verdict.reason is not None:
        entry = store.add_break_glass(
            conn,
            actor=principal.actor,
            institution_code=principal.institution_code,
            person_id=person_id,
            source_institution=source,
            target=target,
            reason=verdict.reason,
            overrode_deny=verdict.denied_by,
        )
        verdict = replace(verdict, break_glass_id=entry)
    return verdict


def audit_detail(verdicts: list[tuple[int, Verdict]], resources: list[str]) -> dict[str, Any]:
    """What an access's audit entry says: the persons (ids, never ID numbers), the resources,
    and the consents or break-glass reasons used."""
    detail: dict[str, Any] = {
        "persons": sorted({person for person, _ in verdicts}),
        "resources": resources[:200],
    }
    consents = sorted({v.consent_id for _, v in verdicts if v.consent_id})
    if consents:
        detail["consents"] = consents
    glass = [v for _, v in verdicts if v.decision == "break-glass"]
    if glass:
        detail["break_glass"] = glass[0].reason
        detail["break_glass_ids"] = sorted({v.break_glass_id for v in glass if v.break_glass_id})
        overrode = sorted({v.denied_by for v in glass if v.denied_by})
        if overrode:
            detail["overrode_deny"] = overrode
    return detail


def break_glass_list(conn: Connection, *, all_entries: bool = False) -> list[dict[str, Any]]:
    return store.break_glass_entries(conn, unreviewed=not all_entries)


def review_break_glass(conn: Connection, entry_id: int, *, actor: str) -> None:
    outcome = store.review_break_glass(conn, entry_id, actor)
    if outcome is None:
        raise NotFound(f"break-glass access {entry_id} does not exist")
    if outcome == "already":
        raise Conflict(f"break-glass access {entry_id} is already reviewed")


def access_history(conn: Connection, person_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """Every audited access naming the person, or a person merged into it, newest first."""
    exists, _ = person_store.person_exists(conn, person_id)
    if not exists:
        raise NotFound(f"person {person_id} does not exist")
    return store.access_history(conn, store.persons_merged_into(conn, person_id), limit)
