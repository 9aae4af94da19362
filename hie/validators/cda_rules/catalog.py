"""Which upload table a document belongs to: its templateId and its type code against the catalog,
and whether the institution declared that table."""

from __future__ import annotations

from collections.abc import Sequence

from hie.catalog import Catalog, Table
from hie.catalog.model import DOCUMENT_TYPE_SYSTEM
from hie.validators.cda_rules.document import CdaDocument, add_at, attribute
from hie.validators.report import Report, Severity
from hie.validators.rules import register

TYPE_CODE = register(
    "cda.header.type-code",
    summary="ClinicalDocument/code is a shared-document type code in code system "
    "2.16.156.10011.2.4.",
    fix='Write <code code="C0002" codeSystem="2.16.156.10011.2.4" '
    'codeSystemName="卫生信息共享文档规范编码体系" displayName="门（急）诊病历"/> with your '
    "document's type code.",
)
TEMPLATE_CODE = register(
    "cda.header.template-code",
    summary="templateId and code name the same shared-document type.",
    fix="Make templateId/@root and code/@code agree: WS/T 500 part N has templateId "
    "2.16.156.10011.2.1.1.(20+N) and code C00NN; see `hie catalog show` for every table.",
)
UNKNOWN_TYPE = register(
    "cda.catalog.unknown-type",
    summary="The document's templateId or type code names a table of the platform's catalog "
    "(a Chinese shared document of WS/T 500 or WS/T 483).",
    fix="Send Chinese shared documents only: templateId 2.16.156.10011.2.1.1.N and code C00NN or "
    "HSDxxx.xx in code system 2.16.156.10011.2.4. Other CDA documents (e.g. US C-CDA) are not "
    "collected by this platform.",
)
UNDECLARED = register(
    "cda.catalog.undeclared",
    summary="The document's table is in the institution's declaration of upload tables.",
    fix="The document is accepted. If your institution now uploads this table, ask the "
    "regulator to add it to your declaration (hie declarations set).",
)
NOT_REQUIRED = register(
    "cda.catalog.kind",
    summary="The document's table is one the catalog requires of the institution's kind.",
    fix="Nothing to fix: the document is accepted; the table is optional for your kind of "
    "institution.",
)


def classify(doc: CdaDocument, catalog: Catalog, report: Report) -> Table | None:
    """The table the document belongs to, or None (an error says why)."""
    templates = doc.findall("templateId")
    roots = [r for r in (attribute(t, "root") for t in templates) if r]
    code_element = doc.find("code")
    code = attribute(code_element, "code")
    system = attribute(code_element, "codeSystem")

    by_template = next((t for t in map(catalog.by_template_id, roots) if t is not None), None)
    by_code = catalog.by_cda_code(code) if code else None
    if by_code is not None and system != DOCUMENT_TYPE_SYSTEM:
        add_at(
            report,
            Severity.ERROR,
            TYPE_CODE.id,
            f"code {code} is a shared-document type code but its codeSystem is {system!r}; it "
            f"must be {DOCUMENT_TYPE_SYSTEM}",
            element=code_element,
            attr="codeSystem",
            code="code-invalid",
        )

    if by_template is None and by_code is None:
        found_templates = ", ".join(roots) if roots else "none"
        found_code = f"{code} (codeSystem {system or 'none'})" if code else "none"
        add_at(
            report,
            Severity.ERROR,
            UNKNOWN_TYPE.id,
            f"not a Chinese shared document: templateId {found_templates} and code "
            f"{found_code} match no table of the catalog",
            element=code_element if code_element is not None else doc.root,
            code="not-supported",
        )
        return None
    if by_template is not None and by_code is not None:
        if by_template is not by_code:
            _disagree(
                doc,
                report,
                confirmed=by_template.template_id_confirmed,
                message=f"templateId {by_template.cda_template_id} is table {by_template.code} "
                f"{by_template.name_zh} but code {code} is table {by_code.code} {by_code.name_zh}",
            )
        return by_code
    if by_template is not None:
        if code is not None:
            _disagree(
                doc,
                report,
                confirmed=by_template.template_id_confirmed,
                message=f"templateId {by_template.cda_template_id} is table {by_template.code} "
                f"{by_template.name_zh} but code {code} (codeSystem {system or 'none'}) is not "
                f"its type code {by_template.cda_code}",
            )
        return by_template
    assert by_code is not None  # noqa: S101 (both None returned above)
    if roots and by_code.cda_template_id:
        _disagree(
            doc,
            report,
            confirmed=by_code.template_id_confirmed,
            message=f"code {code} is table {by_code.code} {by_code.name_zh}, whose templateId is "
            f"{by_code.cda_template_id}, but the document has templateId {', '.join(roots)}",
        )
    return by_code


def _disagree(doc: CdaDocument, report: Report, *, confirmed: bool, message: str) -> None:
    # A templateId the standard's public material does not confirm must not reject on its own.
    severity = Severity.ERROR if confirmed else Severity.WARNING
    if not confirmed:
        message += " (the templateId of this table is not confirmed; the code decides)"
    template = doc.find("templateId")
    add_at(
        report,
        severity,
        TEMPLATE_CODE.id,
        message,
        element=template if template is not None else doc.root,
        attr="root" if template is not None else None,
        code="invariant",
    )


def check_declaration(
    doc: CdaDocument,
    table: Table,
    report: Report,
    *,
    declared: Sequence[str] | None,
    kind: str | None,
) -> None:
    """Flag (never reject) a table outside the declaration or not required of the kind."""
    code_element = doc.find("code")
    where = code_element if code_element is not None else doc.root
    if declared is not None and table.code not in declared:
        listed = ", ".join(sorted(declared)) if declared else "nothing"
        add_at(
            report,
            Severity.WARNING,
            UNDECLARED.id,
            f"table {table.code} {table.name_zh} is not in the institution's declaration "
            f"(declared: {listed}); the document is accepted and flagged",
            element=where,
            attr="code",
            code="business-rule",
        )
    if kind is not None and table.required_for and not table.required_of(kind):
        add_at(
            report,
            Severity.INFORMATION,
            NOT_REQUIRED.id,
            f"table {table.code} {table.name_zh} is required of "
            f"{', '.join(sorted(table.required_for))}, not of a {kind}",
            element=where,
            attr="code",
            code="informational",
        )
