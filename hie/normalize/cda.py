"""A validated CDA shared document mapped to a :class:`NormalizedRecord`. Pure: no I/O, no logging.

Also the HL7 timestamp reading the header rules share, so that "a real date" means the same thing
to the validator and to the record.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree  # type: ignore[import-untyped]

from hie.catalog import Table
from hie.normalize.codes import icd10_category
from hie.normalize.identity import normalize_resident_id
from hie.normalize.record import NormalizedRecord, PatientIdentity

DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")

_HL7 = "urn:hl7-org:v3"
_DOCUMENT_ID_ROOT = "2.16.156.10011.1.1"
_RESIDENT_ID_ROOT = "2.16.156.10011.1.3"
_PATIENT_ROOTS = {
    "2.16.156.10011.1.2": "health_record_number",
    "2.16.156.10011.1.19": "health_card_number",
    "2.16.156.10011.1.11": "outpatient_number",
    "2.16.156.10011.1.12": "inpatient_number",
}
_ICD10_SYSTEM = "2.16.156.10011.2.3.3.11"
_ACT_CODE_SYSTEM = "2.16.840.1.113883.5.4"
_ACT_CODES = frozenset({"AMB", "EMER", "IMP", "ACUTE", "NONAC", "SS", "HH", "VR", "FLD", "OBSENC"})
# CV09.00.404 patient type: 1 门诊, 2 急诊, 3 住院
_PATIENT_TYPES = {"1": "AMB", "2": "EMER", "3": "IMP"}
# When the document does not say: the tables whose visits are of one class (report-spec.md).
_TABLE_CLASSES = {"C0002": "AMB", "C0003": "EMER", "C0053": "IMP"}

_TIMESTAMP = re.compile(
    r"(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})"
    r"(?:(?P<h>\d{2})(?:(?P<mi>\d{2})(?:(?P<s>\d{2})(?:\.(?P<f>\d+))?)?)?)?"
    r"(?P<z>[+-]\d{4})?"
)


def timestamp_problem(value: str) -> str | None:
    """Why ``value`` is not a usable HL7 timestamp of at least day precision, or None."""
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        return f"{value!r} is not a timestamp yyyyMMdd[HHmmss][+zzzz]"
    try:
        _build(match, DEFAULT_ZONE)
    except ValueError:
        return f"{value!r} is not a real date and time"
    return None


def parse_timestamp(value: str | None, zone: tzinfo = DEFAULT_ZONE) -> datetime | None:
    """An aware datetime; a timestamp without an offset is in ``zone``. None when unusable."""
    if value is None:
        return None
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        return None
    try:
        return _build(match, zone)
    except ValueError:
        return None


def parse_date(value: str | None) -> date | None:
    """The date of a timestamp (its first eight digits), or None."""
    moment = parse_timestamp(value, UTC)
    return moment.date() if moment is not None else None


def _build(match: re.Match[str], zone: tzinfo) -> datetime:
    offset = match["z"]
    if offset:
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours > 14 or minutes > 59:
            raise ValueError("offset out of range")
        delta = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-delta if offset[0] == "-" else delta)
    fraction = (match["f"] or "")[:6].ljust(6, "0")
    return datetime(
        int(match["y"]),
        int(match["mo"]),
        int(match["d"]),
        int(match["h"] or 0),
        int(match["mi"] or 0),
        int(match["s"] or 0),
        int(fraction),
        tzinfo=zone,
    )


def _q(path: str) -> str:
    return "/".join(
        f"{{{_HL7}}}{step}" if step not in (".", "..") else step for step in path.split("/")
    )


def _find(element: Any, path: str) -> Any:
    return None if element is None else element.find(_q(path))


def _findall(element: Any, path: str) -> list[Any]:
    return [] if element is None else list(element.findall(_q(path)))


def _attr(element: Any, name: str) -> str | None:
    if element is None:
        return None
    value = element.get(name)
    return str(value).strip() or None if value is not None else None


def _ii(element: Any) -> str | None:
    """``<root>^<extension>`` (or the root alone) of an instance identifier."""
    root, extension = _attr(element, "root"), _attr(element, "extension")
    if root is None:
        return None
    return f"{root}^{extension}" if extension else root


def normalize_cda(tree: Any, table: Table, *, zone: tzinfo = DEFAULT_ZONE) -> NormalizedRecord:
    """Map a document that passed validation to its normalized record.

    Never raises on a missing optional part: it is None. Resident ID numbers are only kept in
    normalized form and never appear in messages.
    """
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    document_id = _find(root, "id")
    version = _attr(_find(root, "versionNumber"), "value")
    encounter = _find(root, "componentOf/encompassingEncounter")
    period = _find(encounter, "effectiveTime")
    start = parse_timestamp(_attr(_find(period, "low"), "value") or _attr(period, "value"), zone)
    end = parse_timestamp(_attr(_find(period, "high"), "value"), zone)
    return NormalizedRecord(
        kind="cda",
        table_code=table.code,
        logical_id=_ii(document_id) or "",
        institution_code=_attr(
            _find(root, "custodian/assignedCustodian/representedCustodianOrganization/id"),
            "extension",
        ),
        effective_time=parse_timestamp(_attr(_find(root, "effectiveTime"), "value"), zone),
        set_id=_ii(_find(root, "setId")),
        version_number=int(version) if version and re.fullmatch(r"-?\d+", version) else None,
        replaces=_replaces(root),
        patient=_patient(root),
        encounter_class=_encounter_class(encounter, table),
        encounter_start=start,
        encounter_end=end,
        author=_author(root),
        diagnosis_categories=_diagnoses(root),
    )


def _replaces(root: Any) -> str | None:
    for related in _findall(root, "relatedDocument"):
        if _attr(related, "typeCode") == "RPLC":
            return _ii(_find(related, "parentDocument/id"))
    return None


def _patient(root: Any) -> PatientIdentity:
    role = _find(root, "recordTarget/patientRole")
    patient = _find(role, "patient")
    numbers: dict[str, str] = {}
    for identifier in _findall(role, "id") + _findall(patient, "id"):
        field = _PATIENT_ROOTS.get(_attr(identifier, "root") or "")
        extension = _attr(identifier, "extension")
        if field and extension and field not in numbers:
            numbers[field] = extension
    resident_id, invalid = None, False
    for identifier in _findall(patient, "id") + _findall(role, "id"):
        if _attr(identifier, "root") == _RESIDENT_ID_ROOT:
            raw = _attr(identifier, "extension")
            if raw:
                resident_id = normalize_resident_id(raw)
                invalid = resident_id is None
            break
    return PatientIdentity(
        resident_id=resident_id,
        resident_id_invalid=invalid,
        gender=_attr(_find(patient, "administrativeGenderCode"), "code"),
        birth_date=parse_date(_attr(_find(patient, "birthTime"), "value")),
        health_record_number=numbers.get("health_record_number"),
        health_card_number=numbers.get("health_card_number"),
        outpatient_number=numbers.get("outpatient_number"),
        inpatient_number=numbers.get("inpatient_number"),
        name=_joined_text(_find(patient, "name")),
        address=_joined_text(_find(role, "addr")),
    )


def _joined_text(element: Any) -> str | None:
    """An element's text with its parts' (a CDA name or addr is text or parts), spaces dropped."""
    if element is None:
        return None
    text = "".join("".join(element.itertext()).split())
    return text or None


def _encounter_class(encounter: Any, table: Table) -> str | None:
    code_element = _find(encounter, "code")
    code = (_attr(code_element, "code") or "").upper()
    system = _attr(code_element, "codeSystem")
    if code in _ACT_CODES and system in (None, _ACT_CODE_SYSTEM):
        return code
    if code in _PATIENT_TYPES:
        return _PATIENT_TYPES[code]
    return _TABLE_CLASSES.get(table.code)


def _author(root: Any) -> str | None:
    for identifier in _findall(root, "author/assignedAuthor/id"):
        found = _ii(identifier)
        if found:
            return found
    return None


def _diagnoses(root: Any) -> tuple[str, ...]:
    categories: set[str] = set()
    for element in root.iter(etree.Element):
        system = element.get("codeSystem")
        if system != _ICD10_SYSTEM and not (system or "").startswith(_ICD10_SYSTEM + "."):
            continue
        code = element.get("code")
        category = icd10_category(code) if code else None
        if category:
            categories.add(category)
    return tuple(sorted(categories))
