"""Residents' consents and the access decision (pure: no I/O).

A FHIR ``Consent`` recorded by an institution holding the resident's records permits other
institutions to read them: ``provision.actor`` names the institutions granted (none: every
institution), ``provision.class`` the document classes or resource types (none: every class),
``provision.period`` when. :func:`decide` is the one place that says whether a caller may read a
resident's records held by an institution: every entry point (FHIR reads and searches, PIXm,
PDQm, MHD document retrieval) asks it with what it loaded, and acts on the :class:`Verdict`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from hie.auth import Principal
from hie.errors import InvalidInput, Problem

# How an institution is named in a reference that crosses institutions (ids are per institution).
INSTITUTION_SYSTEM = "urn:oid:2.16.156.10011.1.5"
STATUSES = ("draft", "proposed", "active", "rejected", "inactive", "entered-in-error")
BREAK_GLASS_HEADER = "X-Break-Glass"
MAX_REASON = 500
# What every refused access is answered (403), the same words for a record that does not exist:
# a refusal tells nothing about the resident.
DENIED_MESSAGE = (
    "no record of this resident may be shown to you: it needs the resident's consent for your"
    " institution, or an emergency access stated in the X-Break-Glass header"
)


@dataclass(frozen=True)
class ConsentTerms:
    """What a posted Consent says, read from the resource (before its patient is resolved)."""

    status: str
    patient_reference: str | None  # "Patient/<id>" of the recording institution
    patient_identifier: tuple[str, str] | None  # (system, value) when given by identifier
    actors: frozenset[str] | None  # institution codes; None: every institution
    classes: frozenset[str] | None  # class codes; None: every class
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class Consent:
    """One recorded consent, as the decision sees it."""

    consent_id: str  # "<institution>/Consent/<id>": where it was recorded
    status: str
    actors: frozenset[str] | None
    classes: frozenset[str] | None
    start: datetime | None = None
    end: datetime | None = None

    def covers(self, institution: str, classes: frozenset[str], at: datetime) -> bool:
        if self.status != "active":
            return False
        if self.start is not None and at < self.start:
            return False
        if self.end is not None and at > self.end:
            return False
        if self.actors is not None and institution not in self.actors:
            return False
        return not classes or self.classes is None or bool(classes & self.classes)


@dataclass(frozen=True)
class AccessRequest:
    """A caller's wish to read a resident's records held by ``source``.

    ``classes``: the document classes or resource types asked for (empty: finding the resident,
    e.g. PIXm or PDQm, which any consent to the caller's institution permits). ``clinical``:
    clinical content (False: demographics and identifiers only)."""

    source: str
    at: datetime
    classes: frozenset[str] = frozenset()
    clinical: bool = True
    break_glass: str | None = None  # the stated reason, from the X-Break-Glass header


Decision = Literal["allow", "deny", "break-glass"]


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    why: str  # "own institution", "admin", "consent", "break-glass", or why not
    consent_id: str | None = None
    reason: str | None = None  # the break-glass reason
    break_glass_id: int | None = None  # its entry in the review list, once flagged

    @property
    def allowed(self) -> bool:
        return self.decision != "deny"


def decide(principal: Principal, consents: Iterable[Consent], request: AccessRequest) -> Verdict:
    """Whether ``principal`` may read the resident's records held by ``request.source``.

    An admin reads everything; a submitter its own institution only; a regulator figures, not
    residents' records; a clinician its own institution's, another's only under an active
    consent covering its institution (and the classes asked for), or by break-glass with a
    reason (allowed, to be reviewed)."""
    if principal.role == "admin":
        return Verdict("allow", "admin")
    if principal.role == "regulator":
        return Verdict("deny", "a regulator reads figures, not residents' records")
    own = principal.institution_code
    if own is not None and own == request.source:
        return Verdict("allow", "own institution")
    if principal.role != "clinician" or own is None:
        return Verdict("deny", f"a {principal.role} token reads its own institution only")
    for consent in sorted(consents, key=lambda c: c.consent_id):
        if consent.covers(own, request.classes, request.at):
            return Verdict("allow", "consent", consent_id=consent.consent_id)
    reason = (request.break_glass or "").strip()
    if reason:
        return Verdict("break-glass", "break-glass", reason=reason[:MAX_REASON])
    return Verdict("deny", "no consent covers this access")


def break_glass_reason(header: str | None) -> str | None:
    """The reason an ``X-Break-Glass`` header states; None when absent or blank (a reason is
    required: a blank one is no break-glass)."""
    if header is None:
        return None
    reason = " ".join(header.split())
    return reason[:MAX_REASON] or None


def terms_of(resource: dict[str, Any]) -> ConsentTerms:
    """The terms of a posted Consent; raises InvalidInput naming each problem's element."""
    problems: list[Problem] = []
    status = resource.get("status")
    if status not in STATUSES:
        problems.append(
            Problem(f"status must be one of {', '.join(STATUSES)}", field="Consent.status")
        )
    patient = resource.get("patient") or {}
    reference = patient.get("reference") if isinstance(patient, dict) else None
    identifier = patient.get("identifier") if isinstance(patient, dict) else None
    patient_identifier: tuple[str, str] | None = None
    if isinstance(identifier, dict) and identifier.get("system") and identifier.get("value"):
        patient_identifier = (str(identifier["system"]), str(identifier["value"]))
    if isinstance(reference, str) and not reference.startswith("Patient/"):
        problems.append(
            Problem("must refer to a Patient of the recording institution", field="Consent.patient")
        )
        reference = None
    if reference is None and patient_identifier is None:
        problems.append(
            Problem(
                "the resident is required: a reference or an identifier", field="Consent.patient"
            )
        )
    provision = resource.get("provision") or {}
    if provision.get("type", "permit") != "permit":
        problems.append(
            Problem("only permit provisions are recorded here", field="Consent.provision.type")
        )
    actors: set[str] = set()
    for i, actor in enumerate(provision.get("actor") or []):
        code = _institution_of(actor.get("reference") or {})
        if code is None:
            problems.append(
                Problem(
                    f"name the institution by identifier (system {INSTITUTION_SYSTEM})",
                    field=f"Consent.provision.actor[{i}].reference",
                )
            )
        else:
            actors.add(code)
    classes = {c["code"] for c in provision.get("class") or [] if c.get("code")}
    period = provision.get("period") or {}
    start = _moment(period.get("start"), "Consent.provision.period.start", problems)
    end = _moment(period.get("end"), "Consent.provision.period.end", problems)
    if problems:
        raise InvalidInput("Consent", problems)
    return ConsentTerms(
        status=str(status),
        patient_reference=reference,
        patient_identifier=patient_identifier,
        actors=frozenset(actors) or None,
        classes=frozenset(classes) or None,
        start=start,
        end=end,
    )


def _institution_of(reference: dict[str, Any]) -> str | None:
    identifier = reference.get("identifier") or {}
    if identifier.get("system") in (None, INSTITUTION_SYSTEM) and identifier.get("value"):
        return str(identifier["value"]).strip() or None
    return None


def _moment(value: Any, where: str, problems: list[Problem]) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        problems.append(Problem("not a dateTime", field=where))
        return None
    if moment.tzinfo is None:
        # A date (or a time without an offset) is read as UTC: a consent's period is coarse.
        moment = moment.replace(tzinfo=UTC)
    return moment
