"""Checking values against one profile's element rules: cardinality, fixed and pattern
values, limits, types and type profiles, reference targets, bindings, constraints, required
values, and (through :mod:`.slicing`) slices."""

from __future__ import annotations

from typing import Any

from hie.validators.conformance import Context, split_canonical
from hie.validators.fhir_rules.elements import PRIMITIVE_JSON, resource_types
from hie.validators.fhir_rules.profiles.codes import (
    codes_of,
    expansion,
    in_codes,
    required_value_sets,
)
from hie.validators.fhir_rules.profiles.constraints import violated
from hie.validators.fhir_rules.profiles.definitions import (
    CORE,
    ElementRule,
    Profile,
    base_type,
    compiled_profile,
    is_base_type,
)
from hie.validators.fhir_rules.profiles.narratives import check_narrative
from hie.validators.fhir_rules.profiles.patterns import contains, fixed_value, out_of_range, show
from hie.validators.fhir_rules.profiles.properties import (
    MIN_LENGTH,
    MUST_HAVE_VALUE,
    extension_value,
    profiles_for_type,
    type_codes,
    types_of,
    value_alternatives,
)
from hie.validators.fhir_rules.profiles.rules import (
    BINDING,
    CARDINALITY,
    CONFORMS,
    CONSTRAINT,
    FIXED,
    NARRATIVE,
    RANGE,
    TARGET,
    TYPE,
    VALUE_PRESENT,
)
from hie.validators.fhir_rules.profiles.slicing import Slicing
from hie.validators.fhir_rules.profiles.values import (
    Value,
    defined,
    extensions_of,
    implied_type,
    in_bundle,
    resolve_reference,
    resource_of,
    values_of,
)
from hie.validators.report import Report, Severity

MAX_DEPTH = 6  # profiles checking resources inside resources (Bundle entry slices)


