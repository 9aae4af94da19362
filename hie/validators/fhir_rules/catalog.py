"""The catalog: which upload table a resource belongs to (report-spec.md, "Default catalog").

A resource maps to its ``FHIR.<Type>`` table; a ``document`` Bundle to the WS/T table its
Composition.type names in ``urn:oid:2.16.156.10011.2.4`` (or the bare OID). A transaction or
batch Bundle is no record: its entries are, each validated on its own.
"""

from __future__ import annotations

from typing import Any

from hie.catalog import Catalog, Table
from hie.normalize.fhir import is_document_type_system
from hie.validators.report import Report, Severity
from hie.validators.rules import register

RESOURCE_TYPE = register(
    "fhir.catalog.resource-type",
    summary="The resource type is one the catalog has an upload table for.",
    fix="Send only the resource types listed by GET /api/catalog (FHIR.<Type> tables); ask the "
    "regulator to add a table for a new type.",
)
DOCUMENT_TYPE = register(
    "fhir.catalog.document-type",
    summary="A document Bundle's Composition.type carries a shared-document type code "
    "(C0001-C0053, HSDA00.01, ...) in urn:oid:2.16.156.10011.2.4 that the catalog knows.",
    fix='Add to Composition.type.coding {"system": "urn:oid:2.16.156.10011.2.4", "code": '
    '"C0002"} with the WS/T 500 or WS/T 483 code of the document.',
)
BUNDLE_TYPE = register(
    "fhir.catalog.bundle-type",
    summary="Bundles are uploaded as transaction, batch or document; other Bundle types are "
    "not records.",
    fix="Send the resources in a transaction (all or nothing) or batch Bundle, or a shared "
    "document as a document Bundle.",
)
UNDECLARED = register(
    "fhir.catalog.undeclared",
    summary="The table is in the institution's declaration.",
    fix="Accepted all the same; ask the regulator to add the table to your declaration so the "
    "report does not list it as undeclared.",
)

ENTRY_BUNDLE_TYPES = ("transaction", "batch")


def _document_table(
    bundle: dict[str, Any], catalog: Catalog, base: str, report: Report
) -> Table | None:
    entries = bundle.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else None
    composition = first.get("resource") if isinstance(first, dict) else None
    where = f"{base}.entry[0].resource.type"
    codes: list[str] = []
    if isinstance(composition, dict) and composition.get("resourceType") == "Composition":
        kind = composition.get("type")
        codings = kind.get("coding") if isinstance(kind, dict) else None
        for coding in codings if isinstance(codings, list) else []:
            if isinstance(coding, dict) and is_document_type_system(coding.get("system")):
                code = coding.get("code")
                if isinstance(code, str):
                    table = catalog.by_cda_code(code)
                    if table is not None:
                        return table
                    codes.append(code)
    if codes:
        message = f"document type {', '.join(codes)} is not a table of the catalog"
    else:
        message = "Composition.type has no code in urn:oid:2.16.156.10011.2.4"
    report.add(
        Severity.ERROR,
        DOCUMENT_TYPE.id,
        f"{where}: {message}",
        code="not-supported",
        expression=where,
    )
    return None


def table_for(
    resource: dict[str, Any],
    catalog: Catalog,
    declared: list[str] | None,
    base: str,
    report: Report,
) -> Table | None:
    """The table ``resource`` is a record of (None for transaction/batch Bundles and errors)."""
    rtype = str(resource.get("resourceType"))
    if rtype == "Bundle":
        kind = resource.get("type")
        if kind in ENTRY_BUNDLE_TYPES:
            return None
        if kind != "document":
            report.add(
                Severity.ERROR,
                BUNDLE_TYPE.id,
                f"{base}.type: a Bundle of type {kind!r} is not accepted; send transaction, "
                "batch or document",
                code="not-supported",
                expression=f"{base}.type",
            )
            return None
        table = _document_table(resource, catalog, base, report)
    else:
        table = catalog.by_resource_type(rtype)
        if table is None:
            report.add(
                Severity.ERROR,
                RESOURCE_TYPE.id,
                f"{base}: the platform accepts no {rtype} resources (no FHIR.{rtype} table in the "
                "catalog)",
                code="not-supported",
                expression=base,
            )
    if table is not None and declared is not None and table.code not in declared:
        report.add(
            Severity.WARNING,
            UNDECLARED.id,
            f"{base}: table {table.code} ({table.name_en}) is not in the institution's declaration",
            code="business-rule",
            expression=base,
        )
    return table
