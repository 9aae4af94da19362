"""The header rules every Chinese shared document follows (standards-cn.md, "Header rules").

Each rule is one registered function ``(document, report) -> None``; :func:`check_header` runs
the registered ones in the order they are defined, which follows the document. The
templateId/code agreement is decided with the catalog, in :mod:`hie.validators.cda_rules.catalog`.
"""

from __future__ import annotations

from typing import Any

from hie.normalize.cda import timestamp_problem
from hie.normalize.identity import resident_id_problem
from hie.validators.cda_rules.document import (
    AUTHOR_ROOT,
    DOCUMENT_ID_ROOT,
    GENDER_SYSTEM,
    ID_ROOT_PREFIX,
    INSTITUTION_ROOT,
    RESIDENT_ID_ROOT,
    STAFF_ROOT,
    CdaDocument,
    add_at,
    attribute,
    element_path,
)
from hie.validators.report import Report, Severity
from hie.validators.rules import register, rule, rules_of

TYPE_ID_ROOT = "2.16.840.1.113883.1.3"
TYPE_ID_EXTENSION = "POCD_MT000040"
# HL7's own examples write POCD_HD000040: the same model, so only a warning.
TYPE_ID_HL7_EXTENSION = "POCD_HD000040"
CONFIDENTIALITY_SYSTEM = "2.16.840.1.113883.5.25"
# GB/T 2261.1: 5 and 6 exist but are rare.
GENDER_CODES = {
    "0": "未知的性别",
    "1": "男",
    "2": "女",
    "5": "女性改（变）为男性",
    "6": "男性改（变）为女性",
    "9": "未说明的性别",
}

NAMESPACE = register(
    "cda.document.namespace",
    summary="The root element is ClinicalDocument in the namespace urn:hl7-org:v3.",
    fix='Write <ClinicalDocument xmlns="urn:hl7-org:v3" ...> so that every CDA element is in '
    "the HL7 v3 namespace.",
)


def _missing(report: Report, rule_id: str, what: str, parent: Any, path: str, fix: str) -> None:
    add_at(
        report,
        Severity.ERROR,
        rule_id,
        f"{what} is missing; {fix}",
        element=parent,
        path=path,
        code="required",
    )


@rule(
    "cda.header.realm",
    summary="realmCode/@code is CN.",
    fix='Add <realmCode code="CN"/> as the first child of ClinicalDocument.',
)
def check_realm(doc: CdaDocument, report: Report) -> None:
    realms = doc.findall("realmCode")
    if not realms:
        _missing(
            report,
            "cda.header.realm",
            "realmCode",
            doc.root,
            "/ClinicalDocument/realmCode",
            'add <realmCode code="CN"/>',
        )
        return
    codes = [attribute(r, "code") for r in realms]
    if "CN" not in codes:
        add_at(
            report,
            Severity.ERROR,
            "cda.header.realm",
            f"realmCode is {', '.join(repr(c) for c in codes)}; a Chinese shared document has "
            'realmCode code="CN"',
            element=realms[0],
            attr="code",
            code="value",
        )


@rule(
    "cda.header.type-id",
    summary="typeId has root 2.16.840.1.113883.1.3 and extension POCD_MT000040.",
    fix='Write <typeId root="2.16.840.1.113883.1.3" extension="POCD_MT000040"/> after realmCode.',
)
def check_type_id(doc: CdaDocument, report: Report) -> None:
    type_id = doc.find("typeId")
    if type_id is None:
        _missing(
            report,
            "cda.header.type-id",
            "typeId",
            doc.root,
            "/ClinicalDocument/typeId",
            f'add <typeId root="{TYPE_ID_ROOT}" extension="{TYPE_ID_EXTENSION}"/>',
        )
        return
    root, extension = attribute(type_id, "root"), attribute(type_id, "extension")
    if root != TYPE_ID_ROOT:
        add_at(
            report,
            Severity.ERROR,
            "cda.header.type-id",
            f"typeId/@root is {root!r}; it must be {TYPE_ID_ROOT}",
            element=type_id,
            attr="root",
            code="value",
        )
    if extension == TYPE_ID_HL7_EXTENSION:
        add_at(
            report,
            Severity.WARNING,
            "cda.header.type-id",
            f"typeId/@extension is {extension}; the Chinese header profile writes "
            f"{TYPE_ID_EXTENSION}",
            element=type_id,
            attr="extension",
            code="value",
        )
    elif extension != TYPE_ID_EXTENSION:
        add_at(
            report,
            Severity.ERROR,
            "cda.header.type-id",
            f"typeId/@extension is {extension!r}; it must be {TYPE_ID_EXTENSION}",
            element=type_id,
            attr="extension",
            code="value",
        )


