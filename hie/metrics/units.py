"""The counting rules of report-spec.md: which units (visits, discharges, persons) a record
qualifies. Pure: the caller resolves chain and person keys from what is stored."""

from __future__ import annotations

from hie.catalog import Table
from hie.normalize import NormalizedRecord
from hie.storage.records import Unit

OUTPATIENT_CLASSES = frozenset({"AMB", "EMER"})
INPATIENT_CLASS = "IMP"

# ICD-10 category ranges (inclusive) of the chronic-disease person figures.
CATEGORY_RANGES = {
    "hypertension": ("I10", "I15"),
    "diabetes": ("E10", "E14"),
}


def _in_category(record: NormalizedRecord, category: str) -> bool:
    low, high = CATEGORY_RANGES[category]
    return any(low <= c <= high for c in record.diagnosis_categories)


def units_of(
    table: Table, record: NormalizedRecord, *, chain_key: str, person_key: str | None
) -> tuple[list[Unit], list[str]]:
    """The units ``record`` qualifies, and the person figures it would feed but has no key for.

    ``chain_key`` identifies the document chain (the first document of a CDA RPLC chain, a FHIR
    document Bundle's identifier); a FHIR Encounter is its own unit.
    """
    units: list[Unit] = []
    unkeyed: list[str] = []
    is_encounter = table.fhir_resource_type == "Encounter"
    is_condition = table.fhir_resource_type == "Condition"
    for figure in sorted(table.feeds):
        if figure == "outpatient_visits":
            if not is_encounter:
                units.append(Unit(figure, chain_key))
            elif record.encounter_class in OUTPATIENT_CLASSES:
                units.append(Unit(figure, record.logical_id))
        elif figure == "discharges":
            if not is_encounter:
                units.append(Unit(figure, chain_key))
            elif (
                record.encounter_class == INPATIENT_CLASS and record.encounter_status == "finished"
            ):
                units.append(Unit(figure, record.logical_id))
        elif figure.startswith("health_records."):
            category = figure.removeprefix("health_records.")
            if is_condition and (
                category not in CATEGORY_RANGES or not _in_category(record, category)
            ):
                continue
            if person_key is None:
                unkeyed.append(figure)
            else:
                units.append(Unit(figure, person_key))
    return units, unkeyed
