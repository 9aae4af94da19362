"""What the record browser asks and shows (pure): a resident query, timeline entries, the
classes a consent is checked against."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from hie.documents.model import class_of
from hie.errors import InvalidInput, Problem
from hie.normalize import PatientIdentity
from hie.normalize.fhir import parse_date_time
from hie.persons.model import (
    HEALTH_CARD,
    HEALTH_RECORD,
    INPATIENT,
    LOCAL_SYSTEMS,
    OUTPATIENT,
    RESIDENT_ID,
    Demographics,
    demographics_of,
)
from hie.storage.timeline import TimelineRow

# The identifiers a clinician may look a resident up by, as the form names them.
SYSTEMS = {
    "resident-id": RESIDENT_ID,
    "health-card": HEALTH_CARD,
    "health-record": HEALTH_RECORD,
    "outpatient": OUTPATIENT,
    "inpatient": INPATIENT,
}
GENDERS = ("1", "2")  # GB/T 2261.1: male, female
MAX_FIELD = 100


@dataclass(frozen=True)
class ResidentQuery:
    """A look-up: an identifier, demographics, or both (both: the residents satisfying both).
    Demographics need the birth date: it is the index's blocking key."""

    system: str | None = None  # an OID URI of SYSTEMS
    value: str | None = None
    name: str | None = None  # folded as the index folds names
    birth_date: date | None = None
    gender: str | None = None

    @property
    def local(self) -> bool:
        """A medical-record number: it names a resident only at one institution."""
        return self.system in LOCAL_SYSTEMS

    def pairs(self) -> list[tuple[str, str]]:
        """The query as search parameters, for the audit entry (masked there)."""
        pairs: list[tuple[str, str]] = []
        if self.system and self.value:
            pairs.append(("identifier", f"{self.system}|{self.value}"))
        if self.name:
            pairs.append(("name", self.name))
        if self.birth_date:
            pairs.append(("birthdate", self.birth_date.isoformat()))
        if self.gender:
            pairs.append(("gender", self.gender))
        return pairs


def parse_query(form: Mapping[str, str]) -> ResidentQuery:
    """The look-up a search form asks for; InvalidInput naming each field at fault."""
    problems: list[Problem] = []
    kind = form.get("system", "").strip()
    value = form.get("value", "").strip()[:MAX_FIELD] or None
    system = SYSTEMS.get(kind)
    if value is not None and system is None:
        problems.append(Problem("choose the kind of identifier", field="system"))
    name = form.get("name", "").strip()[:MAX_FIELD] or None
    birth_text = form.get("birth", "").strip()
    birth: date | None = None
    if birth_text:
        try:
            birth = date.fromisoformat(birth_text)
        except ValueError:
            problems.append(Problem("a date such as 1949-12-31", field="birth"))
    gender = form.get("gender", "").strip() or None
    if gender is not None and gender not in GENDERS:
        problems.append(Problem("male or female, or leave it empty", field="gender"))
    if value is None and not birth_text:
        problems.append(
            Problem("give an identifier, or a birth date (with a name or gender)", field="value")
        )
    if problems:
        raise InvalidInput("search", problems)
    folded: Demographics = demographics_of(PatientIdentity(name=name))
    return ResidentQuery(
        system=system if value else None,
        value=value,
        name=folded.name,
        birth_date=birth,
        gender=gender,
    )


Kind = Literal["document", "encounter"]
Access = Literal["own", "admin", "consent", "break-glass"]


@dataclass(frozen=True)
class Entry:
    """One line of a resident's timeline."""

    institution_code: str
    institution_name: str
    logical_id: str
    kind: Kind
    table_code: str
    type_zh: str
    type_en: str
    when: datetime
    openable: bool  # a CDA document or a FHIR document Bundle: its rendering can be opened
    classes: frozenset[str]  # what a consent's provision.class is checked against

    @property
    def resource(self) -> str:
        """How the audit entry names it: ids belong to their institution."""
        return f"{self.institution_code}:{self.logical_id}"


def classes_of(table_code: str, logical_id: str, cda: bool) -> frozenset[str]:
    """A CDA document is a DocumentReference of its table and of the document class its MHD
    entry is filed under (``category``, e.g. ``discharge``): a consent may name any of them. A
    FHIR document Bundle (its table is the document's code too) is that and Bundle and
    Composition; another FHIR record is of its resource type."""
    resource_type = "" if cda else logical_id.split("/", 1)[0]
    if resource_type not in ("", "Bundle"):
        return frozenset({resource_type})
    document = {"DocumentReference", table_code, class_of(table_code)[0]}
    return frozenset(document | ({"Bundle", "Composition"} if resource_type else set()))


def entry_of(row: TimelineRow) -> Entry:
    normalized = row.normalized or {}
    resource_type = row.logical_id.split("/", 1)[0] if not row.cda else "ClinicalDocument"
    # An encounter is dated by its start; a document by its own time (a discharge summary's
    # encounter began at admission), else its encounter's; either, failing that, by receipt.
    fields = ("encounter_start", "effective_time")
    if resource_type != "Encounter":
        fields = ("effective_time", "encounter_start")
    when = next(
        (t for f in fields if (t := parse_date_time(normalized.get(f))) is not None),
        row.received_at,
    )
    return Entry(
        institution_code=row.institution_code,
        institution_name=row.institution_name,
        logical_id=row.logical_id,
        kind="encounter" if resource_type == "Encounter" else "document",
        table_code=row.table_code,
        type_zh=row.table_zh or resource_type,
        type_en=row.table_en or resource_type,
        when=when,
        openable=row.cda or resource_type == "Bundle",
        classes=classes_of(row.table_code, row.logical_id, row.cda),
    )


def newest_first(entry: Entry) -> tuple[float, str, str]:
    """The timeline's order (a sort key): newest first, then by institution and id."""
    return (-entry.when.timestamp(), entry.institution_code, entry.logical_id)
