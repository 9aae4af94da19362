"""The registry of validation rules: one id per rule, with what it checks and how to fix it.

Rule families register their checks with the :func:`rule` decorator, so that the validators run
them and each rule's summary and fix can be shown next to the issues it raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Rule:
    id: str  # "<family>.<area>.<name>", e.g. "cda.header.realm"
    summary: str  # what the rule checks, one sentence
    fix: str  # how to fix a document that breaks it
    check: Callable[..., Any] | None = None


RULES: dict[str, Rule] = {}


def register(
    rule_id: str, *, summary: str, fix: str, check: Callable[..., Any] | None = None
) -> Rule:
    """Record a rule that is not one function (a parser or schema stage reports under it)."""
    if rule_id in RULES and RULES[rule_id].check is not check:
        raise ValueError(f"rule {rule_id} is registered twice")
    registered = Rule(rule_id, summary, fix, check)
    RULES[rule_id] = registered
    return registered


def rule(rule_id: str, *, summary: str, fix: str) -> Callable[[F], F]:
    """Decorator: register ``function`` as the check of ``rule_id``."""

    def decorate(function: F) -> F:
        register(rule_id, summary=summary, fix=fix, check=function)
        return function

    return decorate


def rules_of(prefix: str) -> list[Rule]:
    """The rules with a check whose ids start with ``prefix`` (e.g. ``cda.header.``), in the
    order they were registered."""
    return [r for r in RULES.values() if r.id.startswith(prefix) and r.check is not None]


def explain(rule_id: str) -> Rule | None:
    return RULES.get(rule_id)
