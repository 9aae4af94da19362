"""Validation of FHIR R4 resources: JSON parsing, then five layers of rules.

``parse_json(bytes)`` turns an upload into a resource dict (or a located fatal issue);
``validate_resource(resource, catalog=..., declared=..., path=...)`` runs every layer and says
which upload table the resource is a record of. ``$validate`` is the same function.

R4 vs R4B. The platform speaks FHIR R4 (4.0.1); fhir.resources 8 ships R4B models, not R4.
Decision: R4's own element tree (fhirpathpy's R4 model, generated from the 4.0.1 definitions)
decides which elements exist and their types, and the R4B pydantic models check cardinality and
primitive formats, with their verdicts reconciled explicitly:

- an element R4 defines but R4B dropped is valid, one R4B added is an unknown element;
- R4B's "required" errors for elements R4 lacks are dropped (Evidence, EvidenceVariable changed);
- the 13 R4 resource types R4B removed (MedicinalProduct*, SubstanceSpecification,
  EffectEvidenceSynthesis, RiskEvidenceSynthesis) are walked against the R4 tree only;
- R4B-only resource types (SubscriptionTopic, Citation, MedicinalProductDefinition, ...) are
  rejected as not R4.

Layers, each a module of :mod:`hie.validators.fhir_rules`: (a) structure (the walk in ``tree``
and the models in ``structure``), (b) required bindings (``bindings``), (c) invariants
(``invariants``), (d) the platform's rules (``platform``), (e) the catalog (``catalog``).
A transaction or batch Bundle is no record: its envelope is checked here and each entry's
resource on its own (:func:`validate_bundle_entries`), located as ``Bundle.entry[i].resource``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from hie.catalog import Catalog, Table
from hie.storable import printable, unstorable_in
from hie.validators.conformance import SERVER, Context, entry_profiles
from hie.validators.fhir_rules.attachments import check_cda_attachment
from hie.validators.fhir_rules.bindings import check_bindings
from hie.validators.fhir_rules.catalog import ENTRY_BUNDLE_TYPES, table_for
from hie.validators.fhir_rules.differentials import check_differentials
from hie.validators.fhir_rules.extensions import check_extensions
from hie.validators.fhir_rules.invariants import check_invariants
from hie.validators.fhir_rules.measures import check_measures
from hie.validators.fhir_rules.platform import check_platform
from hie.validators.fhir_rules.profiles import check_profiles
from hie.validators.fhir_rules.publication import check_publication
from hie.validators.fhir_rules.questionnaire import check_questionnaires
from hie.validators.fhir_rules.references import check_references
from hie.validators.fhir_rules.search_parameters import check_search_parameters
from hie.validators.fhir_rules.search_sets import check_search_sets
from hie.validators.fhir_rules.specializations import check_specializations
from hie.validators.fhir_rules.structure import check_structure
from hie.validators.fhir_rules.terminology import check_terminology
from hie.validators.fhir_rules.tree import walk
from hie.validators.fhir_rules.value_set_parameters import check_value_set_parameters
from hie.validators.fhir_rules.values import check_values
from hie.validators.report import Report, Severity
from hie.validators.rules import register

ENCODING = register(
    "fhir.json.encoding",
    summary="A FHIR JSON upload is UTF-8.",
    fix="Save or send the body as UTF-8 (not GBK/GB2312); declare charset=utf-8 in the "
    "Content-Type header.",
)
SYNTAX = register(
    "fhir.json.syntax",
    summary="A FHIR JSON upload is well-formed JSON (RFC 8259).",
    fix="Fix the JSON at the line and column given: missing commas or quotes, trailing commas, "
    "comments and NaN are not JSON.",
)
COMMENTS = register(
    "fhir.json.comments",
    summary="A FHIR JSON upload has no comments (// or /* */): JSON has none.",
    fix="Remove the comments, or move what they say into the resource (e.g. an Annotation "
    "or the narrative).",
)
DUPLICATE_KEY = register(
    "fhir.json.duplicate-key",
    summary="No JSON object has the same property twice.",
    fix="Write each property once; a repeating element is one property with an array value.",
)
NOT_RESOURCE = register(
    "fhir.json.resource",
    summary="A FHIR JSON upload is one JSON object with a resourceType.",
    fix='Send one resource as {"resourceType": "Patient", ...}; several resources go in a Bundle.',
)
UNSTORABLE = register(
    "fhir.json.unstorable",
    summary="No string or property name holds U+0000 or a lone UTF-16 surrogate: "
    "neither can be stored (nor is it valid FHIR text).",
    fix="Remove the \\u0000 escape or the unpaired \\ud800-\\udfff escape from the element "
    "named; a surrogate comes only as a pair.",
)
DEPTH = register(
    "fhir.structure.depth",
    summary="A resource is nested no deeper than the platform can check.",
    fix="Flatten nested extensions or items; real resources nest a few dozen levels at most.",
)


@dataclass
class FhirResult:
    """What validation found, and which table the resource is a record of."""

    report: Report
    table: Table | None
    model: Any = None  # the parsed fhir.resources (R4B) object, or None


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:]')


def _duplicate_offset(text: str) -> int | None:
    """Where the first repeated property name of an object starts (only run on that error)."""
    stack: list[set[str] | None] = []
    tokens = list(_TOKEN.finditer(text))
    for index, token in enumerate(tokens):
        value = token.group()
        if value == "{":
            stack.append(set())
        elif value == "[":
            stack.append(None)
        elif value in "}]":
            if stack:
                stack.pop()
        elif value.startswith('"') and stack and stack[-1] is not None:
            following = tokens[index + 1].group() if index + 1 < len(tokens) else ""
            if following == ":":
                if value in stack[-1]:
                    return token.start()
                stack[-1].add(value)
    return None


def _line_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


_COMMENT_OR_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|//[^\n]*|/\*.*?\*/', re.DOTALL)


def _without_comments(text: str) -> tuple[str, int | None]:
    """``text`` with its // and /* */ comments blanked (line and column numbers kept), and where
    the first comment starts (None when there is none)."""
    first: int | None = None

    def blank(match: re.Match[str]) -> str:
        nonlocal first
        token = match.group()
        if token.startswith('"'):
            return token
        if first is None:
            first = match.start()
        return re.sub(r"[^\n]", " ", token)

    return _COMMENT_OR_STRING.sub(blank, text), first


def parse_json(
    data: bytes, *, allow_comments: bool = False
) -> tuple[dict[str, Any] | None, Report]:
    """The resource in ``data``, or None with a fatal issue (line and column) saying why.

    ``allow_comments``: accept // and /* */ comments (HL7's validator's allow-comments switch);
    without it a comment is reported as such rather than as a syntax error.
    Never raises on bad input. The caller bounds the size.
    """
    report = Report()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        report.add(
            Severity.FATAL,
            ENCODING.id,
            f"not UTF-8 (byte 0x{data[exc.start]:02x}); send the body as UTF-8",
            code="structure",
            line=line,
            column=column,
        )
        return None, report
    text = text.removeprefix("\ufeff")
    if allow_comments and "/" in text:
        text = _without_comments(text)[0]
    try:
        # Decimals as Decimal: FHIR keeps a decimal's precision (1.50 stays 1.50).
        value = json.loads(
            text, object_pairs_hook=_object, parse_constant=_constant, parse_float=Decimal
        )
    except json.JSONDecodeError as exc:
        stripped, comment = _without_comments(text) if "/" in text else (text, None)
        if comment is not None and _parses(stripped):
            line, column = _line_column(text, comment)
            report.add(
                Severity.FATAL,
                COMMENTS.id,
                "comments are not allowed in JSON",
                code="structure",
                line=line,
                column=column,
            )
            return None, report
        report.add(
            Severity.FATAL,
            SYNTAX.id,
            f"not valid JSON: {exc.msg}",
            code="structure",
            line=exc.lineno,
            column=exc.colno,
        )
        return None, report
    except _DuplicateKey as exc:
        offset = _duplicate_offset(text)
        where = _line_column(text, offset) if offset is not None else None
        report.add(
            Severity.FATAL,
            DUPLICATE_KEY.id,
            f"property {exc.key!r} appears twice in one object",
            code="structure",
            line=where[0] if where else None,
            column=where[1] if where else None,
        )
        return None, report
    except RecursionError:
        report.add(Severity.FATAL, SYNTAX.id, "the JSON is nested too deeply", code="structure")
        return None, report
    except ValueError as exc:  # NaN, Infinity (from _constant)
        report.add(Severity.FATAL, SYNTAX.id, f"not valid JSON: {exc}", code="structure")
        return None, report
    # Located where the top-level value starts: the whole of it is what is wrong.
    start = _line_column(text, len(text) - len(text.lstrip()))
    if not isinstance(value, dict):
        report.add(
            Severity.FATAL,
            NOT_RESOURCE.id,
            "the body is not a JSON object",
            code="structure",
            line=start[0],
            column=start[1],
        )
        return None, report
    if not isinstance(value.get("resourceType"), str):
        report.add(
            Severity.FATAL,
            NOT_RESOURCE.id,
            "the object has no resourceType: it is not a FHIR resource",
            code="structure",
            line=start[0],
            column=start[1],
        )
        return None, report
    if "\\u" in text:  # only a JSON escape can carry these: raw control characters are refused
        root = printable(value["resourceType"])
        for path, why in unstorable_in(value, root):
            report.add(Severity.FATAL, UNSTORABLE.id, why, code="structure", expression=path)
        if report.rejected:
            return None, report
    return value, report


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _is_entry_bundle(resource: dict[str, Any]) -> bool:
    return resource.get("resourceType") == "Bundle" and resource.get("type") in ENTRY_BUNDLE_TYPES


def _envelope(bundle: dict[str, Any]) -> dict[str, Any]:
    """The Bundle without its entries' resources (those are validated one by one)."""
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return bundle
    stripped = [
        {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
        for e in entries
    ]
    return {**bundle, "entry": stripped}


def validate_resource(
    resource: dict[str, Any],
    *,
    catalog: Catalog,
    declared: list[str] | None = None,
    path: str = "",
    context: Context = SERVER,
    entry_types: Mapping[str, str] | None = None,
) -> FhirResult:
    """Every issue of ``resource`` and the table it is a record of.

    ``declared``: the institution's declared tables (None: no declaration, nothing to compare).
    ``path``: where the resource is (``Bundle.entry[2].resource``); issues are located under it.
    ``context``: the conformance resources and policy (the server's unless ``hie validate``
    says otherwise).
    ``entry_types``: when ``resource`` is an entry of a transaction or batch, the type of each
    entry by fullUrl (:func:`entry_types_of`), so that its urn:uuid references have a type.
    """
    report = Report()
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    base = path or (rtype if isinstance(rtype, str) else "Resource")
    if not isinstance(resource, dict) or not isinstance(rtype, str):
        report.add(
            Severity.ERROR,
            NOT_RESOURCE.id,
            f"{base}: not a FHIR resource (a JSON object with resourceType)",
            code="structure",
            expression=base,
        )
        return FhirResult(report, None)
    by_entry = _is_entry_bundle(resource)
    try:
        tree = walk(
            resource,
            base,
            report,
            entries=not by_entry,
            contained=context.policy.validate_contained,
        )
        if tree is None:
            return FhirResult(report, None)
        reported = {i.expression for i in report.issues if i.expression and i.severity.rejects}
        model = check_structure(
            _envelope(resource) if by_entry else resource, base, report, reported
        )
        check_bindings(tree, report, context)
        check_terminology(tree, report, context)
        check_invariants(tree, report)
        if context.platform_rules:
            check_platform(tree, report)
        check_values(tree, report, context)
        check_questionnaires(tree, report, context)
        check_extensions(tree, report, context)
        if context.platform_rules:
            check_cda_attachment(resource, report, base, catalog=catalog, declared=declared)
        check_search_parameters(tree, report, context)
        check_search_sets(tree, report)
        check_specializations(tree, report, context)
        check_differentials(tree, report, context)
        check_profiles(tree, report, context)
        check_references(tree, report, context, entry_types)
        check_measures(tree, report, context)
        check_value_set_parameters(tree, report)
        check_publication(tree, report, context)
    except RecursionError:
        report.add(
            Severity.FATAL,
            DEPTH.id,
            f"{base}: the resource is nested too deeply to check",
            code="too-costly",
            expression=base,
        )
        return FhirResult(report, None)
    # FHIR validity only: what the catalog says of the resource is left out of the verdict.
    table = table_for(
        resource, catalog, declared, base, report if context.platform_rules else Report()
    )
    if by_entry:
        for result in validate_bundle_entries(
            resource, catalog=catalog, declared=declared, path=base, context=context
        ):
            if result is not None:
                report.extend(result.report)
        model = None  # the entries are the records; the envelope model alone would mislead
    return FhirResult(report, table, model if not report.rejected else None)


def validate_bundle_entries(
    bundle: dict[str, Any],
    *,
    catalog: Catalog,
    declared: list[str] | None = None,
    path: str = "",
    context: Context = SERVER,
) -> list[FhirResult | None]:
    """One result per entry of a transaction or batch Bundle (None for an entry without a
    resource, e.g. a DELETE), each located as ``Bundle.entry[i].resource``."""
    base = path or "Bundle"
    entries = bundle.get("entry")
    types = entry_types_of(bundle)
    results: list[FhirResult | None] = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if resource is None:
            results.append(None)
            continue
        # Each entry is validated as a resource of its own: the profiles a --bundle-profile
        # rule gives it are its --profile.
        chosen = entry_profiles(context, bundle, index)
        results.append(
            validate_resource(
                resource,
                catalog=catalog,
                declared=declared,
                path=f"{base}.entry[{index}].resource",
                context=replace(context, profiles=(*context.profiles, *chosen))
                if chosen
                else context,
                entry_types=types,
            )
        )
    return results


def entry_types_of(bundle: dict[str, Any]) -> dict[str, str]:
    """The resource type of each entry of ``bundle`` with a fullUrl and a resource, by fullUrl:
    what a transaction's urn:uuid references point at."""
    types: dict[str, str] = {}
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("fullUrl"), str):
            continue
        resource = entry.get("resource")
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        if isinstance(rtype, str):
            types[entry["fullUrl"]] = rtype
    return types
