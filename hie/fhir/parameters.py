"""The search parameters hie supports, per resource type, and the index rows of a resource.

The parameters are R4's own SearchParameter definitions (``schemas/fhir/search-parameters.json``,
generated from R4 4.0.1 by ``scripts/build_search_parameters.py``): every parameter of a type
whose kind the index can answer. One table drives the CapabilityStatement, the search parser and
the index writer, so the server advertises exactly what it can answer.

Index extraction is generated from each parameter's FHIRPath expression. The subset R4 mostly
uses (``A.b | A.c``, ``(A.value as Quantity)``, ``A.value.as(T)``, ``ofType(T)``, choice
elements, ``where(resolve() is Patient)``, ``where(system='phone')``, ``[0]``) is compiled once
per type, against R4's element tree, into plain dictionary walks; only the rest is evaluated by
fhirpathpy. A type's table is built the first time a resource of that type is indexed or
searched, so types never stored cost nothing.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

from hie.fhir.dates import date_range, period_range
from hie.resources import schemas_dir
from hie.storage.fhir import IndexValue
from hie.validators.fhir_rules.elements import children, is_resource_type
from hie.validators.fhir_rules.fhirpath import LOCK, compile_r4

Kind = Literal["token", "reference", "date", "string", "number", "quantity", "uri", "composite"]
KINDS: tuple[Kind, ...] = (
    "token",
    "reference",
    "date",
    "string",
    "number",
    "quantity",
    "uri",
    "composite",
)

# Resource-level parameters answered from fhir_resource's own columns, not from the index.
RESOURCE_COLUMNS = ("_id", "_lastUpdated")
# Resource-level parameters the index does not answer: full-text search, named queries, lists.
UNSUPPORTED = frozenset({"_text", "_content", "_query", "_list"})
# Longest string value kept for string search (as HAPI's 200-character columns).
STRING_LENGTH = 200

# The index row type is storage's own (hie/storage/fhir.py).
IndexRow = IndexValue

# A compiled branch of an expression: given the resource, the (value, R4 type) pairs it selects.
Extractor = Callable[[dict[str, Any]], list[tuple[Any, str]]]


@dataclass(frozen=True)
class Component:
    """One part of a composite parameter: its own parameter and where it sits in the base."""

    param: SearchParameter
    expression: str


@dataclass(frozen=True, eq=False)
class SearchParameter:
    name: str
    kind: Kind
    expression: str  # the FHIRPath of this type's part of the definition
    # Reference parameters: the resource types a value may point to (empty: any type).
    targets: tuple[str, ...] = ()
    url: str = ""
    description: str = ""
    components: tuple[Component, ...] = ()
    extractors: tuple[Extractor, ...] = field(default=(), repr=False)
    # Composite parameters over sub-elements (Observation.component): each element's component
    # values are rows <name>$<i> sharing a group. One whose base is the resource itself
    # (code-value-quantity) needs no rows of its own: its components' own parameters (code,
    # value-quantity) answer it.
    grouped: bool = False

    @property
    def fhir_type(self) -> str:
        return self.kind


def normalize(text: str) -> str:
    """String search's form of a value: accents stripped, case folded (as HAPI normalizes)."""
    text = text[:STRING_LENGTH]
    if text.isascii():  # nothing to decompose: the common case, much cheaper
        return text.lower()
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


# -- the R4 definitions ---------------------------------------------------------------------------


@cache
def _definitions() -> dict[str, dict[str, Any]]:
    data = json.loads((schemas_dir() / "fhir" / "search-parameters.json").read_text("utf-8"))
    definitions: dict[str, dict[str, Any]] = data["parameters"]
    return definitions


def _split_outside(text: str, separator: str) -> list[str]:
    """``text`` split on ``separator`` where it stands outside parentheses and quotes."""
    parts, depth, start, quoted = [], 0, 0, False
    for i, c in enumerate(text):
        if c == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _branches(expression: str) -> list[str]:
    """The top-level ``|`` alternatives of an expression."""
    return [p.strip() for p in _split_outside(expression, "|") if p.strip()]


def _head(branch: str) -> str:
    return branch.lstrip("(").split(".", 1)[0].split(" ", 1)[0]


def _own_expression(expression: str, resource_type: str) -> str:
    """The branches of a shared definition's expression that apply to ``resource_type``."""
    mine = [
        b
        for b in _branches(expression)
        if _head(b) in (resource_type, "Resource", "DomainResource")
    ]
    return " | ".join(mine)


# -- compiling the common subset of FHIRPath ------------------------------------------------------

