"""Residents' records read across institutions under their consent (``hie.consent``).

A clinician names another institution in ``X-HIE-Institution`` to read its records of a
resident: a read, a search naming one patient, or ``Patient/{id}/$everything``. Each is allowed
only by :func:`hie.consent.model.decide` (a consent covering the clinician's institution and the
resource type, or break-glass with ``X-Break-Glass: <reason>``). Refused, the answer is the same
403 whether the record exists or not, so a refusal tells nothing about the resident. A clinician's
reads at its own institution are allowed as before; every clinician's read names in its audit
entry the persons (ids) and resources shown, and the consent or break-glass used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hie.auth import Principal
from hie.consent.model import DENIED_MESSAGE, AccessRequest, Consent, Verdict, covered
from hie.consent.service import audit_detail, consents_for, decide_access
from hie.errors import PermissionDenied
from hie.fhir.calls import Call
from hie.fhir.responses import Answer, entry_resource, error
from hie.storage import Database
from hie.storage.persons import persons_of_records

DENIED = DENIED_MESSAGE
PATIENT_PARAMETERS = ("patient", "subject", "subject:Patient", "patient:Patient")


def denied() -> Answer:
    return error(403, "forbidden", DENIED)


def foreign(principal: Principal, institution: str) -> bool:
    """A clinician reading another institution's records: consent decides."""
    return principal.role == "clinician" and principal.institution_code != institution


def refuse_unguarded(principal: Principal, institution: str) -> None:
    """Reads without a resident to decide on (history, vread, ``$meta``) stay within the
    clinician's own institution; a regulator reads figures, never residents' records."""
    if principal.role == "regulator":
        raise PermissionDenied("a regulator reads figures, not residents' records")
    if foreign(principal, institution):
        raise PermissionDenied(DENIED)


def patient_of(resource: dict[str, Any]) -> str | None:
    """The Patient a resource is about: itself, or its subject or patient reference."""
    if resource.get("resourceType") == "Patient" and resource.get("id"):
        return f"Patient/{resource['id']}"
    for element in ("subject", "patient"):
        value = resource.get(element)
        if isinstance(value, dict):
            reference = value.get("reference")
            if isinstance(reference, str) and reference.startswith("Patient/"):
                return reference
    return None


def read(
    database: Database,
    principal: Principal,
    call: Call,
    resource_type: str,
    break_glass: str | None,
    work: Callable[[], Answer],
) -> Answer:
    """A read: the person of the resource read decides, and a record that is missing is
    answered as one refused."""
    institution = call.scope.institution_code
    if principal.role == "regulator":
        return error(403, "forbidden", "a regulator reads figures, not residents' records")
    answer = work()
    resource = answer.body if answer.status == 200 else None
    patient = patient_of(resource) if resource is not None else None
    if not foreign(principal, institution):
        if principal.role == "clinician" and patient is not None:
            with database.connection() as conn:
                person = persons_of_records(conn, institution, [patient]).get(patient)
            if person is not None and resource is not None:
                call.audit.update({"persons": [person], "resources": [_named(resource)]})
        return answer
    if patient is None or resource is None:
        return denied()
    with database.connection() as conn:
        person = persons_of_records(conn, institution, [patient]).get(patient)
        if person is None:
            return denied()
        verdict = decide_access(
            conn,
            principal,
            person,
            institution,
            classes=frozenset({resource_type}),
            break_glass=break_glass,
            target=_named(resource),
        )
    if not verdict.allowed:
        return _refused(call, person, verdict)
    call.audit.update(audit_detail([(person, verdict)], [_named(resource)]))
    return answer


def search(
    database: Database,
    principal: Principal,
    call: Call,
    resource_type: str,
    pairs: list[tuple[str, str]],
    break_glass: str | None,
    work: Callable[[], Answer],
) -> Answer:
    """Another institution's search must name one patient (``patient``, ``subject``, or
    ``_id`` of a Patient search); the answer keeps only what the verdict covers."""
    institution = call.scope.institution_code
    at_home = _at_home(database, principal, call, institution, work)
    if at_home is not None:
        return at_home
    patient = _named_patient(resource_type, pairs)
    if patient is None:
        return error(
            400,
            "required",
            "a search of another institution's records names one patient"
            " (patient=Patient/<id>, or _id for Patient)",
        )
    if any(name.startswith(("_has", "_revinclude")) for name, _ in pairs):
        return error(400, "not-supported", "_has and _revinclude stay within your institution")
    decision = _decide(
        database,
        principal,
        institution,
        patient,
        classes=frozenset({resource_type}),
        break_glass=break_glass,
        target=resource_type,
    )
    if decision is None:
        return denied()
    if not decision.verdict.allowed:
        return _refused(call, decision.person, decision.verdict)
    return _shown(call, principal, institution, patient, decision, work())


