"""A MeasureReport against the Measure it reports on, when that Measure is known; a Measure's
CQL criteria against the libraries it names.

The Measure is found by ``MeasureReport.measure`` among the loaded conformance resources
(``hie validate --ig``) or the report's contained resources (``#id``). Groups, populations and
stratifiers are matched to the Measure's by code (a coding with the same system and code, or the
same text when neither has codings), as HL7's validator does; the Measure's scoring decides
whether a group has a measureScore.

A Measure criterion in CQL (``text/cql``, ``text/cql.identifier``) written ``Library.Name``, where
``Library`` is the name of a Library of ``Measure.library`` loaded here, must name a definition
of that library (its ELM, else its CQL source): HL7's validator reports "The function ... does
not exist in the library". A criterion naming a library not loaded is not judged.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from decimal import Decimal
from typing import Any

from hie.validators.conformance import Context
from hie.validators.fhir_rules.shapes import objects
from hie.validators.fhir_rules.tree import ResourceNode, Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register
from hie.validators.xml import parse_xml

GROUP = register(
    "fhir.measure.group",
    summary="Each group of a MeasureReport has a code matching one group of its Measure, once, "
    "and every group of the Measure is reported (a Measure with one group may be reported by "
    "one group without a code).",
    fix="Copy each group's code from the Measure's group.code, report each group once, and add "
    "the groups left out (or use type data-collection).",
)
POPULATION = register(
    "fhir.measure.population",
    summary="Each population of a MeasureReport group has a code matching a population of the "
    "Measure's group, once, and every population of the Measure's group is reported.",
    fix="Copy population codes from the Measure (measure-population codes such as "
    "initial-population, numerator), once each, and report each population the Measure defines.",
)
STRATIFIER = register(
    "fhir.measure.stratifier",
    summary="Each stratifier of a MeasureReport group has a code matching a stratifier of the "
    "Measure's group, once, and every stratifier of the Measure's group is reported.",
    fix="Give each reported stratifier the code of the Measure's stratifier (give the Measure's "
    "stratifiers codes if they have none), and report each one.",
)
SUBJECTS = register(
    "fhir.measure.subjects",
    summary="A population lists subjects (subjectResults) only in a subject-list report, and "
    "there its count is the number of subjects listed.",
    fix="Set type to subject-list when sending subjectResults, or leave them out; make count "
    "agree with the subjects listed.",
)
SCORE = register(
    "fhir.measure.score",
    summary="A group has a measureScore when its Measure's scoring is proportion, ratio or "
    "continuous-variable, and none for cohort scoring or a data-collection report; a proportion "
    "lies between 0 and 1.",
    fix="Send measureScore.value for proportion, ratio and continuous-variable measures (0-1 "
    "for proportion, without a unit) and leave it out for cohort measures and data-collection "
    "reports.",
)

CRITERIA = register(
    "fhir.measure.criteria",
    summary="A Measure's CQL criterion Library.Name names a definition (define) of that library "
    "when the library is known (Measure.library, loaded with --ig).",
    fix="Correct the expression to a definition of the library, or add the definition to the "
    "library's CQL and its ELM.",
)

_SCORING = "http://terminology.hl7.org/CodeSystem/measure-scoring"
_POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"


def check_measures(tree: Tree, report: Report, context: Context) -> None:
    for resource in tree.resources:
        if resource.type == "Measure":
            _criteria(resource, context, report)
        if resource.type == "MeasureReport":
            measure = _measure(resource, context)
            if measure is not None:
                _report(resource, measure, report)


def _measure(resource: ResourceNode, context: Context) -> dict[str, Any] | None:
    canonical = resource.data.get("measure")
    if not isinstance(canonical, str) or not canonical:
        return None
    if canonical.startswith("#"):
        contained = resource.data.get("contained")
        for item in contained if isinstance(contained, list) else []:
            if (
                isinstance(item, dict)
                and item.get("resourceType") == "Measure"
                and item.get("id") == canonical[1:]
            ):
                return item
        return None
    return context.conformance.resolve(canonical, "Measure")


_CQL = ("text/cql", "text/cql.identifier", "text/cql-identifier")
_ELM = "urn:hl7-org:elm:r1"
_DEFINE = re.compile(
    r'^\s*define\s+(?:(?:public|private)\s+)?(?:fluent\s+)?(?:function\s+)?("[^"]+"|\w+)', re.M
)


def _definitions(library: dict[str, Any]) -> set[str] | None:
    """The names a Library defines, from its ELM (XML or JSON), else its CQL; None when it has
    neither in a form read here."""
    sources: dict[str, bytes] = {}
    for content in objects(library.get("content")):
        kind, data = content.get("contentType"), content.get("data")
        if isinstance(kind, str) and isinstance(data, str):
            try:
                sources.setdefault(kind.split(";")[0].strip(), base64.b64decode(data))
            except (binascii.Error, ValueError):
                continue
    if "application/elm+xml" in sources:
        tree = parse_xml(sources["application/elm+xml"]).tree
        if tree is not None:
            return {
                str(d.get("name"))
                for d in tree.getroot().iter(f"{{{_ELM}}}def")
                if d.get("name") is not None
            }
    if "application/elm+json" in sources:
        try:
            elm = json.loads(sources["application/elm+json"])
            defs = elm["library"]["statements"]["def"]
            return {d["name"] for d in defs if isinstance(d, dict) and "name" in d}
        except (ValueError, KeyError, TypeError):
            pass
    if "text/cql" in sources:
        text = sources["text/cql"].decode("utf-8", "replace")
        return {name.strip('"') for name in _DEFINE.findall(text)}
    return None


def _criteria(resource: ResourceNode, context: Context, report: Report) -> None:
    libraries: dict[str, tuple[str, dict[str, Any]]] = {}
    for canonical in resource.data.get("library") or []:
        library = (
            context.conformance.resolve(canonical, "Library")
            if isinstance(canonical, str)
            else None
        )
        if library is not None and isinstance(library.get("name"), str):
            libraries[library["name"]] = (canonical, library)
    if not libraries:
        return
    places: list[tuple[str, Any]] = []
    for g, group in enumerate(objects(resource.data.get("group"))):
        where = f"{resource.path}.group[{g}]"
        for p, population in enumerate(objects(group.get("population"))):
            places.append((f"{where}.population[{p}].criteria", population.get("criteria")))
        for s, stratifier in enumerate(objects(group.get("stratifier"))):
            places.append((f"{where}.stratifier[{s}].criteria", stratifier.get("criteria")))
            for c, component in enumerate(objects(stratifier.get("component"))):
                at = f"{where}.stratifier[{s}].component[{c}].criteria"
                places.append((at, component.get("criteria")))
    for d, data in enumerate(objects(resource.data.get("supplementalData"))):
        places.append((f"{resource.path}.supplementalData[{d}].criteria", data.get("criteria")))
    for path, criterion in places:
        if not isinstance(criterion, dict) or criterion.get("language") not in _CQL:
            continue
        expression = criterion.get("expression")
        if not isinstance(expression, str) or "." not in expression:
            continue
        name, definition = expression.split(".", 1)
        if name.strip('"') not in libraries:
            continue
        canonical, library = libraries[name.strip('"')]
        defined = _definitions(library)
        if defined is not None and definition.strip('"') not in defined:
            _error(
                report,
                CRITERIA.id,
                path,
                f"{definition.strip(chr(34))} is not defined in the library {canonical}",
            )


def _codings(concept: Any) -> set[tuple[str, str]]:
    if not isinstance(concept, dict):
        return set()
    return {
        (c["system"], c["code"])
        for c in objects(concept.get("coding"))
        if isinstance(c.get("system"), str) and isinstance(c.get("code"), str)
    }


def _matches(reported: Any, defined: Any) -> bool:
    """HL7's code match: a shared system and code, or the same text when neither has codings."""
    if not isinstance(reported, dict) or not isinstance(defined, dict):
        return False
    if _codings(reported) & _codings(defined):
        return True
    if not objects(reported.get("coding")) and not objects(defined.get("coding")):
        text = reported.get("text")
        return isinstance(text, str) and text == defined.get("text")
    return False


