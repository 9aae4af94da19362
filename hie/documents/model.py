"""What a DocumentReference says about a stored CDA document or FHIR document Bundle, and the
registry's search tokens. Pure: no I/O. The CDA is read from a tree parsed by
``hie/validators/xml.py``."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import simplejson

from hie.catalog import Table
from hie.catalog.model import DOCUMENT_TYPE_SYSTEM
from hie.normalize import NormalizedRecord
from hie.normalize.fhir import parse_date_time
from hie.storage.documents import DocumentRow

CDA_MEDIA_TYPE = "application/hl7-cda+xml"
LOINC = "http://loinc.org"
WST_TYPE_SYSTEM = f"urn:oid:{DOCUMENT_TYPE_SYSTEM}"
# hie's own code systems where WS/T has none: the document class (the WS/T 500 groups of
# tables), the institution and its kind (facility), as documented in docs/documents.md.
CLASS_SYSTEM = "urn:hie:document-class"
INSTITUTION_SYSTEM = "urn:hie:institution"
INSTITUTION_KIND_SYSTEM = "urn:hie:institution-kind"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
FORMAT_SYSTEM = "urn:ietf:rfc:3986"  # the format code is the WS/T template's OID as a URN
ENTRY_UUID_SYSTEM = "urn:ietf:rfc:3986"
# The platform's identifier systems for a resident, strongest shown first (never the resident
# ID number when another key is there: the DocumentReference is listed more often than read).
_SUBJECT_SYSTEMS = (
    ("health_record_number", "urn:oid:2.16.156.10011.1.2"),
    ("health_card_number", "urn:oid:2.16.156.10011.1.19"),
    ("resident_id", "urn:oid:2.16.156.10011.1.3"),
)
_NAMESPACE = uuid.UUID("5b0e3d5c-7f1e-4b8e-9a55-8f3f3b8f6d17")

# LOINC document types of the WS/T 500 tables whose meaning LOINC names exactly.
LOINC_TYPES: dict[str, tuple[str, str]] = {
    "C0001": ("60591-5", "Patient summary Document"),
    "C0002": ("34108-1", "Outpatient Note"),
    "C0007": ("11502-2", "Laboratory report"),
    "C0009": ("11504-8", "Surgical operation note"),
    "C0034": ("34117-2", "History and physical note"),
    "C0038": ("11506-3", "Progress note"),
    "C0045": ("11488-4", "Consult note"),
    "C0053": ("18842-5", "Discharge summary"),
}

# The document class (MHD category, XDS classCode) of each WS/T 500 table: its group in the
# standard. Other tables (WS/T 483 health records) are "health-record".
_CLASSES: tuple[tuple[int, int, str, str], ...] = (
    (1, 1, "summary", "病历概要"),
    (2, 3, "outpatient", "门（急）诊病历"),
    (4, 5, "prescription", "处方"),
    (6, 7, "report", "检查检验记录"),
    (8, 16, "treatment", "治疗处置记录"),
    (17, 25, "nursing", "护理记录"),
    (26, 31, "consent", "知情告知信息"),
    (32, 33, "front-page", "住院病案首页"),
    (34, 36, "admission", "入院记录"),
    (37, 48, "progress", "住院病程记录"),
    (49, 51, "discharge", "出院记录"),
    (52, 52, "orders", "住院医嘱"),
    (53, 53, "discharge", "出院小结"),
)


def class_of(table_code: str) -> tuple[str, str]:
    """The document class code and its Chinese display for a table code."""
    if table_code.startswith("C") and table_code[1:].isdigit():
        number = int(table_code[1:])
        for low, high, code, display in _CLASSES:
            if low <= number <= high:
                return code, display
    return "health-record", "健康档案"


def document_id(institution_code: str, logical_id: str) -> str:
    """The DocumentReference id of a stored CDA document: the same every time it is worked out,
    so the backfill and the store step agree."""
    return str(uuid.uuid5(_NAMESPACE, f"{institution_code}|{logical_id}"))


def sha1_base64(data: bytes) -> str:
    """MHD's attachment.hash: the SHA-1 of the bytes, base64."""
    return base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()


