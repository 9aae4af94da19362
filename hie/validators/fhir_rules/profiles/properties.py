"""What an element rule says beyond its own values: its types and their profiles, the types
its target profiles are for, and the ElementDefinition extensions checked (minLength,
mustHaveValue, valueAlternatives)."""

from __future__ import annotations

from typing import Any

from hie.validators.conformance import Conformance
from hie.validators.fhir_rules.elements import resource_types
from hie.validators.fhir_rules.profiles.definitions import (
    CORE,
    ElementRule,
    profile_element,
    profile_type,
)

MIN_LENGTH = frozenset({CORE + "minLength"})
# ElementDefinition extensions of R5, used in R4 through their cross-version URLs.
MUST_HAVE_VALUE = frozenset({
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-ElementDefinition.mustHaveValue",
    CORE + "elementdefinition-mustHaveValue",
})  # fmt: skip
VALUE_ALTERNATIVES = frozenset({
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-ElementDefinition.valueAlternatives",
    CORE + "elementdefinition-valueAlternatives",
})  # fmt: skip


def type_codes(rule: ElementRule) -> frozenset[str]:
    codes = {t.get("code") for t in rule.data.get("type") or [] if isinstance(t, dict)}
    valid = {c for c in codes if isinstance(c, str) and c}
    if any("/" in c or c.startswith("System.") for c in valid):
        return frozenset()  # logical-model or FHIRPath system types: not checked
    return frozenset(valid)


def profiles_for_type(rule: ElementRule, value_type: str) -> list[str]:
    """The profiles the element's type entries give for a value of ``value_type`` (a resource
    in a Resource element counts); extensions are checked against their definitions by the
    extensions layer, and library elements (profile-element) are grafted when compiling."""
    if not value_type or value_type == "Extension":
        return []
    resource = value_type in resource_types()
    found: list[str] = []
    for entry in rule.data.get("type") or []:
        extras = entry.get("_profile") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or (
            isinstance(extras, list) and any(profile_element(x) for x in extras)
        ):
            continue
        code = entry.get("code")
        if code == value_type or (resource and code in ("Resource", "DomainResource")):
            profiles = entry.get("profile")
            found += [p for p in profiles or [] if isinstance(p, str) and p]
    return found


def extension_value(data: dict[str, Any], urls: frozenset[str], key: str) -> Any:
    extensions = data.get("extension")
    for extension in extensions if isinstance(extensions, list) else []:
        if isinstance(extension, dict) and extension.get("url") in urls:
            return extension.get(key)
    return None


def value_alternatives(rule: ElementRule) -> set[str]:
    """The extensions (URLs) the element allows in place of a missing value."""
    extensions = rule.data.get("extension")
    return {
        e["valueCanonical"].split("|")[0]
        for e in (extensions if isinstance(extensions, list) else [])
        if isinstance(e, dict)
        and e.get("url") in VALUE_ALTERNATIVES
        and isinstance(e.get("valueCanonical"), str)
    }


def types_of(canonicals: list[str], conformance: Conformance) -> frozenset[str] | None:
    """The types the profiles are for; None when one is unknown or allows any resource."""
    found: set[str] = set()
    for canonical in canonicals:
        type_name = profile_type(canonical, conformance)
        if type_name is None or type_name in ("Resource", "DomainResource"):
            return None
        found.add(type_name)
    return frozenset(found)
