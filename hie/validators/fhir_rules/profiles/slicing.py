"""Slicing: the occurrences of a sliced element assigned to its slices by the discriminators
(value, pattern, type, exists and profile, also on the resource a reference resolves to), and
checked against them. A slicing whose discriminator cannot be evaluated is left unchecked,
never guessed; a discriminator a slice leaves open is not tested for that slice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hie.validators.conformance import split_canonical
from hie.validators.fhir_rules.profiles.codes import codes_of, expansion, in_codes
from hie.validators.fhir_rules.profiles.definitions import (
    ElementRule,
    compiled_profile,
    is_base_type,
)
from hie.validators.fhir_rules.profiles.patterns import contains, fixed_value
from hie.validators.fhir_rules.profiles.properties import (
    type_codes,
    types_of,
)
from hie.validators.fhir_rules.profiles.rules import SLICING
from hie.validators.fhir_rules.profiles.values import Value, descend

if TYPE_CHECKING:
    from hie.validators.fhir_rules.profiles.checker import Checker


class Slicing:
    """Checks the slicing of elements for one checker (its profile and resource)."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker

    def check(self, rule: ElementRule, values: list[Value], where: str) -> None:
        slicing = rule.data.get("slicing")
        slicing = slicing if isinstance(slicing, dict) else {}
        discriminators = slicing.get("discriminator")
        if not discriminators and rule.name in ("extension", "modifierExtension"):
            discriminators = [{"type": "value", "path": "url"}]
        if not isinstance(discriminators, list) or not discriminators:
            return
        matchers = [self.matcher(s, discriminators) for s in rule.slices]
        usable = [m for m in matchers if m is not None]
        if len(usable) != len(matchers):
            return  # a discriminator that cannot be evaluated: the slicing is not checked
        members: dict[int, list[Value]] = {i: [] for i in range(len(rule.slices))}
        for value in values:
            matched = [i for i, match in enumerate(usable) if match(value)]
            if len(matched) > 1:
                names = ", ".join(str(rule.slices[i].slice_name) for i in matched)
                self.checker.error(
                    SLICING.id, value.path, f"matches more than one slice of {rule.id}: {names}"
                )
            if matched:
                members[matched[0]].append(value)
            elif slicing.get("rules") == "closed":
                self.checker.error(
                    SLICING.id,
                    value.path,
                    f"matches none of the slices of {rule.id}, and the slicing is closed",
                )
        for index, slice_rule in enumerate(rule.slices):
            found = members[index]
            self.checker.cardinality(slice_rule, found, where, len(found))
            self.checker.element(slice_rule, found)

    def matcher(
        self, slice_rule: ElementRule, discriminators: list[Any]
    ) -> Callable[[Value], bool] | None:
        """Whether a value belongs to the slice; None when that cannot be evaluated. A
        discriminator the slice does not constrain (no pattern at its path) is not tested, as
        long as another one is."""
        tests: list[Callable[[Value], bool]] = []
        for discriminator in discriminators:
            if not isinstance(discriminator, dict):
                return None
            kind, path = discriminator.get("type"), discriminator.get("path")
            if not isinstance(path, str):
                return None
            test = self.discriminator(slice_rule, str(kind), path)
            if test is None:
                return None
            if test is not _UNCONSTRAINED:
                tests.append(test)
        if not tests:
            return None
        return lambda value: all(test(value) for test in tests)

    def discriminator(
        self, slice_rule: ElementRule, kind: str, path: str
    ) -> Callable[[Value], bool] | None:
        if path == "resolve()" or path.endswith(".resolve()"):
            return self.resolved_discriminator(slice_rule, kind, path)
        target = _rule_at(slice_rule, path)
        if kind in ("value", "pattern"):
            expected: tuple[str, Any] | None = fixed_value(target) if target is not None else None
            if expected is None and path == "url" and slice_rule.name.endswith("xtension"):
                url = _extension_url(slice_rule)
                expected = ("fixed", url) if url else None
            if expected is not None:
                pattern = expected[1]
                return lambda v: _any_at(v, path, lambda x: contains(pattern, x.value))
            binding = target.data.get("binding") if target is not None else None
            if isinstance(binding, dict) and binding.get("strength") == "required":
                vs = binding.get("valueSet")
                codes = (
                    expansion(vs, self.checker.context.conformance) if isinstance(vs, str) else None
                )
                if codes is not None:
                    return lambda v: _any_at(
                        v,
                        path,
                        lambda x: any(in_codes(codes, s, c) for s, c in (codes_of(x) or [])),
                    )
            return _UNCONSTRAINED if _unconstrained(slice_rule, path) else None
        if kind == "type" and target is not None:
            allowed = type_codes(target)
            if not allowed:
                return None
            return lambda v: _any_at(v, path, lambda x: x.type in allowed)
        if kind == "exists" and target is not None:
            if isinstance(target.data.get("min"), int) and target.data["min"] >= 1:
                return lambda v: _any_at(v, path, lambda x: True)
            if target.data.get("max") == "0":
                return lambda v: not _any_at(v, path, lambda x: True)
            return None
        if kind == "profile" and target is not None:
            return self.conforms_test(target, path)
        return None

    def resolved_discriminator(
        self, slice_rule: ElementRule, kind: str, path: str
    ) -> Callable[[Value], bool] | None:
        """A type or profile discriminator on the resource a reference points at
        (``item.resolve()``), given by the reference's target profiles."""
        reference_path = path.rpartition(".")[0] or "$this"
        target = _rule_at(slice_rule, reference_path)
        canonicals = [
            p for t in (target.data.get("type") or [] if target is not None else [])
            if isinstance(t, dict) and t.get("code") == "Reference"
            for p in t.get("targetProfile") or [] if isinstance(p, str)
        ]  # fmt: skip
        if not canonicals:
            return None
        if kind == "type":
            allowed = types_of(canonicals, self.checker.context.conformance)
            if allowed is None:
                return None
            return lambda v: any(
                x.type in allowed for x in descend(v, path, self.checker.resolve) or []
            )
        if kind == "profile" and all(
            is_base_type(c) or compiled_profile(c, self.checker.context.conformance) is not None
            for c in canonicals
        ):
            return lambda v: any(
                x.value is not None and self.checker.conforms(x, canonicals)
                for x in descend(v, path, self.checker.resolve) or []
            )
        return None

    def conforms_test(self, target: ElementRule, path: str) -> Callable[[Value], bool] | None:
        canonicals = [
            p for t in target.data.get("type") or [] if isinstance(t, dict)
            for p in t.get("profile") or [] if isinstance(p, str)
        ]  # fmt: skip
        unknown = [
            c for c in canonicals
            if not is_base_type(c) and compiled_profile(c, self.checker.context.conformance) is None
        ]  # fmt: skip
        if not canonicals or unknown:
            return None
        return lambda v: any(
            self.checker.conforms(found, canonicals) for found in descend(v, path) or []
        )


