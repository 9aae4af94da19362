"""Search parameters as CapabilityStatements and derived SearchParameters claim them.

A server's CapabilityStatement that names a search parameter's definition must give it that
definition's type; a SearchParameter derived from another (``derivedFrom``) keeps its type and
may only narrow its base resource types; a composite parameter combines two or more. The
definitions are R4's own (``schemas/fhir/search-parameters.json``) or loaded with ``--ig``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from hie.resources import schemas_dir
from hie.validators.conformance import Context, split_canonical
from hie.validators.fhir_rules.shapes import indexed_objects
from hie.validators.fhir_rules.tree import Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

TYPE = register(
    "fhir.search.type",
    summary="A search parameter keeps the type of its definition: a CapabilityStatement's "
    "searchParam.type is the type of the SearchParameter its definition names, and a "
    "SearchParameter's type is the type of the one it is derivedFrom.",
    fix="Use the definition's type (e.g. token for AllergyIntolerance-clinical-status), or point "
    "definition/derivedFrom at a parameter of the type you mean.",
)
BASE = register(
    "fhir.search.base",
    summary="A SearchParameter derived from another applies only to resource types that one "
    "applies to.",
    fix="Keep base to the resource types of the derivedFrom parameter, or define a new "
    "parameter without derivedFrom.",
)
COMPOSITE = register(
    "fhir.search.composite",
    summary="A composite SearchParameter defines two or more components.",
    fix="List each combined parameter in component (definition and expression), or give the "
    "parameter a non-composite type.",
)


@cache
def _core() -> dict[str, dict[str, Any]]:
    data = json.loads((schemas_dir() / "fhir" / "search-parameters.json").read_text("utf-8"))
    parameters: dict[str, dict[str, Any]] = data["parameters"]
    return parameters


def _definition(canonical: Any, context: Context) -> dict[str, Any] | None:
    if not isinstance(canonical, str):
        return None
    loaded = context.conformance.resolve(canonical, "SearchParameter")
    if loaded is not None:
        return loaded
    return _core().get(split_canonical(canonical)[0])


def check_search_parameters(tree: Tree, report: Report, context: Context) -> None:
    for resource in tree.resources:
        if resource.type == "CapabilityStatement":
            _capability_statement(resource.data, resource.path, report, context)
        elif resource.type == "SearchParameter":
            _search_parameter(resource.data, resource.path, report, context)


def _capability_statement(
    data: dict[str, Any], path: str, report: Report, context: Context
) -> None:
    for r, rest in indexed_objects(data.get("rest")):
        for s, resource in indexed_objects(rest.get("resource")):
            for p, parameter in indexed_objects(resource.get("searchParam")):
                definition = _definition(parameter.get("definition"), context)
                stated = parameter.get("type")
                if definition is None or not isinstance(stated, str):
                    continue
                if definition.get("type") != stated:
                    where = f"{path}.rest[{r}].resource[{s}].searchParam[{p}]"
                    report.add(
                        Severity.ERROR,
                        TYPE.id,
                        f"{where}: search parameter {parameter.get('name')!r} is a "
                        f"{stated}, but its definition {parameter.get('definition')} is a "
                        f"{definition.get('type')}",
                        code="invalid",
                        expression=where,
                    )


def _search_parameter(data: dict[str, Any], path: str, report: Report, context: Context) -> None:
    if data.get("type") == "composite" and len(indexed_objects(data.get("component"))) < 2:
        report.add(
            Severity.ERROR,
            COMPOSITE.id,
            f"{path}: a composite search parameter needs two or more components",
            code="invalid",
            expression=path,
        )
    origin = _definition(data.get("derivedFrom"), context)
    if origin is None:
        return
    stated = data.get("type")
    if isinstance(stated, str) and stated != origin.get("type"):
        report.add(
            Severity.ERROR,
            TYPE.id,
            f"{path}: the type {stated} differs from {origin.get('type')}, the type of "
            f"{data.get('derivedFrom')} it is derived from",
            code="invalid",
            expression=f"{path}.type",
        )
    allowed = origin.get("base") or []
    base = data.get("base")
    for index, name in enumerate(base if isinstance(base, list) else []):
        if isinstance(name, str) and name not in allowed and "Resource" not in allowed:
            report.add(
                Severity.ERROR,
                BASE.id,
                f"{path}.base[{index}]: {name} is not a base of {data.get('derivedFrom')} "
                f"({', '.join(allowed)})",
                code="invalid",
                expression=f"{path}.base[{index}]",
            )