@rule(
    "cda.header.template-id",
    summary="The document has exactly one templateId (the shared-document template).",
    fix='Keep one <templateId root="2.16.156.10011.2.1.1.N"/>: the template of the document\'s '
    "type (WS/T 500 part N has 2.16.156.10011.2.1.1.(20+N)).",
)
def check_template_id(doc: CdaDocument, report: Report) -> None:
    templates = doc.findall("templateId")
    if not templates:
        _missing(
            report,
            "cda.header.template-id",
            "templateId",
            doc.root,
            "/ClinicalDocument/templateId",
            "add the templateId of the document's shared-document type",
        )
    elif len(templates) > 1:
        roots = ", ".join(attribute(t, "root") or "(no root)" for t in templates)
        add_at(
            report,
            Severity.ERROR,
            "cda.header.template-id",
            f"the document has {len(templates)} templateIds ({roots}); a Chinese shared "
            "document has exactly one",
            element=templates[1],
            code="structure",
        )


@rule(
    "cda.header.document-id",
    summary="ClinicalDocument/id has root 2.16.156.10011.1.1 (document serial number) and an "
    "extension.",
    fix='Write <id root="2.16.156.10011.1.1" extension="your document serial number"/>; the '
    "pair must be unique across all your documents.",
)
def check_document_id(doc: CdaDocument, report: Report) -> None:
    _check_identifier(
        doc, report, "cda.header.document-id", "id", DOCUMENT_ID_ROOT, "document serial number"
    )


def _check_identifier(
    doc: CdaDocument,
    report: Report,
    rule_id: str,
    path: str,
    root: str,
    meaning: str,
    *,
    parent_path: str | None = None,
) -> None:
    """Some element at ``path`` must have ``root`` and a non-empty extension."""
    found = doc.findall(path)
    full_path = "/ClinicalDocument/" + path
    if not found:
        parent = doc.find(parent_path) if parent_path else None
        _missing(
            report,
            rule_id,
            full_path,
            parent if parent is not None else doc.root,
            full_path,
            f'add <id root="{root}" extension="..."/> ({meaning})',
        )
        return
    matching = [e for e in found if attribute(e, "root") == root]
    if not matching:
        roots = ", ".join(attribute(e, "root") or "(none)" for e in found)
        add_at(
            report,
            Severity.ERROR,
            rule_id,
            f"{full_path}/@root is {roots}; it must be {root} ({meaning})",
            element=found[0],
            attr="root",
            code="value",
        )
    elif not attribute(matching[0], "extension"):
        add_at(
            report,
            Severity.ERROR,
            rule_id,
            f"{full_path} with root {root} has no extension: give the {meaning}",
            element=matching[0],
            attr="extension",
            code="required",
        )


@rule(
    "cda.header.effective-time",
    summary="effectiveTime/@value is a real date and time yyyyMMddHHmmss, optionally with a zone "
    "offset (+0800).",
    fix='Write <effectiveTime value="20190715093000"/> (or with +0800); a timestamp without '
    "an offset is read in the platform's time zone.",
)
def check_effective_time(doc: CdaDocument, report: Report) -> None:
    _check_time(doc, report, "cda.header.effective-time", "effectiveTime", required=True)


def _check_time(
    doc: CdaDocument, report: Report, rule_id: str, path: str, *, required: bool
) -> None:
    element = doc.find(path)
    full_path = "/ClinicalDocument/" + path
    if element is None:
        if required:
            _missing(report, rule_id, full_path, doc.root, full_path, "add it")
        return
    value = attribute(element, "value")
    if value is None:
        if required or attribute(element, "nullFlavor") is None:
            add_at(
                report,
                Severity.ERROR,
                rule_id,
                f"{full_path} has no value",
                element=element,
                attr="value",
                code="required",
            )
        return
    problem = timestamp_problem(value)
    if problem:
        add_at(
            report,
            Severity.ERROR,
            rule_id,
            f"{full_path}/@value: {problem}",
            element=element,
            attr="value",
            code="value",
        )