_CAST = re.compile(r"^\((.+) as ([A-Za-z]+)\)(.*)$")
_BARE_CAST = re.compile(r"^(.+) as ([A-Za-z]+)$")
_WHERE_EQUALS = re.compile(r"^where\(([a-z][A-Za-z]*) *= *'([^']*)'\)$")
_WHERE_RESOLVE = re.compile(r"^where\(resolve\(\) is ([A-Z][A-Za-z]+)\)$")
_TYPE_FUNCTION = re.compile(r"^(?:as|ofType)\(([A-Za-z]+)\)$")
_NAME = re.compile(r"^([a-z][A-Za-z0-9]*)(\[0\])?$")


class _NotCompiled(Exception):
    """An expression outside the compiled subset: fhirpathpy evaluates it."""


def _segments(path: str) -> list[str]:
    """``A.b.where(x='y').c`` split on the dots outside parentheses and quotes."""
    return _split_outside(path, ".")


# One step of a compiled path: the JSON keys it reads (with their R4 type and the definition
# their own children are listed under), then optional filters.
@dataclass
class _Step:
    keys: list[tuple[str, str, str]]
    filters: list[Callable[[Any], bool]] = field(default_factory=list)
    first: bool = False


def _upper(type_name: str) -> str:
    return type_name[0].upper() + type_name[1:]


def _child_keys(definition: str, name: str) -> list[tuple[str, str, str]]:
    elements = children(definition)
    if name in elements:
        element = elements[name]
        return [(element.name, element.type, element.definition)]
    typed = [(e.name, e.type, e.definition) for e in elements.values() if e.choice == name]
    if not typed:
        raise _NotCompiled(f"{definition}.{name}")
    return typed


def _cast(step: _Step, type_name: str) -> None:
    """Keep the keys of a step that hold ``type_name`` (``value as Quantity``)."""
    wanted = type_name.lower()
    step.keys = [k for k in step.keys if k[1].lower() == wanted]


def _equals(key: str, literal: str) -> Callable[[Any], bool]:
    """``where(key='literal')``."""
    return lambda v: isinstance(v, dict) and v.get(key) == literal


def _points_to(resource_type: str) -> Callable[[Any], bool]:
    """``where(resolve() is Type)``: a literal reference to that type."""
    prefix = resource_type + "/"

    def test(v: Any) -> bool:
        if not isinstance(v, dict) or not isinstance(v.get("reference"), str):
            return False
        return (reference_target(v["reference"]) or "").startswith(prefix)

    return test


def _compile_path(branch: str, definition: str) -> list[_Step]:
    """The steps of one branch, relative to ``definition`` (a type or backbone path)."""
    branch = branch.strip()
    cast = _CAST.match(branch)
    if cast:
        inner = _compile_path(cast[1], definition)
        if not inner:
            raise _NotCompiled(branch)
        _cast(inner[-1], cast[2])
        rest = cast[3]
        if rest:
            if not rest.startswith("."):
                raise _NotCompiled(branch)
            reached = {k[2] for k in inner[-1].keys}
            if len(reached) != 1:
                raise _NotCompiled(branch)
            inner += _compile_path(rest[1:], reached.pop())
        return inner
    bare = _BARE_CAST.match(branch)
    if bare and "(" not in bare[1]:
        inner = _compile_path(bare[1], definition)
        _cast(inner[-1], bare[2])
        return inner
    steps: list[_Step] = []
    current = [definition]
    for segment in _segments(branch):
        if segment in (definition, "Resource", "DomainResource") and not steps:
            continue  # the leading type name
        function = _TYPE_FUNCTION.match(segment)
        where = _WHERE_EQUALS.match(segment)
        resolve = _WHERE_RESOLVE.match(segment)
        name = _NAME.match(segment)
        if function and steps:
            _cast(steps[-1], function[1])
        elif where and steps:
            steps[-1].filters.append(_equals(where[1], where[2]))
        elif resolve and steps:
            steps[-1].filters.append(_points_to(resolve[1]))
        elif name:
            if len(current) != 1:
                raise _NotCompiled(branch)
            steps.append(_Step(_child_keys(current[0], name[1]), first=bool(name[2])))
        else:
            raise _NotCompiled(branch)
        if steps:
            current = sorted({k[2] for k in steps[-1].keys})
    return steps


