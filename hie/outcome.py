"""FHIR OperationOutcome bodies: the one shape every HTTP error of hie takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OutcomeIssue:
    """One issue: FHIR severity and issue-type code, a readable message, and where it is."""

    severity: str  # fatal | error | warning | information
    code: str  # FHIR IssueType: invalid, structure, required, value, security, not-found, ...
    diagnostics: str
    expression: str | None = None  # FHIRPath or element path of the offending element
    location: str | None = None  # "line 3, column 7" for XML and CSV input
    rule: str | None = None  # the hie rule that fired

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.rule:
            issue["details"] = {"coding": [{"system": "urn:hie:rule", "code": self.rule}]}
        if self.expression:
            issue["expression"] = [self.expression]
        if self.location:
            issue["location"] = [self.location]
        return issue


def operation_outcome(issues: list[OutcomeIssue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}