def _shown(concept: Any) -> str:
    if not isinstance(concept, dict):
        return "''"
    codes = sorted(f"{s}#{c}" for s, c in _codings(concept))
    return ", ".join(codes) if codes else repr(concept.get("text") or "")


def _scoring(measure: dict[str, Any]) -> str | None:
    for system, code in _codings(measure.get("scoring")):
        if system == _SCORING:
            return code
    return None


def _error(report: Report, rule: str, path: str, message: str) -> None:
    report.add(Severity.ERROR, rule, f"{path}: {message}", code="business-rule", expression=path)


def _report(resource: ResourceNode, measure: dict[str, Any], report: Report) -> None:
    data = resource.data
    url = data.get("measure")
    groups = objects(data.get("group"))
    defined = objects(measure.get("group"))
    kind = data.get("type")
    scoring = _scoring(measure)
    contained = objects(data.get("contained"))
    if len(groups) == 1 and len(defined) == 1:
        group, definition = groups[0], defined[0]
        path = f"{resource.path}.group[0]"
        if (
            "code" in definition
            and "code" in group
            and not _matches(group["code"], definition["code"])
        ):
            _error(
                report,
                GROUP.id,
                path,
                f"the group's code {_shown(group['code'])} is not the code of the Measure's "
                f"group ({_shown(definition['code'])})",
            )
        _group(group, definition, path, kind, scoring, contained, report)
        return
    seen: list[int] = []
    for index, group in enumerate(groups):
        path = f"{resource.path}.group[{index}]"
        match = next(
            (i for i, d in enumerate(defined) if _matches(group.get("code"), d.get("code"))), None
        )
        if match is None:
            _error(
                report,
                GROUP.id,
                path,
                f"the group's code {_shown(group.get('code'))} matches no group of the Measure "
                f"{url} (which has {len(defined)})",
            )
        elif match in seen:
            _error(report, GROUP.id, path, "the Measure's group with this code is reported twice")
        else:
            seen.append(match)
            _group(group, defined[match], path, kind, scoring, contained, report)
    if kind != "data-collection":
        for index, definition in enumerate(defined):
            if index not in seen:
                _error(
                    report,
                    GROUP.id,
                    resource.path,
                    f"the Measure's group {_shown(definition.get('code'))} is not reported",
                )