def _walker(steps: list[_Step]) -> Extractor:
    if len(steps) == 1 and len(steps[0].keys) == 1 and not steps[0].filters:
        return _one_key(steps[0].keys[0][0], steps[0].keys[0][1], steps[0].first)

    def run(node: dict[str, Any]) -> list[tuple[Any, str]]:
        found: list[tuple[Any, str]] = [(node, "")]
        for step in steps:
            selected: list[tuple[Any, str]] = []
            for item, _ in found:
                if type(item) is not dict:
                    continue
                for key, type_name, _definition in step.keys:
                    value = item.get(key)
                    if value is None:
                        continue
                    if type(value) is list:
                        selected.extend((v, type_name) for v in value)
                    else:
                        selected.append((value, type_name))
            for keep in step.filters:
                selected = [s for s in selected if keep(s[0])]
            if step.first:
                selected = selected[:1]
            if not selected:
                return selected
            found = selected
        return found

    return run


def _one_key(key: str, type_name: str, first: bool) -> Extractor:
    """The walk of ``Type.element`` (most of R4's expressions), without the general loop."""

    def run(node: dict[str, Any]) -> list[tuple[Any, str]]:
        value = node.get(key)
        if value is None:
            return []
        if type(value) is list:
            return [(v, type_name) for v in value[:1]] if first else [(v, type_name) for v in value]
        return [(value, type_name)]

    run.__qualname__ = "_walker.<locals>.run"  # a compiled walk (compiled_fully)
    return run


def _fhirpath(expression: str) -> Extractor:
    """The fallback: fhirpathpy on R4's model (one evaluation at a time, see fhirpath.py)."""
    compiled = compile_r4(expression)

    def run(node: dict[str, Any]) -> list[tuple[Any, str]]:
        with LOCK:
            try:
                result = compiled(node)
            except Exception:  # an expression fhirpathpy cannot evaluate indexes nothing
                return []
        return [(v, "") for v in result if v is not None]

    return run


def compile_expression(expression: str, definition: str) -> tuple[Extractor, ...]:
    """Extractors for each branch of ``expression`` relative to ``definition``."""
    extractors: list[Extractor] = []
    for branch in _branches(expression):
        try:
            steps = _compile_path(branch, definition)
        except (_NotCompiled, KeyError, IndexError):
            extractors.append(_fhirpath(branch))
            continue
        if steps and all(step.keys for step in steps):
            extractors.append(_walker(steps))
    return tuple(extractors)


def compiled_fully(parameter: SearchParameter) -> bool:
    """Whether every branch of a parameter runs as a compiled walk (no fhirpathpy)."""
    return all(e.__qualname__.startswith("_walker") for e in parameter.extractors)


# -- the parameters of a type ---------------------------------------------------------------------


def _parameter(url: str, definition: dict[str, Any], resource_type: str) -> SearchParameter | None:
    kind = definition["type"]
    name = definition["code"]
    if kind not in KINDS or name in UNSUPPORTED or name in RESOURCE_COLUMNS:
        return None
    expression = _own_expression(definition.get("expression", ""), resource_type)
    if not expression:
        return None
    targets = tuple(t for t in definition.get("target", ()) if t != "Resource")
    components: list[Component] = []
    if kind == "composite":
        bases = _branches(expression)
        grouped = bases != [resource_type]
        for part_url, part_expression in definition.get("component", ()):
            part = _definitions().get(part_url)
            if part is None or part["type"] not in KINDS or part["type"] == "composite":
                return None
            if resource_type not in part["base"] and not grouped:
                return None
            base_definition = _base_definition(bases, resource_type)
            if base_definition is None:
                return None
            part_param = SearchParameter(
                f"{name}${len(components)}" if grouped else part["code"],
                part["type"],
                part_expression,
                extractors=compile_expression(part_expression, base_definition),
            )
            components.append(Component(part_param, part_expression))
        base_extractors = tuple(
            _walker(_compile_path(b, resource_type)) if b != resource_type else _itself
            for b in bases
        )
        return SearchParameter(
            name,
            kind,
            expression,
            url=url,
            description=definition.get("description", ""),
            components=tuple(components),
            extractors=base_extractors if grouped else (),
            grouped=grouped,
        )
    return SearchParameter(
        name,
        kind,
        expression,
        targets,
        url,
        definition.get("description", ""),
        extractors=compile_expression(expression, resource_type),
    )


def _itself(node: dict[str, Any]) -> list[tuple[Any, str]]:
    return [(node, "")]


