"""Validation against profiles (StructureDefinitions with ``derivation = constraint``).

A resource (the root, a contained one, a Bundle entry) is checked against every profile it is
bound to: those it claims in ``meta.profile``, the global profiles of the ImplementationGuides
loaded with ``--ig``, and, as HL7's validator does for R4, the vital signs profile its
Observation.code names (LOINC 8310-5 → bodytemp, ...). A profile is resolved from the loaded
conformance resources (``url`` or ``url|version``) or from R4's own profiles
(``schemas/fhir/profiles.json``); one that cannot be found is a warning, as with HL7.

Profiles usually carry only a differential. The differentials of the profile and of the
profiles it derives from (``baseDefinition``) are merged by element id, and what they add to
the base type is checked: cardinality, fixed[x] and pattern[x], min/maxValue[x], maxLength,
types of choice elements and resources, required bindings to value sets that can be expanded
offline, constraints (FHIRPath, run with fhirpathpy) and slicing with value, pattern, type,
exists and profile discriminators. The base type's own rules are checked by the other layers.
A slicing whose discriminator cannot be evaluated is left unchecked, never guessed.
"""

from __future__ import annotations

import json
import re
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from fhirpathpy.engine.nodes import ResourceNode as FhirPathNode

from hie.resources import schemas_dir
from hie.validators.conformance import Conformance, Context, split_canonical
from hie.validators.fhir_rules.elements import (
    PRIMITIVE_JSON,
    children,
    is_fhir_type,
    resource_types,
)
from hie.validators.fhir_rules.fhirpath import LOCK, compile_r4
from hie.validators.fhir_rules.invariants import invariants
from hie.validators.fhir_rules.tree import ResourceNode, Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

UNKNOWN = register(
    "fhir.profile.unknown",
    summary="A profile a resource claims (meta.profile), or is to be validated against "
    "(hie validate --profile), can be found, so that it can be checked.",
    fix="Load the implementation guide that defines the profile (hie validate --ig), or correct "
    "the canonical URL.",
)
CARDINALITY = register(
    "fhir.profile.cardinality",
    summary="Elements and slices occur as often as the profiles the resource conforms to allow.",
    fix="Add the element the profile requires, or remove the occurrences it does not allow "
    "(max 0 means the profile prohibits the element).",
)
FIXED = register(
    "fhir.profile.fixed",
    summary="Elements hold the fixed value, or contain the pattern, that the profile sets.",
    fix="Send exactly the value the profile fixes (for a pattern: at least the codes and "
    "properties it lists, e.g. the LOINC code of a vital sign).",
)
RANGE = register(
    "fhir.profile.range",
    summary="Values lie within the profile's minValue/maxValue and strings within its maxLength.",
    fix="Correct the value, or its unit, so that it lies within the limits of the profile.",
)
TYPE = register(
    "fhir.profile.type",
    summary="Choice elements and resources have one of the types the profile allows.",
    fix="Use the type the profile names (e.g. valueQuantity rather than valueString), or put "
    "the resource type the profile expects in that place.",
)
BINDING = register(
    "fhir.profile.binding",
    summary="Codes of elements the profile binds to a value set with strength required come "
    "from that value set.",
    fix="Use a code of the value set the message names (for quantities: the unit code), "
    "with its code system.",
)
CONSTRAINT = register(
    "fhir.profile.constraint",
    summary="The resource meets the constraints (invariants) the profile adds.",
    fix="Read the constraint's text in the message and change the resource to satisfy it.",
)
SLICING = register(
    "fhir.profile.slicing",
    summary="Repeating elements sliced by a profile match its slices: each occurrence at most "
    "one slice, none outside a closed slicing, and the profiles slices name exist.",
    fix="Make each occurrence match the slice meant (its discriminating code, type or URL), "
    "and remove occurrences a closed slicing does not allow.",
)

_CORE = "http://hl7.org/fhir/StructureDefinition/"
_MAX_DEPTH = 6  # profiles checking resources inside resources (Bundle entry slices)

