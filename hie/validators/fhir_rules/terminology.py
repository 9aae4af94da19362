"""The rules of terminology resources themselves: CodeSystem, ValueSet and ConceptMap.

What HL7's validator checks in them without a terminology server: a CodeSystem's content mode
agrees with its concepts (no concepts when 'not-present'; a supplement says 'supplement' and only
adds to codes its base defines), its properties are declared once with the types the standard
concept properties have and its concepts' property values have the declared types; a ValueSet
names code systems by absolute URL and its filters' values fit their properties; a ConceptMap maps
codes of its source value set. Code systems other than HL7's own and those loaded with ``--ig``
(SNOMED CT, LOINC, ...) are not decided here.
"""

from __future__ import annotations

import re
from typing import Any

from hie.validators.conformance import Context
from hie.validators.fhir_rules.bindings import (
    SNOMED,
    code_systems,
    snomed_id_error,
    snomed_id_problem,
)
from hie.validators.fhir_rules.tree import ResourceNode, Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

CONTENT = register(
    "fhir.terminology.content",
    summary="A CodeSystem's content agrees with what it holds: no concepts when content is "
    "'not-present'; a supplement (CodeSystem.supplements) has content 'supplement' and only "
    "codes its base code system defines.",
    fix="Set content to what the resource holds ('complete', 'fragment', 'example'), or remove "
    "the concepts; for a supplement set content to 'supplement' and keep only codes of the "
    "code system it supplements.",
)
PROPERTY = register(
    "fhir.terminology.property",
    summary="A CodeSystem declares each property once (by code and by URI), a standard concept "
    "property (http://hl7.org/fhir/concept-properties#...) with its standard code and type, and "
    "every concept's property value has the declared type.",
    fix="Remove the duplicate declaration; give a standard property URI its standard code and "
    "type (e.g. notSelectable: boolean, deprecationDate: dateTime); write each concept's value "
    "as value<Type> of the declared type.",
)
INCLUDE_SYSTEM = register(
    "fhir.terminology.include-system",
    summary="ValueSet.compose.include.system and exclude.system are absolute URIs.",
    fix="Use the code system's canonical URL; for a contained CodeSystem, use its full URL and "
    "point to it with the http://hl7.org/fhir/StructureDefinition/valueset-system extension.",
)
FILTER = register(
    "fhir.terminology.filter",
    summary="A ValueSet filter's value fits its property: 'true' or 'false' for a boolean "
    "property (notSelectable, inactive), system(|version)#code of a known code for a Coding "
    "property, a code of the code system for a hierarchy filter on 'concept', a SNOMED CT "
    "expression constraint (ECL) for SNOMED CT's 'constraint' (parsed offline without "
    "refinements).",
    fix="Write the value as the property's type requires (true/false, "
    "http://example.org/cs#code, << 404684003 |Clinical finding|) and check that the code "
    "exists in that code system.",
)
CONCEPT_MAP_SOURCE = register(
    "fhir.terminology.concept-map-source",
    summary="A ConceptMap maps codes of its source value set: every group.element.code of the "
    "group's source system is in that value set.",
    fix="Remove the element for a code the source value set does not contain, or add the code "
    "to the value set.",
)

_CONCEPT_PROPERTIES = "http://hl7.org/fhir/concept-properties#"
# The standard concept properties and their types (http://hl7.org/fhir/concept-properties).
STANDARD_PROPERTIES = {
    "status": "code",
    "inactive": "boolean",
    "effectiveDate": "dateTime",
    "deprecationDate": "dateTime",
    "retirementDate": "dateTime",
    "notSelectable": "boolean",
    "parent": "code",
    "child": "code",
    "partOf": "code",
    "synonym": "code",
    "comment": "string",
    "itemWeight": "decimal",
}
_ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_CODING_VALUE = re.compile(r"^(?P<system>[^|#\s]+)(\|[^#]+)?#(?P<code>.+)$")
_HIERARCHY_OPS = ("is-a", "is-not-a", "descendent-of", "generalizes")


def _objects(value: Any) -> list[tuple[int, dict[str, Any]]]:
    return (
        [(i, v) for i, v in enumerate(value) if isinstance(v, dict)]
        if isinstance(value, list)
        else []
    )