@rule(
    "cda.header.confidentiality",
    summary="confidentialityCode is code N in code system 2.16.840.1.113883.5.25.",
    fix='Write <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25" '
    'codeSystemName="Confidentiality" displayName="正常访问保密级别"/>.',
)
def check_confidentiality(doc: CdaDocument, report: Report) -> None:
    element = doc.find("confidentialityCode")
    if element is None:
        _missing(
            report,
            "cda.header.confidentiality",
            "confidentialityCode",
            doc.root,
            "/ClinicalDocument/confidentialityCode",
            f'add <confidentialityCode code="N" codeSystem="{CONFIDENTIALITY_SYSTEM}"/>',
        )
        return
    code, system = attribute(element, "code"), attribute(element, "codeSystem")
    if system != CONFIDENTIALITY_SYSTEM or code != "N":
        add_at(
            report,
            Severity.ERROR,
            "cda.header.confidentiality",
            f"confidentialityCode is {code!r} in {system!r}; it must be N in "
            f"{CONFIDENTIALITY_SYSTEM}",
            element=element,
            attr="code" if system == CONFIDENTIALITY_SYSTEM else "codeSystem",
            code="code-invalid",
        )


@rule(
    "cda.header.language",
    summary="languageCode/@code is zh-CN.",
    fix='Write <languageCode code="zh-CN"/> after confidentialityCode.',
)
def check_language(doc: CdaDocument, report: Report) -> None:
    element = doc.find("languageCode")
    if element is None:
        _missing(
            report,
            "cda.header.language",
            "languageCode",
            doc.root,
            "/ClinicalDocument/languageCode",
            'add <languageCode code="zh-CN"/>',
        )
        return
    code = attribute(element, "code")
    if code != "zh-CN":
        add_at(
            report,
            Severity.ERROR,
            "cda.header.language",
            f"languageCode is {code!r}; it must be zh-CN",
            element=element,
            attr="code",
            code="code-invalid",
        )


@rule(
    "cda.header.patient-id",
    summary="recordTarget/patientRole has at least one id; patient ids use the national roots "
    "2.16.156.10011.1.x.",
    fix="Identify the patient with national roots: 2.16.156.10011.1.2 健康档案编号, "
    ".11 门（急）诊号, .12 住院号, .19 居民健康卡号 on patientRole/id and .3 身份证号 on "
    "patient/id; a vendor OID is accepted with a warning but links to nothing.",
)
def check_patient_ids(doc: CdaDocument, report: Report) -> None:
    role = doc.find("recordTarget/patientRole")
    if role is None:
        return  # the schema reports the missing recordTarget/patientRole
    ids = doc.findall("id", role)
    if not ids:
        _missing(
            report,
            "cda.header.patient-id",
            "patientRole/id",
            role,
            element_path(role) + "/id",
            "add the patient's identifiers (e.g. root 2.16.156.10011.1.2 健康档案编号)",
        )
        return
    for identifier in ids + doc.findall("patient/id", role):
        root = attribute(identifier, "root")
        if attribute(identifier, "nullFlavor"):
            continue
        if root is None or not root.startswith(ID_ROOT_PREFIX):
            add_at(
                report,
                Severity.WARNING,
                "cda.header.patient-id",
                f"patient identifier root {root!r} is not a national root 2.16.156.10011.1.x; "
                "the platform cannot link it to a person",
                element=identifier,
                attr="root",
                code="code-invalid",
            )
        elif not attribute(identifier, "extension"):
            add_at(
                report,
                Severity.ERROR,
                "cda.header.patient-id",
                f"patient identifier with root {root} has no extension",
                element=identifier,
                attr="extension",
                code="required",
            )


@rule(
    "cda.header.resident-id",
    summary="The resident ID number (patient/id root 2.16.156.10011.1.3) is valid under GB 11643 "
    "(18 characters, birth date, check character).",
    fix="Send the patient's 18-character resident ID number as it is on the ID card (a 15-digit "
    "legacy number is accepted). An invalid number is accepted with this warning, but the record "
    "counts no person by it.",
)
def check_resident_id(doc: CdaDocument, report: Report) -> None:
    for identifier in doc.findall("recordTarget/patientRole/patient/id"):
        if attribute(identifier, "root") != RESIDENT_ID_ROOT:
            continue
        raw = attribute(identifier, "extension")
        if raw is None:
            continue  # cda.header.patient-id reports the missing extension
        problem = resident_id_problem(raw)
        if problem:  # the message never repeats the number itself
            add_at(
                report,
                Severity.WARNING,
                "cda.header.resident-id",
                f"the resident ID number is not valid: {problem}",
                element=identifier,
                attr="extension",
                code="value",
            )