def retrieve_path(document: str) -> str:
    """Where ITI-68 retrieves a document (relative to the server's base URL)."""
    return f"/documents/{document}"


def tokens(system: str | None, code: str | None) -> list[str]:
    """The search tokens of one coding or identifier: ``system|code`` and the bare code, or
    ``|code`` when there is no system."""
    if not code:
        return []
    return [f"{system}|{code}", code] if system else [f"|{code}", code]


def codeable_tokens(concept: Any) -> list[str]:
    """The tokens of every coding of a CodeableConcept."""
    found: list[str] = []
    codings = concept.get("coding") if isinstance(concept, dict) else None
    for coding in codings if isinstance(codings, list) else []:
        if isinstance(coding, dict):
            found += tokens(coding.get("system"), coding.get("code"))
    return found


def identifier_tokens(identifier: Any) -> list[str]:
    if not isinstance(identifier, dict):
        return []
    return tokens(identifier.get("system"), identifier.get("value"))


@dataclass(frozen=True)
class CdaHeader:
    """The WS/T 500 header facts a DocumentReference and the HTML rendering show."""

    title: str | None
    code: str | None
    code_system: str | None
    code_display: str | None
    template: str | None
    language: str | None
    confidentiality: str | None
    effective_time: str | None
    patient_name: str | None
    gender: str | None
    gender_display: str | None
    birth_time: str | None
    age: str | None
    author_name: str | None
    author_id: str | None
    author_time: str | None
    custodian_id: str | None
    custodian_name: str | None
    department: str | None
    encounter_id: str | None
    encounter_low: str | None
    encounter_high: str | None


_HL7 = "{urn:hl7-org:v3}"


def _path(element: Any, path: str) -> Any:
    for step in path.split("/"):
        if element is None:
            return None
        element = element.find(f"{_HL7}{step}")
    return element


def _attr(element: Any, name: str) -> str | None:
    value = None if element is None else element.get(name)
    return str(value).strip() or None if value is not None else None


def _text(element: Any) -> str | None:
    if element is None:
        return None
    text = " ".join("".join(element.itertext()).split())
    return text or None


def _ii(element: Any) -> str | None:
    root, extension = _attr(element, "root"), _attr(element, "extension")
    if root is None:
        return None
    return f"{root}^{extension}" if extension else root


def read_header(tree: Any) -> CdaHeader:
    """The header facts of a parsed CDA document; a missing part is None."""
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    code = _path(root, "code")
    patient = _path(root, "recordTarget/patientRole/patient")
    gender = _path(patient, "administrativeGenderCode")
    age = _path(patient, "age")
    author = _path(root, "author")
    organization = _path(root, "custodian/assignedCustodian/representedCustodianOrganization")
    encounter = _path(root, "componentOf/encompassingEncounter")
    period = _path(encounter, "effectiveTime")
    template = _path(root, "templateId")
    return CdaHeader(
        title=_text(_path(root, "title")),
        code=_attr(code, "code"),
        code_system=_attr(code, "codeSystem"),
        code_display=_attr(code, "displayName"),
        template=_attr(template, "root"),
        language=_attr(_path(root, "languageCode"), "code"),
        confidentiality=_attr(_path(root, "confidentialityCode"), "code"),
        effective_time=_attr(_path(root, "effectiveTime"), "value"),
        patient_name=_text(_path(patient, "name")),
        gender=_attr(gender, "code"),
        gender_display=_attr(gender, "displayName"),
        birth_time=_attr(_path(patient, "birthTime"), "value"),
        age=" ".join(p for p in (_attr(age, "value"), _attr(age, "unit")) if p) or None,
        author_name=_text(_path(author, "assignedAuthor/assignedPerson/name")),
        author_id=_ii(_path(author, "assignedAuthor/id")),
        author_time=_attr(_path(author, "time"), "value"),
        custodian_id=_attr(_path(organization, "id"), "extension"),
        custodian_name=_text(_path(organization, "name")),
        department=_text(
            _path(encounter, "location/healthCareFacility/serviceProviderOrganization/name")
        ),
        encounter_id=_ii(_path(encounter, "id")),
        encounter_low=_attr(_path(period, "low"), "value") or _attr(period, "value"),
        encounter_high=_attr(_path(period, "high"), "value"),
    )