def _concepts(concepts: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    """(location, concept) of every concept, nested ones included."""
    found: list[tuple[str, dict[str, Any]]] = []
    for index, concept in _objects(concepts):
        where = f"{path}[{index}]"
        found.append((where, concept))
        found += _concepts(concept.get("concept"), f"{where}.concept")
    return found


def _codes_of(system: str, context: Context) -> set[str] | None:
    """The codes of ``system`` when it is known in full (HL7's own or loaded and complete)."""
    known = code_systems().get(system)
    if known is not None:
        return set(known.names)
    loaded = context.conformance.resolve(system, "CodeSystem")
    if loaded is None or loaded.get("content") != "complete" or "supplements" in loaded:
        return None
    return {
        c["code"] for _, c in _concepts(loaded.get("concept"), "") if isinstance(c.get("code"), str)
    }


def _error(report: Report, rule: str, where: str, message: str) -> None:
    report.add(Severity.ERROR, rule, f"{where}: {message}", code="business-rule", expression=where)


def _check_content(resource: ResourceNode, context: Context, report: Report) -> None:
    data, path = resource.data, resource.path
    concepts = _concepts(data.get("concept"), f"{path}.concept")
    content = data.get("content")
    if content == "not-present" and concepts:
        _error(
            report,
            CONTENT.id,
            concepts[0][0],
            "the code system says its content is not present (content 'not-present'), but it "
            "has concepts",
        )
    base = data.get("supplements")
    if not isinstance(base, str):
        return
    if content != "supplement":
        _error(
            report,
            CONTENT.id,
            f"{path}.content",
            f"the code system supplements {base}, so its content must be 'supplement', not "
            f"{content!r}",
        )
    codes = _codes_of(base.partition("|")[0], context)
    if codes is None:
        return
    for where, concept in concepts:
        code = concept.get("code")
        if isinstance(code, str) and code not in codes:
            _error(
                report,
                CONTENT.id,
                where,
                f"the code {code!r} is not defined in the base code system {base}, so a "
                "supplement cannot add to it",
            )


def _check_properties(resource: ResourceNode, report: Report) -> None:
    data, path = resource.data, resource.path
    declared: dict[str, str] = {}  # code -> type, as first declared
    uris: set[str] = set()
    for index, prop in _objects(data.get("property")):
        where = f"{path}.property[{index}]"
        code, uri, type_ = prop.get("code"), prop.get("uri"), prop.get("type")
        if not isinstance(code, str):
            continue
        if code in declared:
            _error(report, PROPERTY.id, where, f"a property with the code {code!r} is declared "
                   "already")  # fmt: skip
            continue
        declared[code] = type_ if isinstance(type_, str) else ""
        if not isinstance(uri, str):
            if code in STANDARD_PROPERTIES and type_ != STANDARD_PROPERTIES[code]:
                report.add(
                    Severity.WARNING,
                    PROPERTY.id,
                    f"{where}: the standard property {code!r} has the type "
                    f"{STANDARD_PROPERTIES[code]!r}, not {type_!r}",
                    code="business-rule",
                    expression=where,
                )
            continue
        if uri in uris:
            _error(report, PROPERTY.id, where, f"a property with the URI {uri} is declared already")
            continue
        uris.add(uri)
        standard = (
            uri.removeprefix(_CONCEPT_PROPERTIES) if uri.startswith(_CONCEPT_PROPERTIES) else None
        )
        if standard not in STANDARD_PROPERTIES:
            continue
        if code != standard:
            _error(
                report,
                PROPERTY.id,
                where,
                f"the URI {uri} is the standard property {standard!r}; give it that code, not "
                f"{code!r} (value set filters use the code)",
            )
        if type_ != STANDARD_PROPERTIES[standard]:
            _error(
                report,
                PROPERTY.id,
                where,
                f"the type {type_!r} is wrong: the URI {uri} identifies a property of type "
                f"{STANDARD_PROPERTIES[standard]!r}",
            )
    for where, concept in _concepts(data.get("concept"), f"{path}.concept"):
        for index, value in _objects(concept.get("property")):
            code = value.get("code")
            wanted = declared.get(code) if isinstance(code, str) else None
            given = next((k[5:] for k in value if k.startswith("value") and len(k) > 5), None)
            # valueCoding is a "Coding", valueBoolean a "boolean": the key capitalises the type
            if not wanted or given is None or given.lower() == wanted.lower():
                continue
            actual = given if given == "Coding" else given[0].lower() + given[1:]
            _error(
                report,
                PROPERTY.id,
                f"{where}.property[{index}]",
                f"the property {code!r} is declared with the type {wanted!r}, but this value is "
                f"a {actual!r}",
            )


def _declared_types(system: str, context: Context) -> dict[str, str]:
    loaded = context.conformance.resolve(system, "CodeSystem")
    if loaded is None:
        return {}
    return {
        p["code"]: p["type"]
        for _, p in _objects(loaded.get("property"))
        if isinstance(p.get("code"), str) and isinstance(p.get("type"), str)
    }


# SNOMED CT Expression Constraint Language, the part without refinements, dotted attributes,
# filters or alternate identifiers (those are left to a terminology server): concept references
# (an id, optionally with |term|), *, constraint operators, ^ (member of), parentheses, and
# AND, OR, MINUS or a comma between sub-expressions (ECL 2.x, brief syntax).
_ECL_TERM = re.compile(r"\|[^|]*\|")
_ECL_TOKEN = re.compile(
    r"\s*(<<!|<!|<<|<|>>!|>!|>>|>|!!<|!!>|\^|\*|\(|\)|,|\d{6,18}|AND\b|OR\b|MINUS\b)", re.I
)
# Refinements, dots, filters, cardinalities, concrete values, and operators in their long form
# (descendantOf, memberOf, ...): left to a terminology server.
_ECL_UNJUDGED = re.compile(r"[:.{}\[\]=#@\"']|\b(?!(?:AND|OR|MINUS)\b)[A-Za-z]+", re.I)
_ECL_OPERATORS = {"<<!", "<!", "<<", "<", ">>!", ">!", ">>", ">", "!!<", "!!>"}


def ecl_problem(expression: str) -> str | None:
    """Why ``expression`` is not ECL, or None when it is (or is beyond the part read here)."""
    text = _ECL_TERM.sub(" ", expression)
    if _ECL_UNJUDGED.search(text):
        return None
    tokens: list[str] = []
    position = 0
    while text[position:].strip():
        match = _ECL_TOKEN.match(text, position)
        if match is None:
            return f"unexpected text at {text[position:].strip()[:20]!r}"
        tokens.append(match[1].upper())
        position = match.end()
    at = 0

    def sub() -> bool:
        nonlocal at
        if at < len(tokens) and tokens[at] in _ECL_OPERATORS:
            at += 1
        if at < len(tokens) and tokens[at] == "^":
            at += 1
        if at < len(tokens) and (tokens[at] == "*" or tokens[at].isdigit()):
            at += 1
            return True
        if at < len(tokens) and tokens[at] == "(":
            at += 1
            if not compound() or at >= len(tokens) or tokens[at] != ")":
                return False
            at += 1
            return True
        return False

    def compound() -> bool:
        nonlocal at
        if not sub():
            return False
        while at < len(tokens) and tokens[at] in ("AND", "OR", "MINUS", ","):
            at += 1
            if not sub():
                return False
        return True

    if not compound() or at != len(tokens):
        shown = tokens[at] if at < len(tokens) else "the end"
        return f"parse error at {shown!r}"
    return None


def _check_filter(
    where: str, system: str, filter_: dict[str, Any], context: Context, report: Report
) -> None:
    prop, value, op = filter_.get("property"), filter_.get("value"), filter_.get("op")
    if not isinstance(prop, str) or not isinstance(value, str):
        return
    if system == SNOMED and prop in ("constraint", "expression") and op == "=":
        if (problem := ecl_problem(value)) is not None:
            _error(
                report,
                FILTER.id,
                where,
                f"the filter value {value!r} is not a valid SNOMED CT expression constraint "
                f"(ECL): {problem}",
            )
        return
    type_ = _declared_types(system, context).get(prop)
    if type_ is None and prop in ("notSelectable", "inactive"):
        type_ = "boolean"
    if type_ == "boolean" and value not in ("true", "false"):
        _error(
            report,
            FILTER.id,
            where,
            f"a filter on the property {prop!r} has the value 'true' or 'false', not {value!r}",
        )
    elif type_ == "Coding":
        match = _CODING_VALUE.match(value)
        if match is None:
            _error(
                report,
                FILTER.id,
                where,
                f"a filter on the property {prop!r} (a Coding) has a value written "
                f"system(|version)#code, not {value!r}",
            )
            return
        codes = _codes_of(match["system"], context)
        if codes is not None and match["code"] not in codes:
            _error(
                report,
                FILTER.id,
                where,
                f"the filter value {value!r} is not a valid code: {match['code']!r} is not in "
                f"the code system {match['system']}",
            )
    elif prop == "concept" and op in _HIERARCHY_OPS:
        known = code_systems().get(system)
        if known is not None and value not in known.names:
            _error(
                report,
                FILTER.id,
                where,
                f"a filter on 'concept' has a code of {system} as its value, and {value!r} is not "
                "one",
            )


def _check_compose(resource: ResourceNode, context: Context, report: Report) -> None:
    compose = resource.data.get("compose")
    if not isinstance(compose, dict):
        return
    for part in ("include", "exclude"):
        for index, include in _objects(compose.get(part)):
            where = f"{resource.path}.compose.{part}[{index}]"
            system = include.get("system")
            if not isinstance(system, str):
                continue
            if not _ABSOLUTE_URI.match(system):
                _error(
                    report,
                    INCLUDE_SYSTEM.id,
                    where,
                    f"the system {system!r} is not an absolute URI; for a contained code "
                    "system, use its full URL and the "
                    "http://hl7.org/fhir/StructureDefinition/valueset-system extension",
                )
                continue
            for position, filter_ in _objects(include.get("filter")):
                _check_filter(f"{where}.filter[{position}]", system, filter_, context, report)
            if system == SNOMED:
                for position, concept in _objects(include.get("concept")):
                    code = concept.get("code")
                    if not isinstance(code, str):
                        continue
                    if (problem := snomed_id_problem(code)) is not None:
                        snomed_id_error(
                            f"{where}.concept[{position}]", code, problem, report, context
                        )


def _value_set_codes(value_set: dict[str, Any], system: str, context: Context) -> set[str] | None:
    """The codes of ``system`` that ``value_set`` includes, None when not decidable here."""
    compose = value_set.get("compose")
    if not isinstance(compose, dict) or compose.get("exclude"):
        return None
    codes: set[str] = set()
    for _, include in _objects(compose.get("include")):
        if include.get("valueSet"):
            return None
        if include.get("system") != system:
            continue
        if include.get("filter"):
            return None
        concepts = include.get("concept")
        if concepts:
            codes |= {c["code"] for _, c in _objects(concepts) if isinstance(c.get("code"), str)}
            continue
        whole = _codes_of(system, context)
        if whole is None:
            return None
        codes |= whole
    return codes


def _check_concept_map(resource: ResourceNode, context: Context, report: Report) -> None:
    data = resource.data
    source = data.get("sourceCanonical") or data.get("sourceUri")
    value_set = context.conformance.resolve(source, "ValueSet") if isinstance(source, str) else None
    if value_set is None:
        return
    for index, group in _objects(data.get("group")):
        system = group.get("source")
        if not isinstance(system, str):
            continue
        codes = _value_set_codes(value_set, system, context)
        if codes is None:
            continue
        for position, element in _objects(group.get("element")):
            code = element.get("code")
            if isinstance(code, str) and code not in codes:
                where = f"{resource.path}.group[{index}].element[{position}].code"
                _error(
                    report,
                    CONCEPT_MAP_SOURCE.id,
                    where,
                    f"the source code {code!r} is not in the source value set {source}",
                )


def check_terminology(tree: Tree, report: Report, context: Context) -> None:
    for resource in tree.resources:
        if resource.type == "CodeSystem":
            _check_content(resource, context, report)
            _check_properties(resource, report)
        elif resource.type == "ValueSet":
            _check_compose(resource, context, report)
        elif resource.type == "ConceptMap":
            _check_concept_map(resource, context, report)