def everything(
    database: Database,
    principal: Principal,
    call: Call,
    patient_id: str,
    break_glass: str | None,
    work: Callable[[], Answer],
) -> Answer:
    """``Patient/{id}/$everything``: any consent to the clinician's institution opens it; the
    entries outside the consent's classes are left out."""
    institution = call.scope.institution_code
    at_home = _at_home(database, principal, call, institution, work)
    if at_home is not None:
        return at_home
    patient = f"Patient/{patient_id}"
    # Finding any consent of this institution first (no classes); each type is then decided
    # by what the answer keeps.
    decision = _decide(
        database,
        principal,
        institution,
        patient,
        classes=frozenset(),
        break_glass=break_glass,
        target=f"{patient}/$everything",
    )
    if decision is None:
        return denied()
    if not decision.verdict.allowed:
        return _refused(call, decision.person, decision.verdict)
    answer = work()
    if answer.status != 200:
        return denied()
    return _shown(call, principal, institution, patient, decision, answer)


def _at_home(
    database: Database,
    principal: Principal,
    call: Call,
    institution: str,
    work: Callable[[], Answer],
) -> Answer | None:
    """The answer that needs no consent: a regulator's refusal, or a read at one's own
    institution (a clinician's noted in the audit entry); None where consent decides."""
    if principal.role == "regulator":
        return error(403, "forbidden", "a regulator reads figures, not residents' records")
    if foreign(principal, institution):
        return None
    answer = work()
    if principal.role == "clinician":
        _note_shown(database, call, institution, answer)
    return answer


@dataclass(frozen=True)
class _Decision:
    person: int
    consents: list[Consent]
    verdict: Verdict


def _decide(
    database: Database,
    principal: Principal,
    institution: str,
    patient: str,
    *,
    classes: frozenset[str],
    break_glass: str | None,
    target: str,
) -> _Decision | None:
    """The verdict on another institution's records of one patient, with the consents it
    weighed (they also say which types the answer may show); None if the patient is unknown."""
    with database.connection() as conn:
        person = persons_of_records(conn, institution, [patient]).get(patient)
        if person is None:
            return None
        consents = consents_for(conn, person)
        verdict = decide_access(
            conn,
            principal,
            person,
            institution,
            classes=classes,
            break_glass=break_glass,
            target=target,
            consents=consents,
        )
    return _Decision(person, consents, verdict)


def _shown(
    call: Call,
    principal: Principal,
    institution: str,
    patient: str,
    decision: _Decision,
    answer: Answer,
) -> Answer:
    """The answer cut to what the decision covers, its audit entry naming what was shown."""
    covers = _covers(principal, decision.consents, decision.verdict, institution)
    shown = _keep(answer, patient, covers)
    call.audit.update(audit_detail([(decision.person, decision.verdict)], shown))
    return answer


def _refused(call: Call, person: int, verdict: Verdict) -> Answer:
    """The refusal, and in its audit entry the person it was about: the resident's access
    history shows attempts too (the caller is told nothing)."""
    call.audit.update({"persons": [person], "refused": verdict.why})
    return denied()


def _named_patient(resource_type: str, pairs: list[tuple[str, str]]) -> str | None:
    values = [v for k, v in pairs if k in PATIENT_PARAMETERS]
    if resource_type == "Patient":
        values += [f"Patient/{v}" for k, v in pairs if k == "_id"]
    if len(values) != 1 or "," in values[0]:
        return None
    value = values[0].strip()
    reference = value if value.startswith("Patient/") else f"Patient/{value}"
    return reference if "/" not in reference.removeprefix("Patient/") else None


def _covers(
    principal: Principal, consents: list[Consent], verdict: Verdict, institution: str
) -> Callable[[str], bool]:
    """Which resource types the access may show: under a consent, those of its classes (the
    Patient itself always); under break-glass, every type."""
    now = datetime.now(UTC)

    def covers(resource_type: str) -> bool:
        if resource_type == "Patient":
            return True
        request = AccessRequest(institution, now, frozenset({resource_type}))
        return covered(principal, consents, verdict, request)

    return covers


def _keep(answer: Answer, patient: str, covers: Callable[[str], bool]) -> list[str]:
    """Drop the entries of a searchset the access does not cover: another patient's, or a type
    outside the consent's classes. Returns the resources shown."""
    body = answer.body
    if answer.status != 200 or body is None:
        return []
    kept: list[dict[str, Any]] = []
    shown: list[str] = []
    for entry in body.get("entry", []):
        resource = entry_resource(entry)
        about = patient_of(resource)
        if about is not None and about != patient:
            continue
        if resource.get("resourceType") != "OperationOutcome" and not covers(
            str(resource.get("resourceType"))
        ):
            continue
        kept.append(entry)
        shown.append(_named(resource))
    body["entry"] = kept
    return shown


def _note_shown(database: Database, call: Call, institution: str, answer: Answer) -> None:
    """A clinician's read at its own institution: the persons and resources it was shown."""
    body = answer.body
    if answer.status != 200 or body is None:
        return
    resources = [entry_resource(e) for e in body.get("entry", [])]
    patients = sorted({p for r in resources if (p := patient_of(r)) is not None})
    with database.connection() as conn:
        persons = persons_of_records(conn, institution, patients)
    shown = [_named(r) for r in resources][:200]
    call.audit.update({"persons": sorted(set(persons.values())), "resources": shown})


def _named(resource: dict[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"
