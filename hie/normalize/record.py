"""The normalized record: what hie extracts from a CDA document or a FHIR resource."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True)
class PatientIdentity:
    """Who a record is about. ``resident_id`` is always a valid, normalized 18-character number."""

    resident_id: str | None = None
    # An ID number was present but invalid (a warning: the record counts no person by it).
    resident_id_invalid: bool = False
    health_record_number: str | None = None  # 健康档案编号 (2.16.156.10011.1.2)
    health_card_number: str | None = None  # 居民健康卡号 (.19)
    outpatient_number: str | None = None  # 门（急）诊号 (.11)
    inpatient_number: str | None = None  # 住院号 (.12)
    gender: str | None = None  # GB/T 2261.1 code, or FHIR gender
    birth_date: date | None = None
    # Demographics for the person index's match of records without a national ID.
    name: str | None = None
    address: str | None = None

    @property
    def person_key(self) -> str | None:
        """The key a person counts under: resident ID, else health-record number, else none."""
        if self.resident_id:
            return f"id:{self.resident_id}"
        if self.health_record_number:
            return f"hr:{self.health_record_number}"
        return None


@dataclass(frozen=True)
class NormalizedRecord:
    """Fields common to CDA documents and FHIR resources. Missing values are None."""

    kind: str  # "cda" or "fhir"
    table_code: str
    logical_id: str  # CDA "<root>^<extension>" of ClinicalDocument/id; FHIR "<Type>/<id>"
    institution_code: str | None = None  # CDA custodian; FHIR: the uploading institution
    effective_time: datetime | None = None  # clinical time, for timeliness
    set_id: str | None = None
    version_number: int | None = None
    replaces: str | None = None  # logical id of the document an RPLC replacement replaces
    chain_id: str | None = None  # FHIR document Bundle.identifier: one chain of versions
    patient: PatientIdentity | None = None
    subject_reference: str | None = None  # FHIR "Patient/123" a Condition/Encounter is about
    encounter_class: str | None = None  # AMB, EMER, IMP, ... (FHIR v3 ActCode; CDA mapped)
    encounter_status: str | None = None
    encounter_start: datetime | None = None
    encounter_end: datetime | None = None
    author: str | None = None
    # ICD-10 categories (letter and two digits, e.g. "I10") of the diagnoses the record carries.
    diagnosis_categories: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for record_version.normalized (dates as ISO 8601, Nones dropped)."""

        def plain(value: Any) -> Any:
            if isinstance(value, datetime | date):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items() if v not in (None, (), [], False)}
            if isinstance(value, tuple | list):
                return [plain(v) for v in value]
            return value

        result: dict[str, Any] = plain(asdict(self))
        return result