@dataclass(frozen=True)
class Facility:
    code: str
    name: str
    kind: str


def _instant(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _subject(record: NormalizedRecord, display: str | None) -> dict[str, Any]:
    """The entry's subject: the patient's first identifier of ``_SUBJECT_SYSTEMS``, and the
    name the document shows."""
    subject: dict[str, Any] = {}
    patient = record.patient
    if patient is not None:
        for attribute, system in _SUBJECT_SYSTEMS:
            value = getattr(patient, attribute)
            if value:
                subject["identifier"] = {"system": system, "value": value}
                break
    if display:
        subject["display"] = display
    return subject


def cda_entry(
    record: NormalizedRecord,
    table: Table,
    header: CdaHeader,
    facility: Facility,
    data: bytes,
    received_at: datetime,
    *,
    status: str = "current",
    replaces: str | None = None,
) -> DocumentRow:
    """The registry entry (and its DocumentReference) of a stored CDA document."""
    doc_id = document_id(facility.code, record.logical_id)
    root, _, extension = record.logical_id.partition("^")
    type_codings = []
    if table.code in LOINC_TYPES:
        loinc, display = LOINC_TYPES[table.code]
        type_codings.append({"system": LOINC, "code": loinc, "display": display})
    type_codings.append(
        {
            "system": WST_TYPE_SYSTEM,
            "code": table.cda_code or table.code,
            "display": header.code_display or table.name_zh,
        }
    )
    author: dict[str, Any] = {}
    if record.author:
        author_root, _, author_extension = record.author.partition("^")
        author["identifier"] = {
            "system": f"urn:oid:{author_root}",
            "value": author_extension or author_root,
        }
    if header.author_name:
        author["display"] = header.author_name
    period_low = record.encounter_start or record.effective_time
    period_high = record.encounter_end
    period: dict[str, Any] | None = None
    if period_low is not None:
        period = {"start": _instant(period_low)}
        if period_high is not None:
            period["end"] = _instant(period_high)
    encounter: dict[str, str] | None = None
    if header.encounter_id:
        encounter_root, _, encounter_extension = header.encounter_id.partition("^")
        encounter = {
            "system": f"urn:oid:{encounter_root}",
            "value": encounter_extension or encounter_root,
        }
    named: dict[str, str] = {}
    if header.language:
        named["language"] = header.language
    if header.title:
        named["title"] = header.title
    return _registry_entry(
        record,
        table,
        facility,
        received_at,
        _Described(
            doc_id=doc_id,
            media_type=CDA_MEDIA_TYPE,
            data=data,
            master={"system": f"urn:oid:{root}", "value": extension or root},
            type_codings=type_codings,
            categories=[],
            subject=_subject(record, header.patient_name),
            authors=[author] if author else [],
            doc_status="final",
            title=header.title,
            confidentiality=header.confidentiality or "N",
            named=named,
            period=period,
            period_low=period_low,
            period_high=period_high,
            format_code=f"urn:oid:{header.template}" if header.template else None,
            encounter=encounter,
        ),
        status=status,
        replaces=replaces,
    )


@dataclass(frozen=True)
class _Described:
    """What a stored document says of itself, read one way from a CDA header and another from
    a FHIR Composition; the rest of its registry entry is built the same way for both."""

    doc_id: str
    media_type: str
    data: bytes
    master: dict[str, str]
    type_codings: list[dict[str, Any]]
    # Categories after the platform's class (which comes first: a consent's provision.class
    # names it, see consent_classes).
    categories: list[dict[str, Any]]
    subject: dict[str, Any]
    authors: list[dict[str, Any]]
    doc_status: str
    title: str | None
    confidentiality: str
    # The attachment's title and language, in the order the document's kind writes them.
    named: dict[str, str]
    period: dict[str, Any] | None
    period_low: datetime | None
    period_high: datetime | None
    format_code: str | None = None
    encounter: dict[str, str] | None = None


def _registry_entry(
    record: NormalizedRecord,
    table: Table,
    facility: Facility,
    received_at: datetime,
    described: _Described,
    *,
    status: str,
    replaces: str | None,
) -> DocumentRow:
    """A registry entry and its DocumentReference from what the document says of itself and
    where and when it was stored."""
    doc_id = described.doc_id
    class_code, class_display = class_of(table.code)
    categories = [
        {"coding": [{"system": CLASS_SYSTEM, "code": class_code, "display": class_display}]},
        *described.categories,
    ]
    facility_type = {
        "coding": [
            {"system": INSTITUTION_SYSTEM, "code": facility.code, "display": facility.name},
            {"system": INSTITUTION_KIND_SYSTEM, "code": facility.kind},
        ]
    }
    setting = (
        {"coding": [{"system": ACT_CODE, "code": record.encounter_class}]}
        if record.encounter_class
        else None
    )
    custodian = {
        "identifier": {"system": INSTITUTION_SYSTEM, "value": facility.code},
        "display": facility.name,
    }
    context: dict[str, Any] = {"facilityType": facility_type}
    if setting:
        context["practiceSetting"] = setting
    if described.period is not None:
        context["period"] = described.period
    if described.encounter is not None:
        context["related"] = [{"identifier": described.encounter}]
    data = described.data
    size, digest = len(data), sha1_base64(data)
    attachment: dict[str, Any] = {
        "contentType": described.media_type,
        "url": retrieve_path(doc_id),
        "size": size,
        "hash": digest,
        **described.named,
    }
    if record.effective_time is not None:
        attachment["creation"] = _instant(record.effective_time)
    content: dict[str, Any] = {"attachment": attachment}
    if described.format_code:
        content["format"] = {"system": FORMAT_SYSTEM, "code": described.format_code}
    entry_uuid = {"use": "official", "system": ENTRY_UUID_SYSTEM, "value": f"urn:uuid:{doc_id}"}
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": doc_id,
        "masterIdentifier": described.master,
        "identifier": [entry_uuid],
        "status": status,
        "docStatus": described.doc_status,
        "type": {"coding": described.type_codings},
        "category": categories,
        "subject": described.subject,
        "date": _instant(received_at),
        "author": described.authors,
        "custodian": custodian,
        "description": described.title or table.name_zh,
        "securityLabel": [
            {"coding": [{"system": CONFIDENTIALITY, "code": described.confidentiality}]}
        ],
        "content": [content],
        "context": context,
    }
    if not described.authors:
        del resource["author"]
    if replaces:
        resource["relatesTo"] = [
            {"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}
        ]
    return DocumentRow(
        id=doc_id,
        institution_code=facility.code,
        status=status,
        master_identifier=master_token(described.master),
        content_type=described.media_type,
        size=size,
        hash=digest,
        resource=resource,
        document_record=record.logical_id,
        subject_record=record.logical_id,
        identifiers=identifier_tokens(described.master) + identifier_tokens(entry_uuid),
        types=codeable_tokens({"coding": described.type_codings}),
        categories=[t for c in categories for t in codeable_tokens(c)],
        formats=tokens(FORMAT_SYSTEM, described.format_code),
        facilities=codeable_tokens(facility_type),
        settings=codeable_tokens(setting),
        authors=[t for a in described.authors for t in author_tokens(a)],
        related=identifier_tokens(described.encounter),
        date=received_at,
        period_low=described.period_low,
        period_high=described.period_high,
        replaces=replaces,
    )


def author_tokens(author: dict[str, Any]) -> list[str]:
    """An author's search tokens: its reference, identifier and display name."""
    found = identifier_tokens(author.get("identifier"))
    if isinstance(author.get("reference"), str):
        found.append(author["reference"])
    if isinstance(author.get("display"), str):
        found.append(author["display"])
    return found


FHIR_MEDIA_TYPE = "application/fhir+json"


def fhir_document_bytes(bundle: dict[str, Any]) -> bytes:
    """The bytes ITI-68 serves for a stored FHIR document Bundle, and that its entry's size and
    hash describe: the stored form as canonical JSON (sorted keys, as ``content_hash`` writes
    it), so the same stored Bundle always gives the same bytes whatever order jsonb keeps."""
    text = simplejson.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def composition_of(bundle: dict[str, Any]) -> dict[str, Any]:
    """A document Bundle's Composition: its first entry's resource."""
    entries = _dicts(bundle.get("entry"))
    return _dict(entries[0].get("resource")) if entries else {}


def fhir_master_identifier(bundle: dict[str, Any], doc_id: str) -> dict[str, str]:
    """Bundle.identifier (a document's, version-specific in FHIR); a Bundle stored without one
    gets the entry's own URN so that the registry's identifier stays unique."""
    identifier = _dict(bundle.get("identifier"))
    value = identifier.get("value")
    if isinstance(value, str) and value:
        system = identifier.get("system")
        return {"system": system, "value": value} if isinstance(system, str) else {"value": value}
    return {"system": ENTRY_UUID_SYSTEM, "value": f"urn:uuid:{doc_id}"}


def master_token(master: dict[str, str]) -> str:
    """The registry's ``master_identifier`` column of a masterIdentifier."""
    return f"{master.get('system', '')}|{master['value']}"


def replaced_targets(composition: dict[str, Any]) -> list[tuple[str, str]]:
    """What ``Composition.relatesTo`` (code ``replaces``) names: ("identifier", "system|value")
    or ("reference", "Bundle/<id>" or "Composition/<id>")."""
    found: list[tuple[str, str]] = []
    for relation in _dicts(composition.get("relatesTo")):
        if relation.get("code") != "replaces":
            continue
        identifier = _dict(relation.get("targetIdentifier"))
        if isinstance(identifier.get("value"), str):
            found.append(("identifier", master_token(identifier)))
        reference = _dict(relation.get("targetReference")).get("reference")
        if isinstance(reference, str):
            found.append(("reference", reference))
    return found


def _fhir_period(
    composition: dict[str, Any], record: NormalizedRecord
) -> tuple[datetime | None, datetime | None]:
    """The service period: Composition.event.period, else the encounter's, else
    Composition.date."""
    for event in _dicts(composition.get("event")):
        period = _dict(event.get("period"))
        low, high = parse_date_time(period.get("start")), parse_date_time(period.get("end"))
        if low is not None or high is not None:
            return low, high
    if record.encounter_start is not None:
        return record.encounter_start, record.encounter_end
    return record.effective_time, None


def fhir_entry(
    bundle: dict[str, Any],
    record: NormalizedRecord,
    table: Table,
    facility: Facility,
    received_at: datetime,
    *,
    status: str = "current",
    replaces: str | None = None,
) -> DocumentRow:
    """The registry entry (and its DocumentReference) of a stored FHIR document Bundle."""
    doc_id = document_id(facility.code, record.logical_id)
    composition = composition_of(bundle)
    type_codings = _dicts(_dict(composition.get("type")).get("coding"))
    if table.code in LOINC_TYPES and not any(c.get("system") == LOINC for c in type_codings):
        loinc, display = LOINC_TYPES[table.code]
        type_codings = [{"system": LOINC, "code": loinc, "display": display}, *type_codings]
    authors: list[dict[str, Any]] = [
        {k: a[k] for k in ("reference", "display", "identifier") if k in a}
        for a in _dicts(composition.get("author"))
    ]
    period_low, period_high = _fhir_period(composition, record)
    period = None
    if period_low is not None or period_high is not None:
        period = {k: _instant(v) for k, v in (("start", period_low), ("end", period_high)) if v}
    title = composition.get("title")
    title = title if isinstance(title, str) and title else None
    named: dict[str, str] = {}
    if title:
        named["title"] = title
    if isinstance(bundle.get("language"), str):
        named["language"] = bundle["language"]
    confidentiality = composition.get("confidentiality")
    return _registry_entry(
        record,
        table,
        facility,
        received_at,
        _Described(
            doc_id=doc_id,
            media_type=FHIR_MEDIA_TYPE,
            data=fhir_document_bytes(bundle),
            master=fhir_master_identifier(bundle, doc_id),
            type_codings=type_codings,
            categories=_dicts(composition.get("category")),
            subject=_subject(record, record.patient.name if record.patient is not None else None),
            authors=[a for a in authors if a],
            doc_status=composition.get("status") or "final",
            title=title,
            confidentiality=confidentiality if isinstance(confidentiality, str) else "N",
            named=named,
            period=period,
            period_low=period_low,
            period_high=period_high,
        ),
        status=status,
        replaces=replaces,
    )
