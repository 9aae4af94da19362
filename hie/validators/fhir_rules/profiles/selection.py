"""Which profiles a resource is checked against, and the layer's entry point.

A resource (the root, a contained one, a Bundle entry) is checked against every profile it is
bound to: those it claims in ``meta.profile``, the global profiles of the ImplementationGuides
loaded with ``--ig``, those the user asks for (``hie validate --profile``, the root only) and,
as HL7's validator does for R4, the vital signs profile its Observation.code names (LOINC
8310-5 → bodytemp, ...). A claimed profile that cannot be found is a warning, as with HL7.
"""

from __future__ import annotations

from typing import Any

from hie.validators.conformance import Conformance, Context, entry_profiles
from hie.validators.fhir_rules.profiles.checker import Checker
from hie.validators.fhir_rules.profiles.definitions import (
    CORE,
    compiled_profile,
    is_base_type,
    profile_type,
)
from hie.validators.fhir_rules.profiles.rules import TYPE, UNKNOWN
from hie.validators.fhir_rules.profiles.values import Value
from hie.validators.fhir_rules.tree import ResourceNode, Tree
from hie.validators.report import Report, Severity

# Observation codes HL7's validator (R4+) checks against the R4 vital signs profiles, in the
# order it tries them: LOINC first, then SNOMED CT. Its SNOMED CT respiratory rate branch names
# no profile (so such an Observation is checked against none), reproduced by ``None``.
_LOINC = "http://loinc.org"


_SCT = "http://snomed.info/sct"


_VITAL_SIGNS: tuple[tuple[str, str | None, frozenset[str]], ...] = tuple(
    (system, None if name is None else CORE + name, frozenset(codes.split()))
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


def _vital_signs_profile(resource: dict[str, Any]) -> str | None:
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    pairs = {
        (c["system"], c["code"])
        for c in (codings if isinstance(codings, list) else [])
        if isinstance(c, dict)
        and isinstance(c.get("system"), str)
        and isinstance(c.get("code"), str)
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
        elif not is_base_type(canonical):
            found.append(canonical)
    return found


def _by_entry_rule(context: Context, node: ResourceNode) -> list[str]:
    """The profiles ``hie validate --bundle-profile`` gives this Bundle entry."""
    if node.parent is None or not context.entry_profiles:
        return []
    bundle = node.parent.data
    entries = bundle.get("entry")
    for position, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, dict) and entry.get("resource") is node.data:
            return entry_profiles(context, bundle, position)
    return []


def check_profiles(tree: Tree, report: Report, context: Context) -> None:
    conformance = context.conformance
    for node in tree.resources:
        data = node.data
        bound: list[tuple[str, bool]] = []  # (canonical, whether its errors reject)
        for index, canonical in _claimed(data):
            if is_base_type(canonical):
                continue
            if compiled_profile(canonical, conformance) is None:
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
        elif node.role == "entry":
            bound.extend((p, True) for p in _by_entry_rule(context, node))
        if node.type == "Observation":
            vital = _vital_signs_profile(data)
            if vital is not None:
                bound.append((vital, context.policy.vital_signs_profiles))
        applied: set[str] = set()
        for canonical, rejects in bound:
            profile = compiled_profile(canonical, conformance)
            if profile is None or profile.url in applied or profile.type != node.type:
                continue
            applied.add(profile.url)
            root = Value(node.path, data, node.type, node.type, node.type, data)
            found = report if rejects else Report()
            Checker(found, context, profile, data).check(root)
            for issue in found.issues if found is not report else []:
                report.add(
                    Severity.WARNING,
                    issue.rule,
                    issue.message,
                    code=issue.code,
                    expression=issue.expression,
                )
