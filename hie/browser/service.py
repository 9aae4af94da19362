"""Finding a resident, their timeline, opening one of their documents: in the caller's
connection, each access decided by :func:`hie.consent.service.decide_access` for every
institution whose records it would show, exactly as the FHIR API decides (a refusal is the same
whether the resident exists or not). Each answer carries what its audit entry says
(:func:`hie.consent.service.audit_detail`): the persons, the records shown, the consents or
break-glass reason used; the entry point writes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from hie.auth import Principal
from hie.browser.model import (
    Access,
    Entry,
    ResidentQuery,
    entry_of,
    newest_first,
)
from hie.consent.model import DENIED_MESSAGE, AccessRequest, Consent, Verdict, covered
from hie.consent.service import audit_detail, consents_for, decide_access
from hie.documents.model import CDA_MEDIA_TYPE, FHIR_MEDIA_TYPE, fhir_document_bytes
from hie.documents.render import render_document
from hie.documents.service import is_fhir_document
from hie.errors import PermissionDenied
from hie.persons import service as persons
from hie.storage import Connection
from hie.storage import timeline as store
from hie.storage.records import get_head, read_version
from hie.storage.timeline import LinkedRecord

MAX_RESIDENTS = 50
MAX_MATCHED_RECORDS = 500
MAX_ENTRIES = 500
LOOKUP = "Patient"  # the audit target of a look-up, as PDQm's


def require_reader(principal: Principal) -> None:
    """Residents' records are for clinicians (and administrators); a submitter uploads, a
    regulator reads figures."""
    principal.require_role("clinician", "admin")


class _Decisions:
    """Each (person, institution) decided once per request, through the one access decision;
    the verdicts that allowed, for the audit entry."""

    def __init__(
        self,
        conn: Connection,
        principal: Principal,
        break_glass: str | None,
        target: str,
        *,
        clinical: bool,
    ) -> None:
        self.conn, self.principal, self.break_glass = conn, principal, break_glass
        self.target, self.clinical = target, clinical
        self.verdicts: dict[tuple[int, str], Verdict] = {}
        self.consents: dict[int, list[Consent]] = {}

    def consents_of(self, person: int) -> list[Consent]:
        if person not in self.consents:
            self.consents[person] = consents_for(self.conn, person)
        return self.consents[person]

    def verdict(self, person: int, institution: str) -> Verdict:
        key = (person, institution)
        if key not in self.verdicts:
            self.verdicts[key] = decide_access(
                self.conn,
                self.principal,
                person,
                institution,
                clinical=self.clinical,
                break_glass=self.break_glass,
                target=self.target,
                consents=self.consents_of(person),
            )
        return self.verdicts[key]

    def allowed(self) -> list[tuple[int, Verdict]]:
        return [(person, v) for (person, _), v in sorted(self.verdicts.items()) if v.allowed]


def access_of(verdict: Verdict) -> Access:
    if verdict.decision == "break-glass":
        return "break-glass"
    if verdict.why == "consent":
        return "consent"
    return "admin" if verdict.why == "admin" else "own"


@dataclass(frozen=True)
class Holding:
    """An institution holding records of a resident, and by what right the caller sees them."""

    code: str
    name: str
    access: Access


@dataclass(frozen=True)
class Resident:
    person_id: int
    name: str | None
    birth_date: date | None
    gender: str | None
    institutions: list[Holding]


@dataclass(frozen=True)
class Findings:
    residents: list[Resident]
    audit: dict[str, Any]


def find_residents(
    conn: Connection, principal: Principal, query: ResidentQuery, break_glass: str | None
) -> Findings:
    """The residents a look-up names, as PDQm finds them: by identifier through the person
    index (a medical-record number at the clinician's own institution), by demographics among
    the linked records born that day; a resident is shown only through records the caller may
    see (demographics, not clinical content), and then with every institution it may see."""
    require_reader(principal)
    decisions = _Decisions(conn, principal, break_glass, LOOKUP, clinical=False)
    matched: list[LinkedRecord] | None = None
    if query.system and query.value:
        own = principal.institution_code if principal.role == "clinician" else None
        institution = (own or "") if query.local else ""
        found = persons.find_persons(conn, query.system, query.value, institution)
        matched = store.linked_records(conn, found[:MAX_RESIDENTS])
    if query.birth_date is not None:
        born = store.records_matching(
            conn, query.birth_date, query.name, query.gender, MAX_MATCHED_RECORDS
        )
        if matched is None:
            matched = born
        else:
            named = {r.person_id for r in born}
            matched = [r for r in matched if r.person_id in named]
    shown: list[int] = []
    for record in matched or []:
        if record.person_id in shown or len(shown) == MAX_RESIDENTS:
            continue
        if decisions.verdict(record.person_id, record.institution_code).allowed:
            shown.append(record.person_id)
    residents = _residents(conn, shown, decisions)
    detail = audit_detail(decisions.allowed(), [])
    detail.pop("resources", None)
    detail["persons"] = [r.person_id for r in residents]
    return Findings(residents, detail)


def _residents(conn: Connection, person_ids: list[int], decisions: _Decisions) -> list[Resident]:
    by_person: dict[int, list[LinkedRecord]] = {}
    for record in store.linked_records(conn, person_ids):
        by_person.setdefault(record.person_id, []).append(record)
    residents: list[Resident] = []
    for person in person_ids:
        visible = [
            r
            for r in by_person.get(person, [])
            if decisions.verdict(person, r.institution_code).allowed
        ]
        holdings: dict[str, Holding] = {}
        for r in visible:
            verdict = decisions.verdict(person, r.institution_code)
            holdings.setdefault(
                r.institution_code,
                Holding(r.institution_code, r.institution_name, access_of(verdict)),
            )
        residents.append(
            Resident(
                person,
                next((r.name for r in visible if r.name), None),
                next((r.birth_date for r in visible if r.birth_date), None),
                next((r.gender for r in visible if r.gender), None),
                list(holdings.values()),
            )
        )
    return residents


@dataclass(frozen=True)
class Shown:
    """A timeline entry and by what right it is shown."""

    entry: Entry
    access: Access


@dataclass
class Timeline:
    resident: Resident
    entries: list[Shown] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)
    break_glass: bool = False  # some entries are shown by break-glass only


def timeline(
    conn: Connection, principal: Principal, person_id: int, break_glass: str | None
) -> Timeline:
    """The resident's documents and encounters at every institution the caller may read,
    newest first: its own institution's, another's under the resident's consent (only the
    classes it grants) or by break-glass (each institution flagged for review). Raises
    PermissionDenied, with the words of any refusal, when the caller may see nothing of the
    resident, or the resident does not exist."""
    require_reader(principal)
    decisions = _Decisions(
        conn, principal, break_glass, f"person/{person_id}/timeline", clinical=True
    )
    records = store.linked_records(conn, [person_id])
    for institution in sorted({r.institution_code for r in records}):
        decisions.verdict(person_id, institution)
    allowed = decisions.allowed()
    if not allowed:
        raise Refused(person_id, _why(decisions))
    consents = decisions.consents_of(person_id)
    now = datetime.now(UTC)
    shown: list[Shown] = []
    for row in store.timeline_rows(conn, person_id, MAX_ENTRIES):
        entry = entry_of(row)
        verdict = decisions.verdict(person_id, entry.institution_code)
        request = AccessRequest(entry.institution_code, now, entry.classes)
        if covered(principal, consents, verdict, request):
            shown.append(Shown(entry, access_of(verdict)))
    entries = sorted(shown, key=lambda s: newest_first(s.entry))
    [resident] = _residents(conn, [person_id], decisions)
    return Timeline(
        resident,
        entries,
        audit_detail(allowed, [s.entry.resource for s in entries]),
        any(s.access == "break-glass" for s in entries),
    )


class Refused(PermissionDenied):
    """A refused access: the caller is told :data:`DENIED_MESSAGE` only; the audit entry names
    the person and why (the resident's access history shows attempts too)."""

    def __init__(self, person_id: int, why: str) -> None:
        super().__init__(DENIED_MESSAGE)
        self.audit = {"persons": [person_id], "refused": why}


def _why(decisions: _Decisions) -> str:
    refusals = [v.why for v in decisions.verdicts.values() if not v.allowed]
    return refusals[0] if refusals else "no records"


@dataclass(frozen=True)
class Opened:
    entry: Entry
    data: bytes  # the document as ITI-68 serves it (a FHIR document: its stored form as JSON)
    content_type: str
    access: Access
    audit: dict[str, Any]


def open_document(
    conn: Connection,
    principal: Principal,
    person_id: int,
    institution: str,
    record_id: str,
    break_glass: str | None,
) -> Opened:
    """One CDA document or FHIR document Bundle of the resident, as ITI-68 serves it, decided
    for its own classes (a consent granting other classes does not open it). Refused, missing,
    or not the resident's: the same PermissionDenied."""
    require_reader(principal)
    target = f"{institution}:{record_id}"
    if persons.person_of_record(conn, institution, record_id) != person_id:
        raise Refused(person_id, "not a record of this person")
    row = store.timeline_row(conn, institution, record_id)
    head = get_head(conn, institution, record_id)
    version = None if head is None else read_version(conn, head)
    if row is None or version is None:
        raise Refused(person_id, "no such document")
    bundle = version.get("resource")
    if row.cda and version.get("raw_xml") is not None:
        data, content_type = bytes(version["raw_xml"]), CDA_MEDIA_TYPE
    elif isinstance(bundle, dict) and is_fhir_document(bundle):
        data, content_type = fhir_document_bytes(bundle), FHIR_MEDIA_TYPE
    else:
        raise Refused(person_id, "no such document")
    entry = entry_of(row)
    verdict = decide_access(
        conn,
        principal,
        person_id,
        institution,
        classes=entry.classes,
        break_glass=break_glass,
        target=target,
    )
    if not verdict.allowed:
        raise Refused(person_id, verdict.why)
    return Opened(
        entry,
        data,
        content_type,
        access_of(verdict),
        audit_detail([(person_id, verdict)], [entry.resource]),
    )


def rendered(opened: Opened) -> str:
    """The opened document as the MHD retrieval renders it (ITI-68 as HTML): one renderer."""
    page = render_document(
        opened.content_type, opened.data, institution=opened.entry.institution_name
    )
    if page is None:  # never: the stored bytes passed validation
        raise Refused(0, "the stored document cannot be read")
    return page
