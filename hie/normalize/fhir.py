"""A validated FHIR R4 resource mapped to a :class:`NormalizedRecord`. Pure: no I/O, no logging.

Also the identifier and code systems the platform recognises (``schemas/fhir/
identifier-systems.json``): aliases are rewritten to the canonical system before a resource is
stored (:func:`canonical_identifiers`), so that search and person keys see one system.

Resident ID numbers never appear in messages or exceptions raised here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from typing import Any

from hie.catalog import Table
from hie.normalize.cda import DEFAULT_ZONE
from hie.normalize.codes import icd10_category
from hie.normalize.identity import normalize_resident_id
from hie.normalize.record import NormalizedRecord, PatientIdentity
from hie.resources import schemas_dir

RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
HEALTH_RECORD_SYSTEM = "urn:oid:2.16.156.10011.1.2"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_PATIENT_NUMBERS = {
    HEALTH_RECORD_SYSTEM: "health_record_number",
    "urn:oid:2.16.156.10011.1.19": "health_card_number",
    "urn:oid:2.16.156.10011.1.11": "outpatient_number",
    "urn:oid:2.16.156.10011.1.12": "inpatient_number",
}

# Where each resource type keeps its clinical time (first present wins); "a.b" is a path.
_EFFECTIVE = {
    "Encounter": ("period.start",),
    "Observation": ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued"),
    "Condition": ("recordedDate", "onsetDateTime", "onsetPeriod.start"),
    "Composition": ("date",),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod.start", "issued"),
    "Procedure": ("performedDateTime", "performedPeriod.start"),
    "MedicationRequest": ("authoredOn",),
    "Immunization": ("occurrenceDateTime", "recorded"),
    "AllergyIntolerance": ("recordedDate", "onsetDateTime"),
    "DocumentReference": ("date",),
    "Claim": ("created",),
    "ExplanationOfBenefit": ("created",),
}
_EFFECTIVE_FALLBACK = ("effectiveDateTime", "effectivePeriod.start", "occurrenceDateTime",
                       "date", "authoredOn", "created", "period.start")  # fmt: skip
_DATE_TIME = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T([0-9:.]+)(Z|[+-]\d{2}:\d{2})?)?)?)?")


@dataclass(frozen=True)
class Systems:
    aliases: dict[str, str]  # alias -> canonical identifier system
    icd10: frozenset[str]
    icd10_arcs: tuple[str, ...]
    document_types: frozenset[str]


@cache
def systems() -> Systems:
    """The platform's identifier and code systems (read once)."""
    data = json.loads((schemas_dir() / "fhir" / "identifier-systems.json").read_text("utf-8"))
    aliases = {}
    for entry in data["identifier_systems"]:
        for alias in entry["aliases"]:
            aliases[alias] = entry["canonical"]
    icd10 = data["icd10_systems"]
    return Systems(
        aliases,
        frozenset(icd10["systems"]),
        tuple(arc + "." for arc in icd10["sub_arcs_of"]),
        frozenset(data["document_type_systems"]["systems"]),
    )


def canonical_system(system: str) -> str:
    """The canonical form of an identifier system (itself when it has no alias)."""
    trimmed = system.strip()
    return systems().aliases.get(trimmed, trimmed)


def is_icd10_system(system: object) -> bool:
    if not isinstance(system, str):
        return False
    known = systems()
    return system in known.icd10 or system.startswith(known.icd10_arcs)


def is_document_type_system(system: object) -> bool:
    return isinstance(system, str) and system in systems().document_types


def _canonical(value: Any) -> Any:
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if not isinstance(value, dict):
        return value
    result = {key: _canonical(item) for key, item in value.items()}
    identifiers = result.get("identifier")
    for identifier in identifiers if isinstance(identifiers, list) else [identifiers]:
        if isinstance(identifier, dict) and isinstance(identifier.get("system"), str):
            identifier["system"] = canonical_system(identifier["system"])
    return result


def canonical_identifiers(resource: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``resource`` whose identifier systems (everywhere, nested resources included)
    are the canonical ones; the input is not changed."""
    result: dict[str, Any] = _canonical(resource)
    return result


def parse_date_time(value: object) -> datetime | None:
    """A FHIR date/dateTime/instant as an aware datetime: a date alone is midnight in the
    platform's zone (as is a time without offset, which R4 forbids but vendors send)."""
    if not isinstance(value, str):
        return None
    match = _DATE_TIME.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, clock, _zone = match.groups()
    try:
        if clock is None:
            return datetime.combine(
                date(int(year), int(month or 1), int(day or 1)), time(), DEFAULT_ZONE
            )
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=DEFAULT_ZONE)


def _get(resource: dict[str, Any], path: str) -> Any:
    value: Any = resource
    for name in path.split("."):
        value = value.get(name) if isinstance(value, dict) else None
    return value


def effective_time(resource: dict[str, Any]) -> datetime | None:
    paths = _EFFECTIVE.get(str(resource.get("resourceType")), _EFFECTIVE_FALLBACK)
    for path in paths:
        parsed = parse_date_time(_get(resource, path))
        if parsed is not None:
            return parsed
    return None