def _always(value: Value) -> bool:
    return True


_UNCONSTRAINED: Callable[[Value], bool] = _always  # a discriminator a slice does not constrain


def _unconstrained(slice_rule: ElementRule, path: str) -> bool:
    """Whether the slice leaves a value/pattern discriminator's path open: no element on the
    path sets a value, and none takes its rules from a type profile (where they may be)."""
    rule: ElementRule | None = slice_rule
    for segment in [s for s in path.split(".") if s != "$this"]:
        if rule is None:
            break
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", segment) or _has_type_profile(rule):
            return False
        rule = rule.children.get(segment)
    if rule is not None and (_has_type_profile(rule) or rule.data.get("binding")):
        return False
    return rule is None or fixed_value(rule) is None


def _has_type_profile(rule: ElementRule) -> bool:
    return any(
        isinstance(t, dict) and (t.get("profile") or t.get("targetProfile"))
        for t in rule.data.get("type") or []
    )


def _any_at(value: Value, path: str, test: Callable[[Value], bool]) -> bool:
    return any(test(v) for v in descend(value, path) or [] if v.value is not None)


def _rule_at(rule: ElementRule, path: str) -> ElementRule | None:
    """The element of a slice a discriminator path names (``$this``: the slice itself)."""
    current = rule
    for segment in path.split("."):
        if segment == "$this":
            continue
        child = current.children.get(segment)
        if child is None and segment + "[x]" not in current.children:
            # value[x] when the discriminator names the choice without its type
            matches = [c for n, c in current.children.items() if n.startswith(segment)]
            child = matches[0] if len(matches) == 1 else None
        if child is None:
            return None
        current = child
    return current


def _extension_url(slice_rule: ElementRule) -> str | None:
    url_rule = slice_rule.children.get("url")
    fixed = fixed_value(url_rule) if url_rule is not None else None
    if fixed is not None and isinstance(fixed[1], str):
        return fixed[1]
    for entry in slice_rule.data.get("type") or []:
        profiles = entry.get("profile") if isinstance(entry, dict) else None
        if isinstance(profiles, list) and profiles and isinstance(profiles[0], str):
            return split_canonical(profiles[0])[0]
    return None