# Observation codes HL7's validator (R4+) checks against the R4 vital signs profiles, in the
# order it tries them: LOINC first, then SNOMED CT. Its SNOMED CT respiratory rate branch names
# no profile (so such an Observation is checked against none), reproduced by ``None``.
_LOINC = "http://loinc.org"
_SCT = "http://snomed.info/sct"
_VITAL_SIGNS: tuple[tuple[str, str | None, frozenset[str]], ...] = tuple(
    (system, None if name is None else _CORE + name, frozenset(codes.split()))
    for system, name, codes in (
        (_LOINC, "vitalspanel", "85353-1"),
        (_LOINC, "resprate", "9279-1 76170-0 76172-6 76171-8 19840-8 33438-3 76270-8 11291-2"),
        (_LOINC, "heartrate", "60978-4 73795-7 73799-9 76476-1 76477-9 8867-4 8889-8 8890-6 "
         "8891-4 8892-2 8893-0 40443-4 55425-3 68999-2 11328-2 69000-8 8886-4"),
        (_LOINC, "oxygensat", "2708-6 19224-5 20564-1 2709-4 2710-2 2711-0 2713-6 51733-4 "
         "59408-5 59417-6 89276-0 97549-0"),
        (_LOINC, "bodytemp", "8310-5 60834-9 60835-6 60836-4 60838-0 60955-2 61009-7 75539-7 "
         "75987-8 76010-8 76011-6 76278-1 8309-7 8328-7 8329-5 8330-3 8331-1 8332-9 8333-7 "
         "8334-5 91371-5 98657-0 98663-8"),
        (_LOINC, "bodyheight", "8302-2 3137-7 3138-5 8306-3 8308-9"),
        (_LOINC, "headcircum", "9843-4 8287-5"),
        (_LOINC, "bodyweight", "29463-7 3141-9 3142-7 75292-3 79348-9 8350-1 8351-9"),
        (_LOINC, "bmi", "39156-5 59574-4 89270-3"),
        (_LOINC, "bp", "85354-9 35094-2 8459-0 76534-7 55284-4 8480-6"),
        (_SCT, "vitalspanel", "46680005"),
        (_SCT, None, "86290005 271625008 271306003"),
        (_SCT, "heartrate", "249043002 444981005 399017001 251670001 429525003 429614003"),
        (_SCT, "oxygensat", "103228002 442349007 442476006 442440005 431314004 442734002 "
         "713194001"),
        (_SCT, "bodytemp", "386725007 276885007 300076005 1222808002 364246006 307047009 "
         "708499008 431598003 698831002 698832009 415882003 415974002 415929009 415945006"),
        (_SCT, "bodyheight", "1153637007 1162419008 50373000 1162418000 1230278008 1162392001 "
         "1162417005"),
        (_SCT, "headcircum", "363812007 169876006 1269262007 363811000"),
        (_SCT, "bodyweight", "60621009 735395000 425024002 424927000 784399000 1162416001 "
         "1162415002"),
        (_SCT, "bp", "75367002 251076008 163033001 163035008 386534000 386536003 271649006 "
         "271650006 407556006 407554009 716579001 399304008"),
    )
)  # fmt: skip


# -- the profile: merged differentials as a tree of element rules ---------------------------


@dataclass
class _Rule:
    """One element of a profile, with the rules for its children and its slices."""

    id: str
    name: str  # JSON name ("code", "valueQuantity") or a choice ("value[x]"); type at the root
    data: dict[str, Any] = field(default_factory=dict)  # the merged ElementDefinition
    children: dict[str, _Rule] = field(default_factory=dict)
    slices: list[_Rule] = field(default_factory=list)
    slice_name: str | None = None


@dataclass
class _Profile:
    url: str  # as the messages name it: url|version
    type: str
    root: _Rule


def _segment(segment: str) -> str:
    """``value[x]:valueQuantity`` (a type slice) is the element ``valueQuantity``."""
    name, _, slice_name = segment.partition(":")
    if name.endswith("[x]") and slice_name.startswith(name[:-3]) and slice_name != name[:-3]:
        rest = slice_name[len(name) - 3 :]
        if rest[:1].isupper():
            return slice_name
    return segment


