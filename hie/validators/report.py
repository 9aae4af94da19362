"""What validation found: issues with severity, rule, message and location."""

from __future__ import annotations

from collections import Counter
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


# At most this many issues of one rule are listed in an answer (and so in its stored receipt).
ISSUES_PER_RULE = 100


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

    def to_operation_outcome(self, per_rule: int | None = ISSUES_PER_RULE) -> dict[str, Any]:
        """The issues as an OperationOutcome: the first ``per_rule`` of each rule (None: all),
        then one information issue counting those left out, so a body with 200,000 unknown
        keys is not answered with 200,000 issues."""
        if not self.issues:
            return operation_outcome(
                [OutcomeIssue("information", "informational", "no issues found")]
            )
        if per_rule is None:
            return operation_outcome([i.to_outcome_issue() for i in self.issues])
        seen: Counter[str] = Counter()
        listed: list[OutcomeIssue] = []
        for issue in self.issues:
            seen[issue.rule] += 1
            if seen[issue.rule] <= per_rule:
                listed.append(issue.to_outcome_issue())
        left_out = {rule: n - per_rule for rule, n in seen.items() if n > per_rule}
        if left_out:
            counts = ", ".join(f"{rule}: {n}" for rule, n in left_out.items())
            listed.append(
                OutcomeIssue(
                    "information",
                    "informational",
                    f"{sum(left_out.values())} more issues not listed (the first {per_rule} "
                    f"of each rule are); left out by rule: {counts}",
                )
            )
        return operation_outcome(listed)