class Checker:
    """Checks values against one profile and reports what does not conform."""

    def __init__(
        self, report: Report, context: Context, profile: Profile, resource: dict[str, Any]
    ) -> None:
        self.report = report
        self.context = context
        self.profile = profile
        self.resource = resource
        self.depth = 0
        # The outermost resource: a Bundle's entries are where references are resolved.
        self.top = resource

    def error(self, rule_id: str, path: str, message: str, code: str = "invalid") -> None:
        self.report.add(
            Severity.ERROR,
            rule_id,
            f"{path}: {message} (profile {self.profile.url})",
            code=code,
            expression=path,
        )

    def check(self, value: Value) -> None:
        self.element(self.profile.root, [value])

    def inner(self, report: Report, profile: Profile, resource: dict[str, Any]) -> Checker:
        """A checker of a resource inside this one against another profile."""
        checker = Checker(report, self.context, profile, resource)
        checker.depth = self.depth + 1
        checker.top = self.top
        return checker

    def conforms(self, value: Value, canonicals: list[str]) -> bool | None:
        """Whether a value conforms to one of the profiles; None if one cannot be found."""
        if any(base_type(c) == value.type for c in canonicals):
            return True  # the type's own rules are the other layers' business
        constrained = [c for c in canonicals if not is_base_type(c)]
        profiles = [compiled_profile(c, self.context.conformance) for c in constrained]
        if any(p is None for p in profiles) or self.depth >= MAX_DEPTH:
            return None
        for profile in profiles:
            if profile is None or profile.type != value.type:
                continue
            scratch = Report()
            self.inner(scratch, profile, resource_of(value)).check(value)
            if not scratch.rejected:
                return True
        return False

    def resolve(self, value: Value) -> Value | None:
        """The resource a Reference points at: a contained resource, or an entry of the Bundle
        being validated; else, for a RESTful URL (``Patient/1``), a stand-in of the type it
        names, which only a type discriminator looks at."""
        return resolve_reference(value, (value.holder, self.resource, self.top), self.top)

    def target_profiles(self, rule: ElementRule, value: Value) -> None:
        """A reference points at a resource of a type the element's target profiles allow
        (checked on the type a RESTful URL names when the policy takes those as valid); one of
        the same Bundle conforms to one of those profiles."""
        canonicals = [
            p for t in rule.data.get("type") or []
            if isinstance(t, dict) and t.get("code") == "Reference"
            for p in t.get("targetProfile") or []
            if isinstance(p, str)
        ]  # fmt: skip
        reference = value.value.get("reference") if isinstance(value.value, dict) else None
        if not canonicals or not isinstance(reference, str):
            return
        allowed = types_of(canonicals, self.context.conformance)
        implied = implied_type(reference) if self.context.policy.valid_rest_references else None
        if allowed is not None and implied is not None and implied not in allowed:
            self.error(
                TARGET.id,
                value.path,
                f"the type '{implied}' implied by the reference {reference} is not a valid "
                f"target of {rule.id} (one of {', '.join(sorted(allowed))})",
                "structure",
            )
            return
        constrained = [c for c in canonicals if not is_base_type(c)]
        target = in_bundle(self.top, reference) if constrained else None
        if target is None:
            return
        rtype = target.get("resourceType")
        target_value = Value(value.path, target, str(rtype), str(rtype), str(rtype), target)
        if self.conforms(target_value, canonicals) is False:
            self.error(
                TARGET.id,
                value.path,
                f"{reference} does not conform to any of the profiles {', '.join(canonicals)} "
                f"that {rule.id} requires of its target",
            )

    def element(self, rule: ElementRule, values: list[Value]) -> None:
        """``values``: every occurrence of the element ``rule`` in one parent."""
        for value in values:
            self.own(rule, value)
            if not isinstance(value.value, dict):
                continue
            for child in rule.children.values():
                if not defined(value.definition, child.name):
                    continue  # a profile element R4 does not have (a typo): nothing to check
                found = values_of(value, child.name)
                self.cardinality(child, found, value.path, len(found))
                if child.slices:
                    Slicing(self).check(child, found, value.path)
                self.element(child, found)

    def cardinality(self, rule: ElementRule, found: list[Value], where: str, count: int) -> None:
        minimum, maximum = rule.data.get("min"), rule.data.get("max")
        name = rule.id
        if isinstance(minimum, int) and count < minimum:
            if rule.slice_name is not None:
                message = f"slice {name}: a matching slice is required, but none was found"
            else:
                message = f"{name}: minimum required = {minimum}, but only found {count}"
            self.error(CARDINALITY.id, where, message, "structure")
        if (
            isinstance(maximum, str)
            and maximum.isascii()
            and maximum.isdigit()
            and count > int(maximum)
        ):
            if maximum == "0":
                message = f"{name}: the profile prohibits this element, but found {count}"
            else:
                message = f"{name}: max allowed = {maximum}, but found {count}"
            self.error(CARDINALITY.id, where, message, "structure")

    def own(self, rule: ElementRule, value: Value) -> None:
        actual = value.value
        if actual is None:
            self.value_present(rule, value)
            return
        if value.type == "Narrative":
            check_narrative(
                rule.data,
                actual,
                value.holder,
                lambda message: self.error(NARRATIVE.id, value.path, message),
            )
        fixed = fixed_value(rule)
        if fixed is not None:
            kind, expected = fixed
            if not contains(expected, actual):
                self.error(
                    FIXED.id,
                    value.path,
                    f"the value {show(actual)} does not match the {kind} value "
                    f"{show(expected)} of {rule.id}",
                    "value",
                )
        self.limits(rule, value)
        self.types(rule, value)
        self.type_profiles(rule, value)
        if value.type == "Reference":
            self.target_profiles(rule, value)
        for canonical in required_value_sets(rule):
            self.binding(rule, value, canonical)
        for constraint in rule.data.get("constraint") or []:
            self.constraint(rule, value, constraint)

    def limits(self, rule: ElementRule, value: Value) -> None:
        actual = value.value
        if isinstance(value.value, dict) and value.type == "Quantity":
            actual = value.value.get("value")
        for key, limit in rule.data.items():
            if not key.startswith(("minValue", "maxValue")):
                continue
            if isinstance(limit, dict):
                limit = limit.get("value")  # minValueQuantity: compared on the number
            below = key.startswith("min")
            if out_of_range(actual, limit, below=below):
                side = "less than the minimum" if below else "greater than the maximum"
                self.error(
                    RANGE.id,
                    value.path,
                    f"the value {show(actual)} is {side} {show(limit)} that {rule.id} allows",
                    "value",
                )
        max_length = rule.data.get("maxLength")
        if isinstance(max_length, int) and isinstance(actual, str) and len(actual) > max_length:
            self.error(
                RANGE.id,
                value.path,
                f"the value is {len(actual)} characters long; {rule.id} allows {max_length}",
                "value",
            )
        min_length = extension_value(rule.data, MIN_LENGTH, "valueInteger")
        if isinstance(min_length, int) and isinstance(actual, str) and len(actual) < min_length:
            self.error(
                RANGE.id,
                value.path,
                f"the value is {len(actual)} characters long; {rule.id} requires at least "
                f"{min_length}",
                "value",
            )

    def types(self, rule: ElementRule, value: Value) -> None:
        allowed = type_codes(rule)
        resource = value.type in resource_types()
        if not allowed or not (rule.name.endswith("[x]") or resource):
            return
        if resource and allowed & {"Resource", "DomainResource"}:
            return
        if value.type not in allowed:
            self.error(
                TYPE.id,
                value.path,
                f"{rule.id} allows the types {', '.join(sorted(allowed))}, not {value.type}",
                "structure",
            )

    def type_profiles(self, rule: ElementRule, value: Value) -> None:
        """A value whose type the element constrains to profiles conforms to one of them: to
        the only one, with its own findings reported; to one of several, or else an error
        naming them all (as HL7's "unable to find a match among choices")."""
        canonicals = profiles_for_type(rule, value.type)
        if not canonicals or self.depth >= MAX_DEPTH:
            return
        unknown = [
            c for c in canonicals
            if not is_base_type(c) and compiled_profile(c, self.context.conformance) is None
        ]  # fmt: skip
        for canonical in unknown:
            if not split_canonical(canonical)[0].startswith(CORE):  # R4's own: not shipped
                self.error(
                    CONFORMS.id,
                    value.path,
                    f"{rule.id} requires the profile {canonical}, which cannot be found",
                    "not-found",
                )
        if unknown:
            return
        profiles = [compiled_profile(c, self.context.conformance) for c in canonicals]
        only = profiles[0] if len(profiles) == 1 else None
        if only is not None and only.type == value.type:
            self.inner(self.report, only, resource_of(value)).check(value)
        elif self.conforms(value, canonicals) is False:
            self.error(
                CONFORMS.id,
                value.path,
                f"{value.type} does not conform to any of the profiles {rule.id} allows: "
                f"{', '.join(canonicals)}",
                "structure",
            )

    def value_present(self, rule: ElementRule, value: Value) -> None:
        """A primitive without a value (only extensions) where the profile requires one, or
        requires one of its value alternatives instead."""
        if value.type not in PRIMITIVE_JSON or value.value is not None:
            return
        if extension_value(rule.data, MUST_HAVE_VALUE, "valueBoolean") is True:
            self.error(
                VALUE_PRESENT.id,
                value.path,
                f"{rule.id} requires a value, but the element has only extensions",
                "required",
            )
            return
        alternatives = value_alternatives(rule)
        if not alternatives:
            return
        present = {x.get("url") for x in extensions_of(value) if isinstance(x.get("url"), str)}
        if not present & alternatives:
            self.error(
                VALUE_PRESENT.id,
                value.path,
                f"{rule.id} has no value, so it needs one of the extensions "
                f"{', '.join(sorted(alternatives))}",
                "required",
            )

    def binding(self, rule: ElementRule, value: Value, canonical: Any) -> None:
        if not isinstance(canonical, str):
            return
        codes = expansion(canonical, self.context.conformance)
        if codes is None:
            return  # a value set only a terminology server can expand
        found = codes_of(value)
        if found is None:
            return
        if not any(in_codes(codes, system, code) for system, code in found):
            shown = ", ".join(f"{s}#{c}" if s else c for s, c in found) or "no code"
            self.error(
                BINDING.id,
                value.path,
                f"{shown} is not in the value set {canonical}, which {rule.id} requires",
                "code-invalid",
            )

    def constraint(self, rule: ElementRule, value: Value, constraint: Any) -> None:
        failure = violated(constraint, value, self.resource, self.context.conformance)
        if failure is not None:
            self.error(CONSTRAINT.id, value.path, failure, "invariant")