def _ids(elements: list[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(normalised id, element) of each differential element; ids are made from paths and
    slice names (the slice in force for the paths below it) when a differential has none."""
    open_slices: dict[str, str] = {}  # path of a sliced element -> id of its current slice
    for element in elements:
        if not isinstance(element, dict):
            continue
        path = element.get("path")
        given = element.get("id")
        if isinstance(given, str) and given:
            raw = given
        elif isinstance(path, str) and path:
            raw = path
            for sliced, slice_id in sorted(open_slices.items(), key=lambda i: -len(i[0])):
                if path.startswith(sliced + "."):
                    raw = slice_id + path[len(sliced) :]
                    break
            slice_name = element.get("sliceName")
            if isinstance(slice_name, str) and slice_name:
                raw = f"{raw}:{slice_name}"
                open_slices[path] = raw
            else:
                open_slices.pop(path, None)
        else:
            continue
        yield ".".join(_segment(s) for s in _split_id(raw)), element


def _split_id(element_id: str) -> list[str]:
    """An id's segments; a slice name may hold dots (extension URLs), a path never does."""
    segments: list[str] = []
    for part in element_id.split("."):
        if segments and ":" in segments[-1] and "/" in segments[-1]:
            segments[-1] += "." + part  # still inside a URL-like slice name
        else:
            segments.append(part)
    return segments


def _merge(chain: list[list[Any]]) -> dict[str, dict[str, Any]]:
    """The differentials of a profile chain (base first) merged by element id."""
    merged: dict[str, dict[str, Any]] = {}
    for elements in chain:
        for element_id, element in _ids(elements):
            before = merged.get(element_id, {})
            combined = {**before, **element}
            constraints = [c for c in before.get("constraint", []) if isinstance(c, dict)]
            keys = {c.get("key") for c in constraints}
            for constraint in element.get("constraint") or []:
                if isinstance(constraint, dict) and constraint.get("key") not in keys:
                    constraints.append(constraint)
            if constraints:
                combined["constraint"] = constraints
            merged[element_id] = combined
    return merged


def _build(type_name: str, merged: dict[str, dict[str, Any]]) -> _Rule:
    root = _Rule(type_name, type_name)
    for element_id, data in merged.items():
        segments = _split_id(element_id)
        if segments[0] != type_name:
            continue
        rule = root
        for depth, segment in enumerate(segments[1:], start=1):
            name, _, slice_name = segment.partition(":")
            if "/" in slice_name and not slice_name.startswith(("http:", "https:")):
                break  # re-slicing: left unchecked
            base = rule.children.get(name)
            if base is None:
                base = rule.children[name] = _Rule(".".join([*segments[:depth], name]), name)
            if slice_name:
                found = next((s for s in base.slices if s.slice_name == slice_name), None)
                if found is None:
                    found = _Rule(".".join(segments[: depth + 1]), name, slice_name=slice_name)
                    base.slices.append(found)
                rule = found
            else:
                rule = base
        else:
            rule.data = data
    if type_name in merged:
        root.data = merged[type_name]
    return root


@cache
def _core() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((schemas_dir() / "fhir" / "profiles.json").read_text("utf-8"))
    return data


def _definition(canonical: str, conformance: Conformance) -> dict[str, Any] | None:
    """The StructureDefinition ``canonical`` names: loaded, or one of R4's own profiles."""
    found = conformance.resolve(canonical, "StructureDefinition")
    if found is not None:
        return found
    url, version = split_canonical(canonical)
    core = _core()["profiles"].get(url)
    if core is None or (version is not None and not "4.0.1".startswith(version)):
        return None
    return {
        "url": url,
        "version": "4.0.1",
        "type": core["type"],
        "baseDefinition": core["baseDefinition"],
        "derivation": "constraint",
        "differential": {"element": core["elements"]},
    }


def _is_base_type(canonical: str) -> bool:
    url = split_canonical(canonical)[0]
    return url.startswith(_CORE) and is_fhir_type(url[len(_CORE) :])


_COMPILED: weakref.WeakKeyDictionary[Conformance, dict[str, _Profile | None]] = (
    weakref.WeakKeyDictionary()
)
_COMPILED_LOCK = threading.Lock()


def _profile(canonical: str, conformance: Conformance) -> _Profile | None:
    """The profile ``canonical`` names, compiled once per set of conformance resources."""
    with _COMPILED_LOCK:
        cached = _COMPILED.setdefault(conformance, {})
        if canonical in cached:
            return cached[canonical]
    compiled = _compile(canonical, conformance)
    with _COMPILED_LOCK:
        cached[canonical] = compiled
    return compiled


def _compile(canonical: str, conformance: Conformance) -> _Profile | None:
    definition = _definition(canonical, conformance)
    if definition is None or definition.get("derivation") == "specialization":
        return None
    type_name = definition.get("type")
    if not isinstance(type_name, str) or not is_fhir_type(type_name):
        return None
    chain: list[list[Any]] = []
    seen: set[str] = set()
    current: dict[str, Any] | None = definition
    while current is not None and len(chain) < 20:
        chain.append(_elements(current))
        base = current.get("baseDefinition")
        if not isinstance(base, str) or base in seen or _is_base_type(base):
            break
        seen.add(base)
        current = _definition(base, conformance)
        if current is not None and current.get("type") != type_name:
            break
    chain.reverse()
    url = str(definition.get("url") or canonical)
    version = definition.get("version")
    label = f"{url}|{version}" if isinstance(version, str) and version else url
    return _Profile(label, type_name, _build(type_name, _merge(chain)))


def _elements(definition: dict[str, Any]) -> list[Any]:
    for view in ("differential", "snapshot"):
        part = definition.get(view)
        elements = part.get("element") if isinstance(part, dict) else None
        if isinstance(elements, list) and elements:
            return elements
    return []


# -- value sets --------------------------------------------------------------------------


def _expansion(canonical: str, conformance: Conformance) -> dict[str, frozenset[str]] | None:
    """{system: codes} of a value set that can be expanded offline, else None."""
    url = split_canonical(canonical)[0]
    value_set = conformance.resolve(canonical, "ValueSet")
    if value_set is None:
        core = _core()["valueSets"].get(url)
        return None if core is None else {s: frozenset(c) for s, c in core.items()}
    compose = value_set.get("compose")
    if not isinstance(compose, dict) or compose.get("exclude"):
        return None
    result: dict[str, set[str]] = {}
    for include in compose.get("include") or []:
        if not isinstance(include, dict) or include.get("filter") or include.get("valueSet"):
            return None
        system = include.get("system")
        if not isinstance(system, str):
            return None
        concepts = include.get("concept")
        if isinstance(concepts, list):
            codes = {c.get("code") for c in concepts if isinstance(c, dict)}
        else:
            code_system = conformance.resolve(system, "CodeSystem")
            if code_system is None or code_system.get("content") != "complete":
                return None
            codes = set(_all_codes(code_system.get("concept")))
        result.setdefault(system, set()).update(c for c in codes if isinstance(c, str))
    return {s: frozenset(c) for s, c in result.items()} if result else None


def _all_codes(concepts: Any) -> Iterator[str]:
    for concept in concepts if isinstance(concepts, list) else []:
        if isinstance(concept, dict):
            if isinstance(concept.get("code"), str):
                yield concept["code"]
            yield from _all_codes(concept.get("concept"))


# -- the instance side ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Value:
    path: str  # where it is, as issues name it
    value: Any  # None for a primitive that has only an extension
    type: str  # R4 type code, the resource type for a resource, "" for a backbone element
    definition: str  # where its children are defined (a type or a backbone path)
    element: str  # its R4 element path, for FHIRPath (Observation.component)
    holder: Any = None  # the resource the element is in (FHIRPath's %resource)


def _type_of(key: str, choice: str, type_code: str) -> str:
    return type_code if not choice else key[len(choice) :][:1].lower() + key[len(choice) + 1 :]


def _values(parent: _Value, name: str) -> list[_Value]:
    """The occurrences of element ``name`` (``value[x]`` names every ``value*``) in ``parent``."""
    data = parent.value
    if not isinstance(data, dict):
        return []
    elements = children(parent.definition)
    if name.endswith("[x]"):
        keys = [k for k, e in elements.items() if e.choice == name[:-3] and _present(data, k)]
    else:
        keys = [name] if name in elements and _present(data, name) else []
    found: list[_Value] = []
    holder = data if "resourceType" in data else parent.holder
    for key in keys:
        element = elements[key]
        raw = data.get(key)
        items = raw if isinstance(raw, list) else [raw]
        extras = data.get(f"_{key}")
        extra_items = extras if isinstance(extras, list) else [extras]
        many = isinstance(raw, list) or isinstance(extras, list)
        type_code = element.type
        if element.choice:
            type_code = key[len(element.choice) :]
            if type_code[:1].lower() + type_code[1:] in PRIMITIVE_JSON:
                type_code = type_code[:1].lower() + type_code[1:]
        for index in range(max(len(items), len(extra_items))):
            item = items[index] if index < len(items) else None
            extra = extra_items[index] if index < len(extra_items) else None
            if item is None and extra is None:
                continue
            path = f"{parent.path}.{key}[{index}]" if many else f"{parent.path}.{key}"
            if element.resource and isinstance(item, dict):
                rtype = item.get("resourceType")
                rtype = rtype if isinstance(rtype, str) else ""
                found.append(_Value(path, item, rtype, rtype, rtype, holder))
            else:
                definition = element.definition if not element.primitive else type_code
                found.append(
                    _Value(path, item, type_code, definition, f"{parent.definition}.{key}", holder)
                )
    return found


def _present(data: dict[str, Any], key: str) -> bool:
    return data.get(key) is not None or data.get(f"_{key}") is not None


def _descend(value: _Value, path: str) -> list[_Value] | None:
    """The values at a discriminator path (``coding.code``, ``$this``, ``resource``)."""
    current = [value]
    for segment in path.split("."):
        if segment == "$this":
            continue
        match = re.fullmatch(r"extension\('([^']+)'\)", segment)
        if match:
            current = [
                v
                for c in current
                for v in _values(c, "extension")
                if isinstance(v.value, dict) and v.value.get("url") == match[1]
            ]
            continue
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(\[x\])?", segment):
            return None  # resolve(), ofType(), ...: not evaluated
        current = [v for c in current for v in _values(c, segment)]
    return current


# -- matching values -----------------------------------------------------------------------


def _equal_primitive(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        try:
            return Decimal(str(expected)) == Decimal(str(actual))
        except InvalidOperation:
            return False
    return bool(expected == actual)


def _contains(pattern: Any, actual: Any) -> bool:
    """pattern[x] semantics: every property (and array item) of the pattern is in the value."""
    if isinstance(pattern, dict):
        if not isinstance(actual, dict):
            return False
        return all(_contains(v, actual.get(k)) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = actual if isinstance(actual, list) else [actual]
        return all(any(_contains(p, a) for a in items) for p in pattern)
    return actual is not None and _equal_primitive(pattern, actual)


def _fixed(rule: _Rule) -> tuple[str, Any] | None:
    """("fixed" or "pattern", value) the element sets."""
    for key, value in rule.data.items():
        if key.startswith("fixed") and key[5:6].isupper():
            return "fixed", value
        if key.startswith("pattern") and key[7:8].isupper():
            return "pattern", value
    return None


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 160 else text[:157] + "..."


# -- the check ----------------------------------------------------------------------------


class _Checker:
    """Checks values against one profile and reports what does not conform."""

    def __init__(
        self, report: Report, context: Context, profile: _Profile, resource: dict[str, Any]
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

    def check(self, value: _Value) -> None:
        self.element(self.profile.root, [value])

    def inner(self, report: Report, profile: _Profile, resource: dict[str, Any]) -> _Checker:
        """A checker of a resource inside this one against another profile."""
        checker = _Checker(report, self.context, profile, resource)
        checker.depth = self.depth + 1
        checker.top = self.top
        return checker

    def conforms(self, value: _Value, canonicals: list[str]) -> bool | None:
        """Whether a resource conforms to one of the profiles; None if one cannot be found."""
        profiles = [_profile(c, self.context.conformance) for c in canonicals]
        if any(p is None for p in profiles) or self.depth >= _MAX_DEPTH:
            return None
        for profile in profiles:
            if profile is None or profile.type != value.type:
                continue
            scratch = Report()
            self.inner(scratch, profile, value.value).check(value)
            if not scratch.rejected:
                return True
        return False

    def target_profiles(self, rule: _Rule, value: _Value) -> None:
        """A reference to a resource of the same Bundle points at one conforming to a target
        profile of the element."""
        canonicals = [
            p for t in rule.data.get("type") or []
            if isinstance(t, dict) and t.get("code") == "Reference"
            for p in t.get("targetProfile") or []
            if isinstance(p, str) and not _is_base_type(p)
        ]  # fmt: skip
        reference = value.value.get("reference") if isinstance(value.value, dict) else None
        if not canonicals or not isinstance(reference, str):
            return
        target = _in_bundle(self.top, reference)
        if target is None:
            return
        rtype = target.get("resourceType")
        target_value = _Value(value.path, target, str(rtype), str(rtype), str(rtype), target)
        if self.conforms(target_value, canonicals) is False:
            self.error(
                TYPE.id,
                value.path,
                f"{reference} does not conform to any of the profiles {', '.join(canonicals)} "
                f"that {rule.id} requires of its target",
            )

    def element(self, rule: _Rule, values: list[_Value]) -> None:
        """``values``: every occurrence of the element ``rule`` in one parent."""
        for value in values:
            self.own(rule, value)
            if not isinstance(value.value, dict):
                continue
            for child in rule.children.values():
                found = _values(value, child.name)
                self.cardinality(child, found, value.path, len(found))
                if child.slices:
                    self.slicing(child, found, value.path)
                self.element(child, found)

    def cardinality(self, rule: _Rule, found: list[_Value], where: str, count: int) -> None:
        minimum, maximum = rule.data.get("min"), rule.data.get("max")
        name = rule.id
        if isinstance(minimum, int) and count < minimum:
            if rule.slice_name is not None:
                message = f"slice {name}: a matching slice is required, but none was found"
            else:
                message = f"{name}: minimum required = {minimum}, but only found {count}"
            self.error(CARDINALITY.id, where, message, "structure")
        if isinstance(maximum, str) and maximum.isdigit() and count > int(maximum):
            if maximum == "0":
                message = f"{name}: the profile prohibits this element, but found {count}"
            else:
                message = f"{name}: max allowed = {maximum}, but found {count}"
            self.error(CARDINALITY.id, where, message, "structure")

    def own(self, rule: _Rule, value: _Value) -> None:
        actual = value.value
        if actual is None:
            return
        fixed = _fixed(rule)
        if fixed is not None:
            kind, expected = fixed
            if not _contains(expected, actual):
                self.error(
                    FIXED.id,
                    value.path,
                    f"the value {_show(actual)} does not match the {kind} value "
                    f"{_show(expected)} of {rule.id}",
                    "value",
                )
        self.limits(rule, value)
        self.types(rule, value)
        if value.type == "Reference":
            self.target_profiles(rule, value)
        binding = rule.data.get("binding")
        if isinstance(binding, dict) and binding.get("strength") == "required":
            self.binding(rule, value, binding.get("valueSet"))
        for constraint in rule.data.get("constraint") or []:
            self.constraint(rule, value, constraint)

    def limits(self, rule: _Rule, value: _Value) -> None:
        actual = value.value
        if isinstance(value.value, dict) and value.type == "Quantity":
            actual = value.value.get("value")
        for key, limit in rule.data.items():
            if not key.startswith(("minValue", "maxValue")):
                continue
            if isinstance(limit, dict):
                limit = limit.get("value")  # minValueQuantity: compared on the number
            below = key.startswith("min")
            if _out_of_range(actual, limit, below=below):
                side = "less than the minimum" if below else "greater than the maximum"
                self.error(
                    RANGE.id,
                    value.path,
                    f"the value {_show(actual)} is {side} {_show(limit)} that {rule.id} allows",
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

    def types(self, rule: _Rule, value: _Value) -> None:
        allowed = _type_codes(rule)
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
            return
        if resource:
            self.resource_profiles(rule, value)

    def resource_profiles(self, rule: _Rule, value: _Value) -> None:
        """A resource in a place the profile gives profiles for conforms to them."""
        for entry in rule.data.get("type") or []:
            if not isinstance(entry, dict) or entry.get("code") != value.type:
                continue
            for canonical in entry.get("profile") or []:
                if not isinstance(canonical, str) or _is_base_type(canonical):
                    continue
                profile = _profile(canonical, self.context.conformance)
                if profile is None:
                    self.error(
                        SLICING.id,
                        value.path,
                        f"{rule.id} requires the profile {canonical}, which cannot be found",
                        "not-found",
                    )
                elif self.depth < _MAX_DEPTH:
                    self.inner(self.report, profile, value.value).check(value)

    def binding(self, rule: _Rule, value: _Value, canonical: Any) -> None:
        if not isinstance(canonical, str):
            return
        codes = _expansion(canonical, self.context.conformance)
        if codes is None:
            return  # a value set only a terminology server can expand
        found = _codings(value)
        if found is None:
            return
        if not any(_in(codes, system, code) for system, code in found):
            shown = ", ".join(f"{s}#{c}" if s else c for s, c in found) or "no code"
            self.error(
                BINDING.id,
                value.path,
                f"{shown} is not in the value set {canonical}, which {rule.id} requires",
                "code-invalid",
            )

    def constraint(self, rule: _Rule, value: _Value, constraint: Any) -> None:
        if not isinstance(constraint, dict) or constraint.get("severity") != "error":
            return
        key, expression = constraint.get("key"), constraint.get("expression")
        if not isinstance(expression, str) or key in _base_keys():
            return
        if any(unsupported in expression for unsupported in _UNSUPPORTED):
            return
        evaluate = _compiled(expression)
        if evaluate is None:
            return
        target: Any = value.value
        if not (isinstance(target, dict) and "resourceType" in target):
            target = FhirPathNode.create_node(target, value.element)  # type: ignore[no-untyped-call]
        holder = value.holder if value.holder is not None else value.value
        variables = {"resource": holder, "rootResource": self.resource}
        try:
            with LOCK:
                result = evaluate(target, variables)
        # fhirpathpy raises plain Exceptions on shapes it does not expect: not evaluated.
        except Exception:
            return
        if result == [False]:
            human = constraint.get("human") or expression
            self.error(CONSTRAINT.id, value.path, f"{key}: {human}", "invariant")

    def slicing(self, rule: _Rule, values: list[_Value], where: str) -> None:
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
        members: dict[int, list[_Value]] = {i: [] for i in range(len(rule.slices))}
        for value in values:
            matched = [i for i, match in enumerate(usable) if match(value)]
            if len(matched) > 1:
                names = ", ".join(str(rule.slices[i].slice_name) for i in matched)
                self.error(
                    SLICING.id, value.path, f"matches more than one slice of {rule.id}: {names}"
                )
            if matched:
                members[matched[0]].append(value)
            elif slicing.get("rules") == "closed":
                self.error(
                    SLICING.id,
                    value.path,
                    f"matches none of the slices of {rule.id}, and the slicing is closed",
                )
        for index, slice_rule in enumerate(rule.slices):
            found = members[index]
            self.cardinality(slice_rule, found, where, len(found))
            self.element(slice_rule, found)

    def matcher(
        self, slice_rule: _Rule, discriminators: list[Any]
    ) -> Callable[[_Value], bool] | None:
        tests: list[Callable[[_Value], bool]] = []
        for discriminator in discriminators:
            if not isinstance(discriminator, dict):
                return None
            kind, path = discriminator.get("type"), discriminator.get("path")
            if not isinstance(path, str):
                return None
            test = self.discriminator(slice_rule, str(kind), path)
            if test is None:
                return None
            tests.append(test)
        return lambda value: all(test(value) for test in tests)

    def discriminator(
        self, slice_rule: _Rule, kind: str, path: str
    ) -> Callable[[_Value], bool] | None:
        target = _rule_at(slice_rule, path)
        if kind in ("value", "pattern"):
            expected: tuple[str, Any] | None = _fixed(target) if target is not None else None
            if expected is None and path == "url" and slice_rule.name.endswith("xtension"):
                url = _extension_url(slice_rule)
                expected = ("fixed", url) if url else None
            if expected is not None:
                pattern = expected[1]
                return lambda v: _any_at(v, path, lambda x: _contains(pattern, x.value))
            binding = target.data.get("binding") if target is not None else None
            if isinstance(binding, dict) and binding.get("strength") == "required":
                vs = binding.get("valueSet")
                codes = _expansion(vs, self.context.conformance) if isinstance(vs, str) else None
                if codes is not None:
                    return lambda v: _any_at(
                        v,
                        path,
                        lambda x: any(_in(codes, s, c) for s, c in (_codings(x) or [])),
                    )
            return None
        if kind == "type" and target is not None:
            allowed = _type_codes(target)
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

    def conforms_test(self, target: _Rule, path: str) -> Callable[[_Value], bool] | None:
        canonicals = [
            p for t in target.data.get("type") or [] if isinstance(t, dict)
            for p in t.get("profile") or [] if isinstance(p, str)
        ]  # fmt: skip
        if not canonicals or any(_profile(c, self.context.conformance) is None for c in canonicals):
            return None
        return lambda v: any(self.conforms(found, canonicals) for found in _descend(v, path) or [])


_RELATIVE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


def _in_bundle(bundle: dict[str, Any], reference: str) -> dict[str, Any] | None:
    """The resource of a Bundle entry a reference names (by fullUrl, or Type/id), if exactly
    one."""
    if bundle.get("resourceType") != "Bundle" or not isinstance(bundle.get("entry"), list):
        return None
    found = []
    relative = _RELATIVE.fullmatch(reference) is not None
    for entry in bundle["entry"]:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        full_url = entry.get("fullUrl")
        if full_url == reference or (
            relative and f"{resource.get('resourceType')}/{resource.get('id')}" == reference
        ):
            found.append(resource)
    return found[0] if len(found) == 1 else None


def _any_at(value: _Value, path: str, test: Callable[[_Value], bool]) -> bool:
    return any(test(v) for v in _descend(value, path) or [] if v.value is not None)


def _rule_at(rule: _Rule, path: str) -> _Rule | None:
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


def _extension_url(slice_rule: _Rule) -> str | None:
    url_rule = slice_rule.children.get("url")
    fixed = _fixed(url_rule) if url_rule is not None else None
    if fixed is not None and isinstance(fixed[1], str):
        return fixed[1]
    for entry in slice_rule.data.get("type") or []:
        profiles = entry.get("profile") if isinstance(entry, dict) else None
        if isinstance(profiles, list) and profiles and isinstance(profiles[0], str):
            return split_canonical(profiles[0])[0]
    return None


def _type_codes(rule: _Rule) -> frozenset[str]:
    codes = {t.get("code") for t in rule.data.get("type") or [] if isinstance(t, dict)}
    valid = {c for c in codes if isinstance(c, str) and c}
    if any("/" in c or c.startswith("System.") for c in valid):
        return frozenset()  # logical-model or FHIRPath system types: not checked
    return frozenset(valid)


def _codings(value: _Value) -> list[tuple[str | None, str]] | None:
    """(system, code) pairs a coded value carries; None when the type is not coded."""
    data = value.value
    if value.type == "code" and isinstance(data, str):
        return [(None, data)]
    if value.type in ("Coding", "Quantity") and isinstance(data, dict):
        code = data.get("code")
        if not isinstance(code, str):
            return None
        system = data.get("system")
        pair: tuple[str | None, str] = (system if isinstance(system, str) else "", code)
        return [pair]
    if value.type == "CodeableConcept" and isinstance(data, dict):
        codings = data.get("coding")
        found: list[tuple[str | None, str]] = [
            (str(c.get("system") or ""), str(c["code"]))
            for c in (codings if isinstance(codings, list) else [])
            if isinstance(c, dict) and isinstance(c.get("code"), str)
        ]
        return found or None  # text alone: not judged
    return None


def _in(codes: dict[str, frozenset[str]], system: str | None, code: str) -> bool:
    if system is None:
        return any(code in c for c in codes.values())
    return code in codes.get(system, frozenset())


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _out_of_range(actual: Any, limit: Any, *, below: bool) -> bool:
    if isinstance(actual, int | float) and not isinstance(actual, bool):
        number, bound = _number(actual), _number(limit)
        if number is None or bound is None or isinstance(limit, str):
            return False
        return number < bound if below else number > bound
    if isinstance(actual, str) and isinstance(limit, str) and len(actual) == len(limit):
        return actual < limit if below else actual > limit  # dates of the same precision
    return False


@cache
def _base_keys() -> frozenset[str]:
    """Constraint keys of R4 itself, which the invariants layer already checks."""
    return frozenset(i.key for i in invariants()) | {"ele-1", "ext-1"}


# FHIRPath functions fhirpathpy lacks or gets wrong (type() names every type "object"):
# a constraint using one is not evaluated.
_UNSUPPORTED = ("type()", "conformsTo(", "memberOf(", "resolve()", "htmlChecks", "%ucum",
                "subsumes", "checkModifiers(")  # fmt: skip

_EXPRESSIONS: dict[str, Callable[..., Any] | None] = {}


def _compiled(expression: str) -> Callable[..., Any] | None:
    if expression not in _EXPRESSIONS:
        try:
            compiled = compile_r4(expression)
        # An expression fhirpathpy cannot parse is not evaluated.
        except Exception:
            compiled = None
        _EXPRESSIONS[expression] = compiled
    return _EXPRESSIONS[expression]


# -- which profiles apply ------------------------------------------------------------------


def _vital_signs_profile(resource: dict[str, Any]) -> str | None:
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    pairs = {
        (c.get("system"), c.get("code"))
        for c in (codings if isinstance(codings, list) else [])
        if isinstance(c, dict)
    }
    for system, url, codes in _VITAL_SIGNS:
        if any(s == system and c in codes for s, c in pairs):
            return url
    return None


def _claimed(resource: dict[str, Any]) -> list[tuple[int, str]]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    if not isinstance(profiles, list):
        return []
    return [(i, p) for i, p in enumerate(profiles) if isinstance(p, str) and p]


def _global_profiles(conformance: Conformance, resource_type: str) -> list[str]:
    found = []
    for guide in conformance.of_type("ImplementationGuide"):
        for item in guide.get("global") or []:
            if isinstance(item, dict) and item.get("type") == resource_type:
                profile = item.get("profile")
                if isinstance(profile, str):
                    found.append(profile)
    return found


def profile_type(canonical: str, conformance: Conformance) -> str | None:
    """The resource or data type the profile ``canonical`` is for; None when it is unknown."""
    if _is_base_type(canonical):
        return split_canonical(canonical)[0][len(_CORE) :]
    profile = _profile(canonical, conformance)
    return profile.type if profile is not None else None


def _requested(context: Context, node: ResourceNode, report: Report) -> list[str]:
    """The profiles the user asked for (``--profile``) that apply to this resource's type."""
    found = []
    for canonical in context.profiles:
        constrained = profile_type(canonical, context.conformance)
        if constrained is None:
            report.add(
                Severity.ERROR,
                UNKNOWN.id,
                f"{node.path}: the profile {canonical} to validate against cannot be found",
                code="not-found",
                expression=node.path,
            )
        elif constrained != node.type:
            report.add(
                Severity.ERROR,
                TYPE.id,
                f"{node.path}: the profile {canonical} is for {constrained}, not {node.type}",
                code="structure",
                expression=node.path,
            )
        elif not _is_base_type(canonical):
            found.append(canonical)
    return found


def check_profiles(tree: Tree, report: Report, context: Context) -> None:
    conformance = context.conformance
    for node in tree.resources:
        data = node.data
        bound: list[tuple[str, bool]] = []  # (canonical, whether its errors reject)
        for index, canonical in _claimed(data):
            if _is_base_type(canonical):
                continue
            if _profile(canonical, conformance) is None:
                report.add(
                    Severity.WARNING,
                    UNKNOWN.id,
                    f"{node.path}.meta.profile[{index}]: the profile {canonical} cannot be "
                    "found, so the resource was not checked against it",
                    code="not-found",
                    expression=f"{node.path}.meta.profile[{index}]",
                )
                continue
            bound.append((canonical, True))
        bound.extend((p, True) for p in _global_profiles(conformance, node.type))
        if node.role == "root":
            bound.extend((p, True) for p in _requested(context, node, report))
        if node.type == "Observation":
            vital = _vital_signs_profile(data)
            if vital is not None:
                bound.append((vital, context.policy.vital_signs_profiles))
        applied: set[str] = set()
        for canonical, rejects in bound:
            profile = _profile(canonical, conformance)
            if profile is None or profile.url in applied or profile.type != node.type:
                continue
            applied.add(profile.url)
            root = _Value(node.path, data, node.type, node.type, node.type, data)
            found = report if rejects else Report()
            _Checker(found, context, profile, data).check(root)
            for issue in found.issues if found is not report else []:
                report.add(
                    Severity.WARNING,
                    issue.rule,
                    issue.message,
                    code=issue.code,
                    expression=issue.expression,
                )