# WS/T 500 parts whose 文档头 table has no 性别代码 for the patient: the obstetric records
# (WS/T 500.14-2016 待产记录, 500.15 阴道分娩记录, 500.16 剖宫产记录) identify the woman by
# patient id, name and 年龄 only. Keyed by type code and by templateId 2.16.156.10011.2.1.1.(20+N).
NO_GENDER_IN_HEADER = {
    "C0014": "2.16.156.10011.2.1.1.34",
    "C0015": "2.16.156.10011.2.1.1.35",
    "C0016": "2.16.156.10011.2.1.1.36",
}
PATIENT_TYPE_SYSTEM = "2.16.156.10011.2.3.1.271"
# CV09.00.404 患者类型代码
PATIENT_TYPES = {"1": "门诊", "2": "急诊", "3": "住院", "9": "其他"}


def _header_without_gender(doc: CdaDocument) -> bool:
    """True when the document's own header table does not list the patient's gender."""
    code = attribute(doc.find("code"), "code")
    if code is not None:
        return code in NO_GENDER_IN_HEADER
    roots = {attribute(t, "root") for t in doc.findall("templateId")}
    return any(root in roots for root in NO_GENDER_IN_HEADER.values())


@rule(
    "cda.header.gender",
    summary="patient/administrativeGenderCode is a GB/T 2261.1 code (0, 1, 2, 9; 5, 6) in code "
    "system 2.16.156.10011.2.3.3.4; required where the document's 文档头 table lists it (every "
    "part but the obstetric records WS/T 500.14-.16).",
    fix='Write <administrativeGenderCode code="1" codeSystem="2.16.156.10011.2.3.3.4" '
    'displayName="男"/> (0 未知的性别, 1 男, 2 女, 9 未说明的性别).',
)
def check_gender(doc: CdaDocument, report: Report) -> None:
    patient = doc.find("recordTarget/patientRole/patient")
    if patient is None:
        role = doc.find("recordTarget/patientRole")
        if role is not None:
            _missing(
                report,
                "cda.header.gender",
                "patientRole/patient",
                role,
                element_path(role) + "/patient",
                "add the patient with the elements of the document's header table",
            )
        return
    element = doc.find("administrativeGenderCode", patient)
    if element is None and _header_without_gender(doc):
        return
    if element is None:
        _missing(
            report,
            "cda.header.gender",
            "administrativeGenderCode",
            patient,
            element_path(patient) + "/administrativeGenderCode",
            f'add <administrativeGenderCode code="..." codeSystem="{GENDER_SYSTEM}"/>',
        )
        return
    code, system = attribute(element, "code"), attribute(element, "codeSystem")
    if system != GENDER_SYSTEM:
        add_at(
            report,
            Severity.ERROR,
            "cda.header.gender",
            f"administrativeGenderCode/@codeSystem is {system!r}; it must be {GENDER_SYSTEM} "
            "(GB/T 2261.1)",
            element=element,
            attr="codeSystem",
            code="code-invalid",
        )
    if code not in GENDER_CODES:
        add_at(
            report,
            Severity.ERROR,
            "cda.header.gender",
            f"administrativeGenderCode {code!r} is not in GB/T 2261.1 "
            "(0 未知的性别, 1 男, 2 女, 9 未说明的性别)",
            element=element,
            attr="code",
            code="code-invalid",
        )


