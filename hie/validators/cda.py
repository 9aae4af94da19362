"""Validation of one CDA shared document, in layers, all reported together where possible:

1. safe parsing (:mod:`hie.validators.xml`): a failure here stops everything else;
2. CDA R2 structure against an XML Schema (the project's own, or HL7's as an operator setting),
   then the damage a schema lets through (attribute-name case, spaces in OIDs and structural
   codes, timestamps of odd length or zone offset);
3. the Chinese header rules of WS/T 500 / WS/T 483;
4. the catalog: which table the document is, and whether the institution declared it;
5. the table's content rules (required sections and entries, kept as data).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hie.catalog import Catalog, Table
from hie.validators.cda_rules.catalog import TEMPLATE_CODE, check_declaration, classify
from hie.validators.cda_rules.content import ContentRules, check_content, default_content_rules
from hie.validators.cda_rules.document import HL7_NS, CdaDocument, local_name
from hie.validators.cda_rules.header import NAMESPACE, check_header
from hie.validators.cda_rules.markup import check_markup
from hie.validators.cda_rules.schema import CdaSchema
from hie.validators.report import Report, Severity
from hie.validators.xml import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, parse_xml

__all__ = ["CdaResult", "CdaSchema", "ContentRules", "validate_cda"]


@dataclass
class CdaResult:
    """What validation found, the parsed tree (None when parsing failed) and the table the
    document belongs to (None when unknown). ``schema_valid`` is the schema layer's own verdict
    (None when it did not run)."""

    report: Report
    tree: Any  # lxml.etree._ElementTree | None
    table: Table | None
    schema_valid: bool | None = None


@functools.cache
def _default_schema() -> CdaSchema:
    return CdaSchema()


def validate_cda(
    data: bytes,
    *,
    catalog: Catalog,
    kind: str | None = None,
    declared: Sequence[str] | None = None,
    schema: CdaSchema | None = None,
    content_rules: ContentRules | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> CdaResult:
    """Validate one document for an institution of ``kind`` that declared ``declared`` tables
    (None: no declaration, nothing flagged). Never raises on bad input."""
    parsed = parse_xml(data, max_bytes=max_bytes, max_depth=max_depth)
    report = parsed.report
    if parsed.tree is None:
        return CdaResult(report, None, None)
    tree = parsed.tree
    doc = CdaDocument.of(tree)
    if local_name(doc.root) != "ClinicalDocument" or doc.namespace != HL7_NS:
        where = f"in namespace {doc.namespace}" if doc.namespace else "in no namespace"
        report.add(
            Severity.ERROR,
            NAMESPACE.id,
            f"the root element is {local_name(doc.root) or '?'} {where}; a CDA document is "
            f"ClinicalDocument in {HL7_NS}",
            code="structure",
            line=doc.root.sourceline,
            expression=f"/{local_name(doc.root)}",
        )
    schema_valid = (schema or _default_schema()).check(tree, report)
    table = None
    # A namespace-less ClinicalDocument is still read, so that the reasons are precise.
    if doc.is_clinical_document:
        check_markup(doc, report)
        check_header(doc, report)
        table = classify(doc, catalog, report)
        # When templateId and code disagree, the table is in doubt: its rules would only add noise.
        in_doubt = any(i.rule == TEMPLATE_CODE.id and i.severity.rejects for i in report.issues)
        if table is not None and not in_doubt:
            check_declaration(doc, table, report, declared=declared, kind=kind)
            check_content(doc, table, content_rules or default_content_rules(), report)
    return CdaResult(report, tree, table, schema_valid)
