"""Residents' consents and the access decision (pure: no I/O).

A FHIR ``Consent`` recorded by an institution holding the resident's records permits or denies
other institutions reading them: its base ``provision`` (``type`` permit or deny,
``provision.actor`` the institutions, none: every institution; ``provision.class`` the document
classes or resource types, none: every class; ``provision.period`` when) and one level of nested
``provision.provision`` exceptions to it. :func:`decide` is the one place that says whether a
caller may read a resident's records held by an institution: every entry point (FHIR reads and
searches, PIXm, PDQm, MHD document retrieval) asks it with what it loaded, and acts on the
:class:`Verdict`. How rules of one or several consents combine is in docs/consent.md.
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


ProvisionType = Literal["permit", "deny"]
PROVISION_TYPES: tuple[ProvisionType, ...] = ("permit", "deny")
# Nested exceptions read: one level under the base provision (deeper ones are refused).
MAX_NESTING = 1


@dataclass(frozen=True)
class Rule:
    """One provision: the base one or a nested exception (its conditions already narrowed to
    its parent's, since an exception applies within the rule it is an exception to)."""

    type: ProvisionType
    actors: frozenset[str] | None = None  # None: every institution
    classes: frozenset[str] | None = None  # None: every class
    start: datetime | None = None
    end: datetime | None = None

    @property
    def specificity(self) -> int:
        """How many of actor and class the rule names: the more, the more specific."""
        return (self.actors is not None) + (self.classes is not None)

    def matches(self, institution: str, classes: frozenset[str], at: datetime) -> bool:
        if self.start is not None and at < self.start:
            return False
        if self.end is not None and at > self.end:
            return False
        if self.actors is not None and institution not in self.actors:
            return False
        if self.classes is None:
            return True
        if not classes:
            # Finding the resident (no class asked): a permit of some classes opens it, a deny
            # of some classes does not close it (the other classes may still be permitted).
            return self.type == "permit"
        return bool(classes & self.classes)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "actors": None if self.actors is None else sorted(self.actors),
            "classes": None if self.classes is None else sorted(self.classes),
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rule:
        actors, classes = data.get("actors"), data.get("classes")
        start, end = data.get("start"), data.get("end")
        return cls(
            type="deny" if data.get("type") == "deny" else "permit",
            actors=None if actors is None else frozenset(actors),
            classes=None if classes is None else frozenset(classes),
            start=None if start is None else datetime.fromisoformat(start),
            end=None if end is None else datetime.fromisoformat(end),
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
    type: ProvisionType = "permit"
    exceptions: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Consent:
    """One recorded consent, as the decision sees it."""

    consent_id: str  # "<institution>/Consent/<id>": where it was recorded
    status: str
    actors: frozenset[str] | None
    classes: frozenset[str] | None
    start: datetime | None = None
    end: datetime | None = None
    type: ProvisionType = "permit"  # the base provision's
    exceptions: tuple[Rule, ...] = ()  # nested provisions, narrowed to the base's conditions

    @property
    def base(self) -> Rule:
        return Rule(self.type, self.actors, self.classes, self.start, self.end)

    def ruling(self, institution: str, classes: frozenset[str], at: datetime) -> Rule | None:
        """The rule of this consent that decides the access, or None when it says nothing of
        it (inactive, or no rule matches). A matching exception overrides the base (FHIR:
        nested provisions are exceptions to the base rule); among exceptions the most
        specific, a deny on a tie."""
        if self.status != "active":
            return None
        matching = [r for r in self.exceptions if r.matches(institution, classes, at)]
        if matching:
            return max(matching, key=_precedence)
        base = self.base
        return base if base.matches(institution, classes, at) else None


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
    # The consent whose deny refused the access, or which a break-glass access overrode.
    denied_by: str | None = None

    @property
    def allowed(self) -> bool:
        return self.decision != "deny"


def decide(principal: Principal, consents: Iterable[Consent], request: AccessRequest) -> Verdict:
    """Whether ``principal`` may read the resident's records held by ``request.source``.

    An admin reads everything; a submitter its own institution only; a regulator figures, not
    residents' records; a clinician its own institution's, another's only under an active
    consent covering its institution (and the classes asked for), or by break-glass with a
    reason (allowed, to be reviewed, noting a deny it overrode).

    Across the resident's active consents the most specific ruling rule wins (naming the
    institution and the class is most specific); on a tie a deny wins, in whichever consent
    it is: a resident's opt-out is never outweighed by an equally broad permit elsewhere."""
    if principal.role == "admin":
        return Verdict("allow", "admin")
    if principal.role == "regulator":
        return Verdict("deny", "a regulator reads figures, not residents' records")
    own = principal.institution_code
    if own is not None and own == request.source:
        return Verdict("allow", "own institution")
    if principal.role != "clinician" or own is None:
        return Verdict("deny", f"a {principal.role} token reads its own institution only")
    ruling: tuple[Rule, str] | None = None
    for consent in sorted(consents, key=lambda c: c.consent_id):
        rule = consent.ruling(own, request.classes, request.at)
        if rule is not None and (ruling is None or _precedence(rule) > _precedence(ruling[0])):
            ruling = (rule, consent.consent_id)
    if ruling is not None and ruling[0].type == "permit":
        return Verdict("allow", "consent", consent_id=ruling[1])
    denied_by = None if ruling is None else ruling[1]
    reason = (request.break_glass or "").strip()
    if reason:
        return Verdict(
            "break-glass", "break-glass", reason=reason[:MAX_REASON], denied_by=denied_by
        )
    if denied_by is not None:
        return Verdict("deny", f"the resident's consent {denied_by} denies it", denied_by=denied_by)
    return Verdict("deny", "no consent covers this access")


def _precedence(rule: Rule) -> tuple[int, bool]:
    return (rule.specificity, rule.type == "deny")


def covered(
    principal: Principal, consents: Iterable[Consent], verdict: Verdict, request: AccessRequest
) -> bool:
    """Whether an access allowed as ``verdict`` (decided once for the resident's records at
    ``request.source``) shows a record of ``request.classes``: under break-glass every record;
    otherwise those :func:`decide` allows for its classes (a consent may grant some only)."""
    if not verdict.allowed:
        return False
    if verdict.decision == "break-glass":
        return True
    return decide(principal, consents, request).decision == "allow"


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
    # The root type is optional (absent: permit, as this platform always read it); a nested
    # rule must say whether it permits or denies (FHIR R4: "required in all nested rules").
    base = _rule_of(provision, "Consent.provision", problems, required=False)
    exceptions: list[Rule] = []
    for i, nested in enumerate(provision.get("provision") or []):
        where = f"Consent.provision.provision[{i}]"
        if not isinstance(nested, dict):
            problems.append(Problem("must be a provision", field=where))
            continue
        if nested.get("provision"):
            problems.append(
                Problem(
                    f"at most {MAX_NESTING} level of nested provisions is supported: state"
                    " deeper exceptions as exceptions of the base provision, or as another"
                    " Consent",
                    field=f"{where}.provision",
                )
            )
        rule = _rule_of(nested, where, problems, required=True)
        if rule is not None and base is not None:
            exceptions.append(_within(base, rule, where, problems))
    if problems or base is None:
        raise InvalidInput("Consent", problems)
    return ConsentTerms(
        status=str(status),
        patient_reference=reference,
        patient_identifier=patient_identifier,
        actors=base.actors,
        classes=base.classes,
        start=base.start,
        end=base.end,
        type=base.type,
        exceptions=tuple(exceptions),
    )


def _rule_of(
    provision: dict[str, Any], where: str, problems: list[Problem], *, required: bool
) -> Rule | None:
    """One provision's type, actors, classes and period; None when it has a problem."""
    found = len(problems)
    kind = provision.get("type", None if required else "permit")
    if kind not in PROVISION_TYPES:
        problems.append(Problem("must be permit or deny", field=f"{where}.type"))
    actors: set[str] = set()
    for i, actor in enumerate(provision.get("actor") or []):
        code = _institution_of((actor or {}).get("reference") or {})
        if code is None:
            problems.append(
                Problem(
                    f"name the institution by identifier (system {INSTITUTION_SYSTEM})",
                    field=f"{where}.actor[{i}].reference",
                )
            )
        else:
            actors.add(code)
    classes = {c["code"] for c in provision.get("class") or [] if c.get("code")}
    period = provision.get("period") or {}
    start = _moment(period.get("start"), f"{where}.period.start", problems)
    end = _moment(period.get("end"), f"{where}.period.end", problems)
    if len(problems) > found:
        return None
    return Rule(
        "deny" if kind == "deny" else "permit",
        frozenset(actors) or None,
        frozenset(classes) or None,
        start,
        end,
    )


def _within(base: Rule, rule: Rule, where: str, problems: list[Problem]) -> Rule:
    """A nested rule narrowed to its parent's conditions: an exception applies only where the
    rule it is an exception to applies. One that could never apply is refused."""
    actors = _narrowed(base.actors, rule.actors)
    classes = _narrowed(base.classes, rule.classes)
    if actors == frozenset():
        problems.append(
            Problem("names no institution its base provision names", field=f"{where}.actor")
        )
    if classes == frozenset():
        problems.append(Problem("names no class its base provision names", field=f"{where}.class"))
    starts = [m for m in (base.start, rule.start) if m is not None]
    ends = [m for m in (base.end, rule.end) if m is not None]
    start, end = max(starts, default=None), min(ends, default=None)
    if start is not None and end is not None and start > end:
        problems.append(
            Problem("lies outside its base provision's period", field=f"{where}.period")
        )
    return Rule(rule.type, actors, classes, start, end)


def _narrowed(parent: frozenset[str] | None, own: frozenset[str] | None) -> frozenset[str] | None:
    if parent is None:
        return own
    return parent if own is None else parent & own


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
