"""The access decision (pure): who may read a resident's records held by an institution."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hie.auth import Principal
from hie.consent.model import AccessRequest, Consent, break_glass_reason, decide, terms_of
from hie.errors import InvalidInput
from tests.consent.conftest import consent

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CLINICIAN_B = Principal(1, "clinician", "H2")


def granted(**changes: object) -> Consent:
    fields: dict[str, object] = {
        "consent_id": "H1/Consent/c1",
        "status": "active",
        "actors": frozenset({"H2"}),
        "classes": None,
    }
    fields.update(changes)
    return Consent(**fields)  # type: ignore[arg-type]


def ask(**changes: object) -> AccessRequest:
    fields: dict[str, object] = {"source": "H1", "at": NOW, "classes": frozenset({"Condition"})}
    fields.update(changes)
    return AccessRequest(**fields)  # type: ignore[arg-type]


def test_a_clinician_reads_another_institution_only_under_a_covering_consent() -> None:
    assert decide(CLINICIAN_B, [], ask()).decision == "deny"
    verdict = decide(CLINICIAN_B, [granted()], ask())
    assert (verdict.decision, verdict.consent_id) == ("allow", "H1/Consent/c1")
    assert decide(CLINICIAN_B, [granted(status="inactive")], ask()).decision == "deny"
    assert decide(CLINICIAN_B, [granted(actors=frozenset({"H3"}))], ask()).decision == "deny"
    assert decide(CLINICIAN_B, [granted(actors=None)], ask()).decision == "allow"


def test_classes_and_period_limit_a_consent() -> None:
    only_labs = granted(classes=frozenset({"Observation"}))
    assert decide(CLINICIAN_B, [only_labs], ask()).decision == "deny"
    assert decide(CLINICIAN_B, [only_labs], ask(classes=frozenset({"Observation"}))).allowed
    # Finding the resident (no class asked) is permitted by any consent to the institution.
    assert decide(CLINICIAN_B, [only_labs], ask(classes=frozenset())).allowed
    expired = granted(end=datetime(2026, 1, 1, tzinfo=UTC))
    assert decide(CLINICIAN_B, [expired], ask()).decision == "deny"
    future = granted(start=datetime(2027, 1, 1, tzinfo=UTC))
    assert decide(CLINICIAN_B, [future], ask()).decision == "deny"


def test_break_glass_needs_a_reason_and_is_flagged() -> None:
    verdict = decide(CLINICIAN_B, [], ask(break_glass="unconscious in the emergency room"))
    assert (verdict.decision, verdict.reason) == (
        "break-glass",
        "unconscious in the emergency room",
    )
    assert break_glass_reason("   ") is None
    assert break_glass_reason(None) is None
    assert decide(CLINICIAN_B, [], ask(break_glass=break_glass_reason(" "))).decision == "deny"


def test_roles() -> None:
    assert decide(Principal(2, "clinician", "H1"), [], ask()).decision == "allow"  # its own
    assert decide(Principal(3, "submitter", "H1"), [], ask()).decision == "allow"
    # A submitter sees only its own institution, consent or not, break-glass or not.
    submitter_b = Principal(4, "submitter", "H2")
    assert decide(submitter_b, [granted()], ask(break_glass="x")).decision == "deny"
    assert decide(Principal(5, "regulator", None), [granted()], ask()).decision == "deny"
    assert decide(Principal(6, "admin", None), [], ask()).decision == "allow"


def test_terms_of_a_posted_consent() -> None:
    terms = terms_of(consent("c1", "zhang", actors=("H2", "H3"), classes=("Condition",)))
    assert terms.status == "active"
    assert terms.patient_reference == "Patient/zhang"
    assert terms.actors == {"H2", "H3"} and terms.classes == {"Condition"}
    assert terms_of(consent("c2", "zhang", actors=())).actors is None
    bad = consent("c3", "zhang", period={"start": "yesterday"})
    bad["patient"] = {"reference": "Group/1"}
    bad["provision"]["type"] = "deny"
    with pytest.raises(InvalidInput) as refused:
        terms_of(bad)
    fields = {p.field for p in refused.value.problems}
    assert fields == {"Consent.patient", "Consent.provision.type", "Consent.provision.period.start"}
