"""Parameterised value sets: filter values computed from the value set's declared parameters.

A ValueSet declares its parameters with the tools extension ``valueset-parameter`` (a ``name``
and its documentation); a compose filter's value can then be a FHIRPath expression
(``cqf-expression`` on ``filter.value``) over those parameters (``%name``). The expression must be
FHIRPath, must parse, and may only name declared parameters; a declared parameter no filter uses
is worth a warning.
"""

from __future__ import annotations

import re
from typing import Any

from hie.validators.fhir_rules.fhirpath import compile_r4
from hie.validators.fhir_rules.shapes import indexed_objects, objects
from hie.validators.fhir_rules.tree import Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

PARAMETER_EXTENSION = "http://hl7.org/fhir/tools/StructureDefinition/valueset-parameter"
EXPRESSION_EXTENSION = "http://hl7.org/fhir/StructureDefinition/cqf-expression"
FHIRPATH = "text/fhirpath"

EXPRESSION = register(
    "fhir.value-set.parameter-expression",
    summary="A value set filter's expression is FHIRPath that parses and names only the value "
    "set's declared parameters (%name).",
    fix="Write the expression in FHIRPath (language text/fhirpath), fix its syntax, and declare "
    "every %name it uses with the valueset-parameter extension.",
)
UNUSED = register(
    "fhir.value-set.parameter-unused",
    summary="Each declared value set parameter is used by a filter expression.",
    fix="Use the parameter in a filter expression (%name), or remove its declaration.",
)

_VARIABLE = re.compile(r"%([A-Za-z][A-Za-z0-9_\-]*)")


def _declared(value_set: dict[str, Any]) -> list[str]:
    names = []
    for extension in objects(value_set.get("extension")):
        if extension.get("url") != PARAMETER_EXTENSION:
            continue
        for part in objects(extension.get("extension")):
            name = part.get("valueCode")
            if part.get("url") == "name" and isinstance(name, str):
                names.append(name)
    return names


def _expressions(value_set: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    """(location, Expression) of every filter value given as an expression."""
    found: list[tuple[str, dict[str, Any]]] = []
    compose = value_set.get("compose")
    if not isinstance(compose, dict):
        return found
    for part in ("include", "exclude"):
        for i, include in indexed_objects(compose.get(part)):
            for f, filter_ in indexed_objects(include.get("filter")):
                primitive = filter_.get("_value")
                extensions = primitive.get("extension") if isinstance(primitive, dict) else None
                for e, extension in indexed_objects(extensions):
                    expression = extension.get("valueExpression")
                    if extension.get("url") == EXPRESSION_EXTENSION and isinstance(
                        expression, dict
                    ):
                        where = f"{path}.compose.{part}[{i}].filter[{f}].extension[{e}]"
                        found.append((f"{where}.value.ofType(Expression)", expression))
    return found


def check_value_set_parameters(tree: Tree, report: Report) -> None:
    for resource in tree.resources:
        if resource.type != "ValueSet":
            continue
        declared = _declared(resource.data)
        expressions = _expressions(resource.data, resource.path)
        if not declared and not expressions:
            continue
        used: set[str] = set()
        for where, expression in expressions:
            used |= _check(expression, declared, where, report)
        for name in declared:
            if name not in used:
                report.add(
                    Severity.WARNING,
                    UNUSED.id,
                    f"{resource.path}: the value set parameter {name!r} is not used",
                    code="business-rule",
                    expression=resource.path,
                )


def _check(expression: dict[str, Any], declared: list[str], where: str, report: Report) -> set[str]:
    language = expression.get("language")
    text = expression.get("expression")
    if language != FHIRPATH:
        report.add(
            Severity.ERROR,
            EXPRESSION.id,
            f"{where}: a value set filter expression is FHIRPath ({FHIRPATH}), not {language}",
            code="invalid",
            expression=where,
        )
        return set()
    if not isinstance(text, str):
        return set()
    names = set(_VARIABLE.findall(text))
    for name in sorted(names - set(declared)):
        report.add(
            Severity.ERROR,
            EXPRESSION.id,
            f"{where}: the expression {text!r} names %{name}, which is not a parameter of this "
            "value set",
            code="invalid",
            expression=where,
        )
    try:
        compile_r4(text)
    except Exception as exc:  # fhirpathpy raises assorted errors on bad syntax
        report.add(
            Severity.ERROR,
            EXPRESSION.id,
            f"{where}: the expression {text!r} is not valid FHIRPath ({type(exc).__name__})",
            code="invalid",
            expression=where,
        )
    return names
