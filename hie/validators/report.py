"""What validation found: issues with severity, rule, message and location."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hie.outcome import OutcomeIssue, operation_outcome


class Severity(StrEnum):
    """FHIR issue severities: fatal and error reject; warning and information accept and report."""

    FATAL = "fatal"
    ERROR = "error"
    WARNING = "warning"
    INFORMATION = "information"

    @property
    def rejects(self) -> bool:
        return self in (Severity.FATAL, Severity.ERROR)


@dataclass(frozen=True)
class Issue:
    severity: Severity
    rule: str  # a registered rule id, e.g. "cda.header.realm"
    message: str  # what is wrong and how to fix it, for a hospital developer
    code: str = "invalid"  # FHIR IssueType: structure, required, value, code-invalid, ...
    line: int | None = None  # XML input: 1-based line and column
    column: int | None = None
    expression: str | None = None  # element path: FHIRPath for FHIR, XPath-like for CDA

    @property
    def location(self) -> str | None:
        if self.line is None:
            return None
        return f"line {self.line}, column {self.column}" if self.column else f"line {self.line}"

    def to_outcome_issue(self) -> OutcomeIssue:
        return OutcomeIssue(
            severity=self.severity.value,
            code=self.code,
            diagnostics=self.message,
            expression=self.expression,
            location=self.location,
            rule=self.rule,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "severity": self.severity.value,
            "rule": self.rule,
            "message": self.message,
            "code": self.code,
        }
        for key in ("line", "column", "expression"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


@dataclass
class Report:
    """Every issue found in one document or resource, in the order found."""

    issues: list[Issue] = field(default_factory=list)

    def add(
        self,
        severity: Severity,
        rule: str,
        message: str,
        *,
        code: str = "invalid",
        line: int | None = None,
        column: int | None = None,
        expression: str | None = None,
    ) -> Issue:
        issue = Issue(severity, rule, message, code, line, column, expression)
        self.issues.append(issue)
        return issue

    def extend(self, other: Report) -> None:
        self.issues.extend(other.issues)

    @property
    def rejected(self) -> bool:
        return any(i.severity.rejects for i in self.issues)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity.rejects]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if not i.severity.rejects]

    def to_operation_outcome(self) -> dict[str, Any]:
        if not self.issues:
            return operation_outcome(
                [OutcomeIssue("information", "informational", "no issues found")]
            )
        return operation_outcome([i.to_outcome_issue() for i in self.issues])
