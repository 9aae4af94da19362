"""Validation of CDA documents and FHIR resources: every rule lives here.

``validate(payload) -> Report``; a report lists issues with FHIR severities, the rule that fired,
and where (line and column in XML, element path in JSON).
"""

from hie.validators.report import Issue, Report, Severity
from hie.validators.rules import RULES, Rule, explain, register, rule, rules_of

__all__ = [
    "RULES",
    "Issue",
    "Report",
    "Rule",
    "Severity",
    "explain",
    "register",
    "rule",
    "rules_of",
]
