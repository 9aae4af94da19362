"""The access decision (pure): who may read a resident's records held by an institution."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hie.auth import Principal
from hie.consent.model import (
    AccessRequest,
    Consent,
    Rule,
    break_glass_reason,
    decide,
    terms_of,
)
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
    bad["provision"]["type"] = "forbid"
    with pytest.raises(InvalidInput) as refused:
        terms_of(bad)
    fields = {p.field for p in refused.value.problems}
    assert fields == {"Consent.patient", "Consent.provision.type", "Consent.provision.period.start"}


H1_ALL = "H1/Consent/all"
D1_OPT_OUT = "D1/Consent/opt-out"
PERMIT_ALL = Consent(H1_ALL, "active", None, None)
EXCEPT_MENTAL = Consent(
    H1_ALL, "active", None, None, exceptions=(Rule("deny", classes=frozenset({"mental"})),)
)
DENY_H2 = Consent(D1_OPT_OUT, "active", frozenset({"H2"}), None, type="deny")
DENY_H2_MENTAL = Consent(
    D1_OPT_OUT, "active", frozenset({"H2"}), frozenset({"mental"}), type="deny"
)
MENTAL = frozenset({"mental", "DocumentReference"})
LABS = frozenset({"Observation"})
EVERY = frozenset[str]()


@pytest.mark.parametrize(
    ("consents", "classes", "expected"),
    [
        # Permit all, except deny one class: the class is refused, the rest allowed, and the
        # resident is still found (no class asked).
        ([EXCEPT_MENTAL], MENTAL, ("deny", H1_ALL)),
        ([EXCEPT_MENTAL], LABS, ("allow", H1_ALL)),
        ([EXCEPT_MENTAL], EVERY, ("allow", H1_ALL)),
        # A deny naming the institution beats a permit of everyone in another consent.
        ([PERMIT_ALL, DENY_H2], LABS, ("deny", D1_OPT_OUT)),
        ([PERMIT_ALL, DENY_H2], EVERY, ("deny", D1_OPT_OUT)),
        # Denied one class to H2 only: the other classes stay open.
        ([PERMIT_ALL, DENY_H2_MENTAL], MENTAL, ("deny", D1_OPT_OUT)),
        ([PERMIT_ALL, DENY_H2_MENTAL], LABS, ("allow", H1_ALL)),
        # Revoked (inactive), the deny no longer counts.
        (
            [PERMIT_ALL, Consent(D1_OPT_OUT, "inactive", frozenset({"H2"}), None, type="deny")],
            LABS,
            ("allow", H1_ALL),
        ),
        # A deny alone permits nothing, and refuses as no consent does.
        ([DENY_H2], LABS, ("deny", D1_OPT_OUT)),
        # Equally specific permit and deny in two consents: the deny wins, whichever is first.
        (
            [Consent("A/Consent/p", "active", frozenset({"H2"}), None), DENY_H2],
            LABS,
            ("deny", D1_OPT_OUT),
        ),
        (
            [Consent("Z/Consent/p", "active", frozenset({"H2"}), None), DENY_H2],
            LABS,
            ("deny", D1_OPT_OUT),
        ),
        # More specific wins: a permit of labs to H2 opens labs despite a deny of all to H2...
        (
            [Consent("A/Consent/p", "active", frozenset({"H2"}), LABS), DENY_H2],
            LABS,
            ("allow", "A/Consent/p"),
        ),
        # ...but not the other classes.
        (
            [Consent("A/Consent/p", "active", frozenset({"H2"}), LABS), DENY_H2],
            MENTAL,
            ("deny", D1_OPT_OUT),
        ),
        # Within one consent an exception overrides its base even when no more specific:
        # "deny H2, except during this admission" (a period only).
        (
            [
                Consent(
                    D1_OPT_OUT,
                    "active",
                    frozenset({"H2"}),
                    None,
                    type="deny",
                    exceptions=(Rule("permit", frozenset({"H2"}), start=NOW.replace(day=1)),),
                )
            ],
            LABS,
            ("allow", D1_OPT_OUT),
        ),
        # An exception outside its period does not apply: the base decides.
        (
            [
                Consent(
                    H1_ALL,
                    "active",
                    None,
                    None,
                    exceptions=(Rule("deny", frozenset({"H2"}), end=NOW.replace(day=1)),),
                )
            ],
            LABS,
            ("allow", H1_ALL),
        ),
    ],
)
def test_deny_provisions_and_their_precedence(
    consents: list[Consent], classes: frozenset[str], expected: tuple[str, str]
) -> None:
    verdict = decide(CLINICIAN_B, consents, ask(classes=classes))
    decided_by = verdict.consent_id if verdict.allowed else verdict.denied_by
    assert (verdict.decision, decided_by) == expected


def test_break_glass_overrides_a_deny_and_says_so() -> None:
    verdict = decide(CLINICIAN_B, [PERMIT_ALL, DENY_H2], ask(break_glass="cardiac arrest"))
    assert (verdict.decision, verdict.denied_by) == ("break-glass", D1_OPT_OUT)
    # Without any consent there is no deny to note.
    assert decide(CLINICIAN_B, [], ask(break_glass="cardiac arrest")).denied_by is None
    # Another institution's clinician is not touched by H2's opt-out.
    clinician_d = Principal(7, "clinician", "D9")
    assert decide(clinician_d, [PERMIT_ALL, DENY_H2], ask()).decision == "allow"


def nested(*rules: dict[str, object], base: dict[str, object] | None = None) -> dict[str, object]:
    resource = consent("c1", "zhang", actors=())
    resource["provision"] = {**(base or {"type": "permit"}), "provision": list(rules)}
    return resource


def actor(code: str) -> dict[str, object]:
    return {"reference": {"identifier": {"system": "urn:oid:2.16.156.10011.1.5", "value": code}}}


def test_terms_of_nested_provisions() -> None:
    terms = terms_of(
        nested(
            {"type": "deny", "actor": [actor("H3")], "class": [{"code": "mental"}]},
            base={"type": "permit", "period": {"start": "2026-01-01"}},
        )
    )
    assert (terms.type, terms.actors, terms.classes) == ("permit", None, None)
    # The exception is narrowed to its base: it inherits the base's period.
    assert terms.exceptions == (
        Rule(
            "deny", frozenset({"H3"}), frozenset({"mental"}), start=datetime(2026, 1, 1, tzinfo=UTC)
        ),
    )
    assert terms_of(nested(base={"type": "deny", "actor": [actor("H3")]})).type == "deny"


@pytest.mark.parametrize(
    ("resource", "field"),
    [
        # Deeper than one level: refused, located, naming the limit.
        (
            nested({"type": "deny", "provision": [{"type": "permit"}]}),
            "Consent.provision.provision[0].provision",
        ),
        # A nested rule must say permit or deny.
        (nested({"actor": [actor("H3")]}), "Consent.provision.provision[0].type"),
        (nested({"type": "maybe"}), "Consent.provision.provision[0].type"),
        # An exception that could never apply within its base.
        (
            nested(
                {"type": "deny", "actor": [actor("H3")]},
                base={"type": "permit", "actor": [actor("H2")]},
            ),
            "Consent.provision.provision[0].actor",
        ),
        (
            nested({"type": "deny", "actor": [{"reference": {"reference": "Organization/x"}}]}),
            "Consent.provision.provision[0].actor[0].reference",
        ),
    ],
)
def test_nested_provisions_the_platform_cannot_apply_are_refused(
    resource: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        terms_of(resource)
    assert [p.field for p in refused.value.problems] == [field]
    if field.endswith("].provision"):
        assert "at most 1 level" in refused.value.problems[0].message