def _base_definition(bases: list[str], resource_type: str) -> str | None:
    """Where a composite's components are read: the resource, or one backbone element. With
    several bases (``Observation | Observation.component``) the resource's elements are the
    components' own names in both, which R4's element tree confirms for Observation."""
    if resource_type in bases:
        return resource_type
    if len(bases) == 1:
        steps = _compile_path(bases[0], resource_type)
        definitions = {k[2] for k in steps[-1].keys}
        return definitions.pop() if len(definitions) == 1 else None
    return None


@cache
def parameters_of(resource_type: str) -> dict[str, SearchParameter]:
    """The indexed parameters of a type (besides ``_id`` and ``_lastUpdated``), by name; a type
    R4 does not define has none."""
    if not is_resource_type(resource_type):
        return {}
    found: dict[str, SearchParameter] = {}
    for url, definition in _definitions().items():
        bases = definition["base"]
        if resource_type not in bases and "Resource" not in bases:
            continue
        if "DomainResource" in bases and resource_type in ("Bundle", "Binary", "Parameters"):
            continue
        try:
            parameter = _parameter(url, definition, resource_type)
        except _NotCompiled:
            parameter = None
        if parameter is not None and (parameter.extractors or parameter.components):
            found[parameter.name] = parameter
    return dict(sorted(found.items()))


def all_parameters(resource_types: list[str]) -> dict[str, dict[str, SearchParameter]]:
    return {t: parameters_of(t) for t in resource_types}


# -- references -----------------------------------------------------------------------------------

_REFERENCE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def reference_target(reference: str) -> str | None:
    """``"<Type>/<id>"`` of a literal reference (relative or absolute), or None (contained,
    urn:uuid, conditional)."""
    if reference.startswith(("#", "urn:")) or "?" in reference:
        return None
    match = _REFERENCE.search(reference)
    return None if match is None else f"{match[1]}/{match[2]}"


# -- index values of one element, by parameter kind -----------------------------------------------

_QUANTITIES = frozenset(
    {"Quantity", "SimpleQuantity", "Age", "Duration", "Distance", "Count", "MoneyQuantity"}
)
_HUMAN_NAME = ("family", "given", "prefix", "suffix", "text")
_ADDRESS = ("line", "city", "district", "state", "postalCode", "country", "text")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


_CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})


def _token_rows(name: str, value: Any, type_name: str) -> Iterator[IndexValue]:
    if isinstance(value, bool):
        yield IndexValue(name, value="true" if value else "false")
    elif isinstance(value, str):
        yield IndexValue(name, value=value)
    elif not isinstance(value, dict):
        return
    elif type_name == "CodeableConcept" or "coding" in value:
        for coding in value.get("coding") or ():
            if isinstance(coding, dict):
                yield from _token_rows(name, coding, "Coding")
        if isinstance(value.get("text"), str):  # for :text
            yield IndexValue(name, text=normalize(value["text"]))
    elif type_name == "ContactPoint" or (
        type_name == "" and value.get("system") in _CONTACT_SYSTEMS
    ):
        # HAPI's token for a ContactPoint: its system (phone, email, ...) and value.
        if isinstance(value.get("value"), str):
            yield IndexValue(name, _str(value.get("system")), value["value"])
    elif isinstance(value.get("code"), str):  # Coding
        display = value.get("display")
        text = normalize(display) if isinstance(display, str) else None
        yield IndexValue(name, _str(value.get("system")), value["code"], text=text)
    elif isinstance(value.get("value"), str):  # Identifier
        kind: dict[str, Any] = value["type"] if isinstance(value.get("type"), dict) else {}
        text = normalize(kind["text"]) if isinstance(kind.get("text"), str) else None
        yield IndexValue(name, _str(value.get("system")), value["value"], text=text)
        # identifier:of-type=<type system>|<type code>|<value>
        for coding in kind.get("coding") or ():
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                yield IndexValue(
                    f"{name}:of-type",
                    _str(coding.get("system")),
                    f"{coding['code']}|{value['value']}",
                )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _string_rows(name: str, value: Any, type_name: str) -> Iterator[IndexValue]:
    if isinstance(value, str):
        pieces: Iterator[str] = iter((value,))
    elif isinstance(value, dict):
        human = type_name == "HumanName" or (
            not type_name and ("family" in value or "given" in value)
        )
        keys = _HUMAN_NAME if human else _ADDRESS
        pieces = (s for key in keys for s in _strings(value.get(key)))
    else:
        return
    for piece in pieces:
        if piece:
            yield IndexValue(name, value=piece[:STRING_LENGTH], text=normalize(piece))