@rule(
    "cda.header.birth-time",
    summary="patient/birthTime/@value is a real date (yyyyMMdd at least); a missing birthTime is "
    "warned about unless the patient's age is given.",
    fix='Write <birthTime value="19750321"/>; the birth date inside the resident ID number should '
    'agree with it. Where the header table gives 年龄 instead, write <age unit="岁" value="65"/>.',
)
def check_birth_time(doc: CdaDocument, report: Report) -> None:
    patient = doc.find("recordTarget/patientRole/patient")
    if patient is None:
        return
    element = doc.find("birthTime", patient)
    if element is None and doc.find("age", patient) is not None:
        return  # the header tables that give 年龄 instead (e.g. WS/T 500.14-.16) need no birthTime
    if element is None:
        add_at(
            report,
            Severity.WARNING,
            "cda.header.birth-time",
            "patient/birthTime is missing",
            element=patient,
            path=element_path(patient) + "/birthTime",
            code="required",
        )
        return
    value = attribute(element, "value")
    if value is None:
        return  # a nullFlavor: unknown birth time is allowed
    problem = timestamp_problem(value)
    if problem:
        add_at(
            report,
            Severity.ERROR,
            "cda.header.birth-time",
            f"birthTime/@value: {problem}",
            element=element,
            attr="value",
            code="value",
        )


@rule(
    "cda.header.author-id",
    summary="author/assignedAuthor/id has root 2.16.156.10011.1.7 and an extension.",
    fix='Write <id root="2.16.156.10011.1.7" extension="staff number"/> in assignedAuthor.',
)
def check_author(doc: CdaDocument, report: Report) -> None:
    if doc.find("author") is None:
        return  # the schema reports the missing author
    _check_identifier(
        doc,
        report,
        "cda.header.author-id",
        "author/assignedAuthor/id",
        AUTHOR_ROOT,
        "document author",
        parent_path="author",
    )


@rule(
    "cda.header.custodian-id",
    summary="custodian/assignedCustodian/representedCustodianOrganization/id has root "
    "2.16.156.10011.1.5 and the institution code as extension.",
    fix='Write <id root="2.16.156.10011.1.5" extension="your institution code"/> in '
    "representedCustodianOrganization.",
)
def check_custodian(doc: CdaDocument, report: Report) -> None:
    _check_identifier(
        doc,
        report,
        "cda.header.custodian-id",
        "custodian/assignedCustodian/representedCustodianOrganization/id",
        INSTITUTION_ROOT,
        "institution code",
        parent_path="custodian",
    )


@rule(
    "cda.header.legal-authenticator-id",
    summary="legalAuthenticator/assignedEntity/id, when present, has root 2.16.156.10011.1.4.",
    fix='Write <id root="2.16.156.10011.1.4" extension="staff number"/> in the legal '
    "authenticator's assignedEntity.",
)
def check_legal_authenticator(doc: CdaDocument, report: Report) -> None:
    if doc.find("legalAuthenticator") is None:
        return
    _check_identifier(
        doc,
        report,
        "cda.header.legal-authenticator-id",
        "legalAuthenticator/assignedEntity/id",
        STAFF_ROOT,
        "medical staff number",
        parent_path="legalAuthenticator",
    )


@rule(
    "cda.header.replacement",
    summary='relatedDocument typeCode="RPLC" names the replaced document in parentDocument/id '
    "(root 2.16.156.10011.1.1 and extension), not the document itself. An id with no "
    "attributes (the standard's empty template <id/>) means no replacement.",
    fix='Write <relatedDocument typeCode="RPLC"><parentDocument><id root="2.16.156.10011.1.1" '
    'extension="id of the document replaced"/></parentDocument></relatedDocument>.',
)
def check_replacement(doc: CdaDocument, report: Report) -> None:
    own = doc.find("id")
    own_key = (attribute(own, "root"), attribute(own, "extension"))
    for related in doc.findall("relatedDocument"):
        if attribute(related, "typeCode") != "RPLC":
            continue
        parent_id = doc.find("parentDocument/id", related)
        if parent_id is not None and _placeholder(parent_id):
            # <parentDocument><id/><setId/><versionNumber/></parentDocument>: the empty template
            # every WS/T 500 example and vendor template carries means "replaces nothing".
            continue
        if parent_id is None or not attribute(parent_id, "extension"):
            add_at(
                report,
                Severity.ERROR,
                "cda.header.replacement",
                "a replacement must name the replaced document: parentDocument/id with root "
                f"{DOCUMENT_ID_ROOT} and an extension",
                element=parent_id if parent_id is not None else related,
                code="required",
            )
        elif (attribute(parent_id, "root"), attribute(parent_id, "extension")) == own_key:
            add_at(
                report,
                Severity.ERROR,
                "cda.header.replacement",
                "the document replaces itself: a replacement carries a new ClinicalDocument/id",
                element=parent_id,
                code="invariant",
            )