def _list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def patient_identity(patient: dict[str, Any]) -> PatientIdentity:
    """Who a Patient resource is: resident ID (normalized, or flagged invalid), numbers, gender
    and birth date."""
    numbers: dict[str, str] = {}
    resident_id: str | None = None
    invalid = False
    for identifier in _list(patient.get("identifier")):
        if not isinstance(identifier, dict):
            continue
        system, value = identifier.get("system"), identifier.get("value")
        if not isinstance(system, str) or not isinstance(value, str):
            continue
        system = canonical_system(system)
        if system == RESIDENT_ID_SYSTEM:
            if resident_id is None:
                resident_id = normalize_resident_id(value)
                invalid = invalid or resident_id is None
        elif system in _PATIENT_NUMBERS:
            numbers.setdefault(_PATIENT_NUMBERS[system], value.strip())
    birth = patient.get("birthDate")
    born = None
    if isinstance(birth, str) and len(birth) == 10:
        try:
            born = date.fromisoformat(birth)
        except ValueError:
            born = None
    gender = patient.get("gender")
    return PatientIdentity(
        resident_id=resident_id,
        resident_id_invalid=invalid and resident_id is None,
        gender=gender if isinstance(gender, str) else None,
        birth_date=born,
        name=_first_text(patient.get("name"), ("family", "given")),
        address=_first_text(patient.get("address"), ("state", "city", "district", "line")),
        **numbers,
    )


def _first_text(values: Any, parts: tuple[str, ...]) -> str | None:
    """The first HumanName or Address as one string: its ``text``, else its parts run together
    (Chinese names and addresses are written without spaces)."""
    for value in _list(values):
        if not isinstance(value, dict):
            continue
        text = value.get("text")
        if not isinstance(text, str) or not text.strip():
            pieces = [
                piece
                for part in parts
                for piece in _list(value.get(part))
                if isinstance(piece, str)
            ]
            text = "".join(pieces)
        text = "".join(text.split())
        if text:
            return text
    return None


def diagnosis_categories(resource: dict[str, Any]) -> tuple[str, ...]:
    """ICD-10 categories of a Condition's codes in the recognised ICD-10 systems."""
    code = resource.get("code")
    found: list[str] = []
    for coding in _list(code.get("coding") if isinstance(code, dict) else None):
        if not isinstance(coding, dict) or not is_icd10_system(coding.get("system")):
            continue
        value = coding.get("code")
        category = icd10_category(value) if isinstance(value, str) else None
        if category is not None and category not in found:
            found.append(category)
    return tuple(found)


def encounter_class(encounter: dict[str, Any]) -> str | None:
    """The v3 ActCode of Encounter.class (other systems count no visit)."""
    coding = encounter.get("class")
    if isinstance(coding, dict) and coding.get("system") == ACT_CODE_SYSTEM:
        code = coding.get("code")
        return code if isinstance(code, str) else None
    return None


def _reference(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        reference: str = value["reference"]
        return reference
    return None


def _encounter_fields(encounter: dict[str, Any]) -> dict[str, Any]:
    value = encounter.get("period")
    period: dict[str, Any] = value if isinstance(value, dict) else {}
    status = encounter.get("status")
    return {
        "encounter_class": encounter_class(encounter),
        "encounter_status": status if isinstance(status, str) else None,
        "encounter_start": parse_date_time(period.get("start")),
        "encounter_end": parse_date_time(period.get("end")),
    }


def _entry_resource(bundle: dict[str, Any], reference: str | None) -> dict[str, Any] | None:
    """The entry of a Bundle a reference points to: by fullUrl, or by "<Type>/<id>"."""
    if reference is None:
        return None
    for entry in _list(bundle.get("entry")):
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        resource: dict[str, Any] = entry["resource"]
        full_url = entry.get("fullUrl")
        local = f"{resource.get('resourceType')}/{resource.get('id')}"
        suffix = isinstance(full_url, str) and full_url.endswith("/" + reference)
        if reference in (full_url, local) or suffix:
            return resource
    return None


def _document(bundle: dict[str, Any], table: Table) -> NormalizedRecord:
    entries = [e.get("resource") for e in _list(bundle.get("entry")) if isinstance(e, dict)]
    composition: dict[str, Any] = entries[0] if entries and isinstance(entries[0], dict) else {}
    value = bundle.get("identifier")
    identifier: dict[str, Any] = value if isinstance(value, dict) else {}
    chain = None
    if identifier.get("value"):
        chain = f"{identifier.get('system') or ''}|{identifier['value']}"
    subject = _reference(composition.get("subject"))
    patient = _entry_resource(bundle, subject)
    encounter = _entry_resource(bundle, _reference(composition.get("encounter")))
    categories: list[str] = []
    for resource in entries:
        if isinstance(resource, dict) and resource.get("resourceType") == "Condition":
            categories.extend(c for c in diagnosis_categories(resource) if c not in categories)
    author = composition.get("author")
    authors = _list(author)
    return NormalizedRecord(
        kind="fhir",
        table_code=table.code,
        logical_id=f"Bundle/{bundle.get('id')}",
        effective_time=parse_date_time(composition.get("date"))
        or parse_date_time(bundle.get("timestamp")),
        chain_id=chain,
        patient=patient_identity(patient) if patient is not None else PatientIdentity(),
        subject_reference=subject,
        author=_reference(authors[0]) if authors else None,
        diagnosis_categories=tuple(categories),
        **(_encounter_fields(encounter) if encounter is not None else {}),
    )


def normalize_resource(resource: dict[str, Any], table: Table) -> NormalizedRecord:
    """The normalized record of a validated resource (a Bundle only as a ``document``)."""
    rtype = str(resource.get("resourceType"))
    if rtype == "Bundle" and resource.get("type") == "document":
        return _document(resource, table)
    subject = _reference(resource.get("subject")) or _reference(resource.get("patient"))
    fields: dict[str, Any] = {}
    if rtype == "Patient":
        fields["patient"] = patient_identity(resource)
    elif rtype == "Encounter":
        fields.update(_encounter_fields(resource))
    elif rtype == "Condition":
        fields["diagnosis_categories"] = diagnosis_categories(resource)
    return NormalizedRecord(
        kind="fhir",
        table_code=table.code,
        logical_id=f"{rtype}/{resource.get('id')}",
        effective_time=effective_time(resource),
        subject_reference=subject,
        **fields,
    )