def _reference_rows(name: str, value: Any, targets: tuple[str, ...]) -> Iterator[IndexValue]:
    if isinstance(value, str):  # canonical
        yield IndexValue(name, value=value)
        return
    if not isinstance(value, dict):
        return
    reference = value.get("reference")
    if isinstance(reference, str):
        target = reference_target(reference)
        if target and (not targets or target.split("/", 1)[0] in targets):
            yield IndexValue(name, value=target)
    identifier = value.get("identifier")
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        yield IndexValue(f"{name}:identifier", _str(identifier.get("system")), identifier["value"])


# A resource's dates are read by several parameters (Observation's date, and R4's composites):
# each distinct value is parsed once.
_date_range = lru_cache(maxsize=4096)(date_range)


def _date_rows(name: str, value: Any, type_name: str, zone: ZoneInfo) -> Iterator[IndexValue]:
    if isinstance(value, str):
        found = _date_range(value, zone)
        if found:
            yield IndexValue(name, low=found[0], high=found[1])
    elif isinstance(value, dict):
        if type_name == "Period" or "start" in value or "end" in value:
            found = period_range(value, zone)
            if found:
                yield IndexValue(name, low=found[0], high=found[1])
        elif isinstance(value.get("event"), list):  # Timing
            for event in value["event"]:
                yield from _date_rows(name, event, "dateTime", zone)


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _quantity_rows(name: str, value: Any, type_name: str) -> Iterator[IndexValue]:
    if not isinstance(value, dict) or type_name not in _QUANTITIES | {"Money", ""}:
        return
    number = _decimal(value.get("value"))
    if number is None:
        return
    if type_name == "Money":
        yield IndexValue(name, value=_str(value.get("currency")), number=number)
        return
    unit = _str(value.get("unit"))
    yield IndexValue(
        name, _str(value.get("system")), _str(value.get("code")), number=number, text=unit
    )


def element_rows(
    parameter: SearchParameter, name: str, value: Any, type_name: str, zone: ZoneInfo
) -> Iterator[IndexValue]:
    """The index values of one element a parameter selects."""
    kind = parameter.kind
    if kind == "token":
        yield from _token_rows(name, value, type_name)
    elif kind == "reference":
        yield from _reference_rows(name, value, parameter.targets)
    elif kind == "date":
        yield from _date_rows(name, value, type_name, zone)
    elif kind == "string":
        yield from _string_rows(name, value, type_name)
    elif kind == "uri":
        if isinstance(value, str):
            yield IndexValue(name, value=value)
    elif kind == "number":
        number = _decimal(value)
        if number is not None:
            yield IndexValue(name, number=number)
    elif kind == "quantity":
        yield from _quantity_rows(name, value, type_name)


def _composite_rows(
    parameter: SearchParameter, resource: dict[str, Any], zone: ZoneInfo
) -> Iterator[IndexValue]:
    """Each base element's component values, as rows ``<name>$<i>`` sharing a group number, so
    a search matches components of the same element (the same Observation.component)."""
    group = 0
    for extract in parameter.extractors:
        for element, _ in extract(resource):
            if not isinstance(element, dict):
                continue
            parts = [
                [
                    row
                    for run in component.param.extractors
                    for value, type_name in run(element)
                    for row in element_rows(
                        component.param, component.param.name, value, type_name, zone
                    )
                ]
                for component in parameter.components
            ]
            if all(parts):
                group += 1
                for rows in parts:
                    for row in rows:
                        yield row._replace(group=group)


# What index_rows runs for one parameter branch: the extractor, then the rows of each value.
_Work = tuple[SearchParameter, Extractor]


@cache
def _plan(resource_type: str) -> tuple[tuple[_Work, ...], tuple[SearchParameter, ...]]:
    """A type's extractors in one flat list (and its grouped composites), built once."""
    parameters = parameters_of(resource_type).values()
    flat = tuple(
        (p, extract) for p in parameters if p.kind != "composite" for extract in p.extractors
    )
    return flat, tuple(p for p in parameters if p.grouped)


def index_rows(resource: dict[str, Any], zone: ZoneInfo) -> list[IndexValue]:
    """Every search-parameter value of ``resource``, as the rows fhir_search_index keeps."""
    rows: list[IndexValue] = []
    flat, grouped = _plan(str(resource.get("resourceType")))
    for parameter, extract in flat:
        found = extract(resource)
        if found:
            name = parameter.name
            for value, type_name in found:
                rows.extend(element_rows(parameter, name, value, type_name, zone))
    for parameter in grouped:
        rows.extend(_composite_rows(parameter, resource, zone))
    # One row per distinct value: a value reached by two branches is one match.
    return list(dict.fromkeys(rows))
