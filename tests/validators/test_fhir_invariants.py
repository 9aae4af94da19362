"""The invariants answered in Python for speed (bdl-*, qty-3, dom-2/4/5) give the verdict of
the specification's own FHIRPath expression, on well-shaped and odd values alike."""

from __future__ import annotations

from typing import Any

import pytest

from hie.validators.fhir_rules import invariants
from hie.validators.fhir_rules.tree import walk
from hie.validators.report import Report


def _entry(full_url: str | None = None, **parts: Any) -> dict[str, Any]:
    entry: dict[str, Any] = dict(parts)
    if full_url is not None:
        entry["fullUrl"] = full_url
    return entry


PATIENT = {"resourceType": "Patient", "id": "p"}
VERSIONED = {"resourceType": "Patient", "id": "p", "meta": {"versionId": "2"}}
REQUEST = {"method": "POST", "url": "Patient"}
RESPONSE = {"status": "201 Created"}

BUNDLE_TYPES = ("transaction", "batch", "collection", "history", "searchset",
                "transaction-response", "document")  # fmt: skip
BUNDLES: list[dict[str, Any]] = [
    {"resourceType": "Bundle", "type": bundle_type, "entry": entries}
    for bundle_type in BUNDLE_TYPES
    for entries in (
        [],
        [_entry("urn:uuid:1", resource=PATIENT, request=REQUEST)],
        [_entry("urn:uuid:1", resource=PATIENT), _entry("urn:uuid:1", resource=PATIENT)],
        [_entry("urn:uuid:1", resource=PATIENT), _entry("urn:uuid:1", resource=VERSIONED)],
        [_entry("http://x/Patient/p/_history/1", resource=PATIENT, response=RESPONSE)],
        [_entry(request=REQUEST), _entry(response=RESPONSE), _entry("urn:uuid:2")],
        [_entry("urn:uuid:1", resource=PATIENT, request={})],
        [_entry("urn:uuid:1", resource=PATIENT, request=None)],
        [_entry("urn:uuid:1", _fullUrl={"extension": []}, resource=PATIENT)],
        [_entry("urn:uuid:1", resource={"resourceType": "Patient", "meta": {"versionId": 3}})],
    )
] + [
    {"resourceType": "Bundle", "entry": [_entry("urn:uuid:1", resource=PATIENT)]},
    {"resourceType": "Bundle", "type": "transaction", "entry": {"fullUrl": "urn:uuid:1"}},
]

QUANTITIES: list[dict[str, Any]] = [
    {"value": 1, "code": "mg"},
    {"value": 1, "code": "mg", "system": "http://unitsofmeasure.org"},
    {"value": 1, "code": "mg", "system": None},
    {"value": 1, "code": "mg", "_system": {"extension": []}},
    {"value": 1, "unit": "mg"},
]

CONTAINED: list[list[Any]] = [
    [{"resourceType": "Patient", "id": "a"}],
    [{"resourceType": "Patient", "id": "a", "meta": {"versionId": "1"}}],
    [{"resourceType": "Patient", "id": "a", "meta": {"lastUpdated": "2020-01-01T00:00:00Z"}}],
    [{"resourceType": "Patient", "id": "a", "meta": {"security": [{"code": "R"}]}}],
    [{"resourceType": "Patient", "id": "a", "contained": [{"resourceType": "Patient"}]}],
    [{"resourceType": "Patient", "id": "a", "meta": "odd"}],
]


def _resources() -> list[dict[str, Any]]:
    observations = [
        {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
         "valueQuantity": quantity}
        for quantity in QUANTITIES
    ]  # fmt: skip
    patients = [
        {"resourceType": "Patient", "contained": contained, "link": []} for contained in CONTAINED
    ]
    return [*BUNDLES, *observations, *patients]


SHORTCUT_KEYS = frozenset(invariants._SHORTCUTS)


def _verdicts(resource: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(invariant, path, violated) of each place a shortcut applies to."""
    tree = walk(resource, str(resource["resourceType"]), Report())
    assert tree is not None
    found = []
    for invariant, target in invariants._targets(tree):
        if invariant.key in SHORTCUT_KEYS:
            violated = invariants._holds(invariant, target) is False
            found.append((invariant.key, target.path, violated))
    return found


@pytest.mark.parametrize("resource", _resources())
def test_shortcuts_agree_with_the_fhirpath_expression(
    resource: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _verdicts(resource)
    monkeypatch.setattr(invariants, "_SHORTCUTS", {})
    assert fast == _verdicts(resource)


def test_shortcuts_answer_the_usual_shapes_themselves() -> None:
    """The shortcuts are taken (a shortcut that always deferred would agree, uselessly)."""
    bundle = BUNDLES[2]  # a transaction with a request on its entry
    tree = walk(bundle, "Bundle", Report())
    assert tree is not None
    answered = {
        invariant.key
        for invariant, target in invariants._targets(tree)
        if (shortcut := invariants._SHORTCUTS.get(invariant.key)) and shortcut(target) is not None
    }
    assert {"bdl-3", "bdl-4", "bdl-5", "bdl-7", "bdl-8"} <= answered