def _group(
    group: dict[str, Any],
    definition: dict[str, Any],
    path: str,
    kind: Any,
    scoring: str | None,
    contained: list[dict[str, Any]],
    report: Report,
) -> None:
    populations = objects(definition.get("population"))
    seen: list[int] = []
    for index, population in enumerate(objects(group.get("population"))):
        where = f"{path}.population[{index}]"
        match = next(
            (
                i
                for i, d in enumerate(populations)
                if _codings(population.get("code")) & _codings(d.get("code"))
            ),
            None,
        )
        if match is None:
            _error(
                report,
                POPULATION.id,
                where,
                f"the population code {_shown(population.get('code'))} is not a population of "
                "the Measure's group",
            )
            continue
        if match in seen:
            _error(report, POPULATION.id, where, "this population is reported twice")
            continue
        seen.append(match)
        _subjects(population, where, kind, contained, report)
    for index, population in enumerate(populations):
        observation = (_POPULATION, "measure-observation") in _codings(population.get("code"))
        if index not in seen and not observation:
            _error(
                report,
                POPULATION.id,
                path,
                f"the Measure's population {_shown(population.get('code'))} is not reported",
            )
    _score(group, path, kind, scoring, report)
    _stratifiers(group, definition, path, report)


def _subjects(
    population: dict[str, Any],
    path: str,
    kind: Any,
    contained: list[dict[str, Any]],
    report: Report,
) -> None:
    subjects = population.get("subjectResults")
    if subjects is None:
        return
    if kind != "subject-list":
        _error(
            report,
            SUBJECTS.id,
            path,
            f"a {kind or 'untyped'} report lists no subjects (subjectResults); only a "
            "subject-list report does",
        )
        return
    listed = _listed(subjects, contained)
    count = population.get("count")
    countable = isinstance(count, int) and not isinstance(count, bool)
    if listed is not None and countable and count != listed:
        _error(
            report,
            SUBJECTS.id,
            path,
            f"count is {count} but subjectResults lists {listed} subject(s)",
        )


def _listed(subjects: Any, contained: list[dict[str, Any]]) -> int | None:
    """How many subjects subjectResults names: the entries of a contained List, or one when it
    names a single resource that is not a List; None when that cannot be told here."""
    reference = subjects.get("reference") if isinstance(subjects, dict) else None
    if not isinstance(reference, str):
        return None
    if reference.startswith("#"):
        for item in contained:
            if item.get("id") == reference[1:] and item.get("resourceType") == "List":
                return len(objects(item.get("entry")))
        return None
    kind = reference.rstrip("/").split("/")[-2] if reference.count("/") >= 1 else None
    return 1 if kind is not None and kind != "List" and kind[:1].isupper() else None


def _score(
    group: dict[str, Any], path: str, kind: Any, scoring: str | None, report: Report
) -> None:
    score = group.get("measureScore")
    if kind == "data-collection" or scoring == "cohort":
        if score is not None:
            why = "a data-collection report" if kind == "data-collection" else "cohort scoring"
            _error(report, SCORE.id, f"{path}.measureScore", f"{why} has no measureScore")
        return
    if scoring not in ("proportion", "ratio", "continuous-variable"):
        return
    if not isinstance(score, dict):
        _error(report, SCORE.id, path, f"a {scoring} measure's group needs a measureScore")
        return
    value = score.get("value")
    if scoring == "proportion" and isinstance(value, int | float | Decimal) and not 0 <= value <= 1:
        _error(
            report,
            SCORE.id,
            f"{path}.measureScore.value",
            f"a proportion score lies between 0 and 1, not {value}",
        )


def _stratifiers(
    group: dict[str, Any], definition: dict[str, Any], path: str, report: Report
) -> None:
    stratifiers = objects(definition.get("stratifier"))
    seen: list[int] = []
    for index, stratifier in enumerate(objects(group.get("stratifier"))):
        where = f"{path}.stratifier[{index}]"
        codes = objects(stratifier.get("code"))
        match = next(
            (
                i
                for i, d in enumerate(stratifiers)
                if any(_matches(code, d.get("code")) for code in codes)
            ),
            None,
        )
        if match is None:
            _error(
                report,
                STRATIFIER.id,
                where,
                "the stratifier has no code matching a stratifier of the Measure's group",
            )
        elif match in seen:
            _error(report, STRATIFIER.id, where, "this stratifier is reported twice")
        else:
            seen.append(match)
    for index, stratifier in enumerate(stratifiers):
        if index not in seen:
            ident = f" (id {stratifier['id']})" if isinstance(stratifier.get("id"), str) else ""
            _error(
                report,
                STRATIFIER.id,
                path,
                f"the Measure's stratifier {_shown(stratifier.get('code'))}{ident} is not reported",
            )