def _placeholder(identifier: Any) -> bool:
    """An id with no root and no extension (a bare ``<id/>`` or only a nullFlavor)."""
    return attribute(identifier, "root") is None and attribute(identifier, "extension") is None


@rule(
    "cda.header.version",
    summary="versionNumber/@value, when given, is a version number 1, 2, 3, ...",
    fix='Number versions from 1 (<versionNumber value="1"/>, 2 for the first replacement); a '
    'replacement is announced with relatedDocument typeCode="RPLC", not with 0/-1 flags.',
)
def check_version(doc: CdaDocument, report: Report) -> None:
    element = doc.find("versionNumber")
    value = attribute(element, "value")
    if value is None:
        return  # absent, or the empty <versionNumber/> of the standard's template
    try:
        number = int(value)
    except ValueError:
        return  # the schema reports a value that is not a whole number
    if number < 1:
        # Widespread: vendors write 0/1/-1 as add/modify/delete flags. Not what CDA means, but
        # the document itself is readable: warn, do not reject.
        add_at(
            report,
            Severity.WARNING,
            "cda.header.version",
            f"versionNumber is {number}: CDA numbers versions from 1; 0 and -1 look like "
            "add/delete flags, which the platform does not read (a replacement needs "
            'relatedDocument typeCode="RPLC")',
            element=element,
            attr="value",
            code="value",
        )


@rule(
    "cda.header.patient-type",
    summary="patientRole/patientType/patientTypeCode, when given, is a CV09.00.404 患者类型代码 "
    "(1 门诊, 2 急诊, 3 住院, 9 其他) in code system 2.16.156.10011.2.3.1.271.",
    fix='Write <patientType><patientTypeCode code="1" codeSystem="2.16.156.10011.2.3.1.271" '
    'codeSystemName="患者类型代码表" displayName="门诊"/></patientType> in patientRole '
    "(WS/T 500 文档头 tables, e.g. WS/T 500.6/500.7). The spelling patienttypeCode is accepted "
    "with a warning.",
)
def check_patient_type(doc: CdaDocument, report: Report) -> None:
    for holder in doc.findall("recordTarget/patientRole/patientType"):
        for element in doc.findall("patienttypeCode", holder):
            add_at(
                report,
                Severity.WARNING,
                "cda.header.patient-type",
                "patienttypeCode is spelled patientTypeCode in WS/T 500's header; accepted as "
                "written",
                element=element,
                code="structure",
            )
        for element in doc.findall("patientTypeCode", holder) + doc.findall(
            "patienttypeCode", holder
        ):
            code, system = attribute(element, "code"), attribute(element, "codeSystem")
            if attribute(element, "nullFlavor"):
                continue
            if system != PATIENT_TYPE_SYSTEM or code not in PATIENT_TYPES:
                add_at(
                    report,
                    Severity.WARNING,
                    "cda.header.patient-type",
                    f"患者类型代码 {code!r} in {system!r} is not in CV09.00.404 (1 门诊, 2 急诊, "
                    f"3 住院, 9 其他; code system {PATIENT_TYPE_SYSTEM})",
                    element=element,
                    attr="code" if system == PATIENT_TYPE_SYSTEM else "codeSystem",
                    code="code-invalid",
                )


@rule(
    "cda.header.age",
    summary='patient/age, when given, is a quantity: <age unit="岁" value="65"/> (a number of '
    "岁, 月, 天 or 小时).",
    fix='Write the age as <age unit="岁" value="65"/>: the number in value, the unit (岁, 月, '
    "天, 小时) in unit.",
)
def check_age(doc: CdaDocument, report: Report) -> None:
    for element in doc.findall("recordTarget/patientRole/patient/age"):
        value = attribute(element, "value")
        if value is None:
            continue  # a nullFlavor, or the schema's business
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if number < 0 or number != number:
            add_at(
                report,
                Severity.WARNING,
                "cda.header.age",
                f"age/@value {value!r} is not a number of {attribute(element, 'unit') or 'years'}"
                "; the platform cannot read the age",
                element=element,
                attr="value",
                code="value",
            )


def check_header(doc: CdaDocument, report: Report) -> None:
    """Run every registered header rule, in the order they are defined; all issues are reported
    together."""
    for registered in rules_of("cda.header."):
        if registered.check is not None:
            registered.check(doc, report)
