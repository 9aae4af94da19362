"""The search parameters hie supports, per resource type, and the index rows of a resource.

One table drives the CapabilityStatement, the search parser and the index writer, so the server
advertises exactly what it can answer. Paths are element names of the R4 resources (choice
elements end in ``[x]``); the definitions follow the R4 SearchParameter registry, restricted to
the parameters the platform's users search by.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from hie.fhir.dates import date_range, period_range

Kind = Literal["token", "reference", "date"]


@dataclass(frozen=True)
class SearchParameter:
    name: str
    kind: Kind
    paths: tuple[str, ...]
    # Reference parameters: the resource types a value may point to (empty: any type).
    targets: tuple[str, ...] = ()

    @property
    def fhir_type(self) -> str:
        return self.kind


@dataclass(frozen=True)
class IndexRow:
    param: str
    system: str | None = None
    value: str | None = None
    low: datetime | None = None
    high: datetime | None = None


def _p(name: str, kind: Kind, *paths: str, targets: tuple[str, ...] = ()) -> SearchParameter:
    return SearchParameter(name, kind, paths, targets)


IDENTIFIER = _p("identifier", "token", "identifier")
STATUS = _p("status", "token", "status")
SUBJECT = _p("subject", "reference", "subject")
PATIENT_OF_SUBJECT = _p("patient", "reference", "subject", targets=("Patient",))
PATIENT = _p("patient", "reference", "patient", targets=("Patient",))
ENCOUNTER = _p("encounter", "reference", "encounter", targets=("Encounter",))
CODE = _p("code", "token", "code")
MEDICATION_CODE = _p("code", "token", "medicationCodeableConcept")
TYPE = _p("type", "token", "type")


def _params(*params: SearchParameter) -> dict[str, SearchParameter]:
    return {p.name: p for p in params}


_CLINICAL = (IDENTIFIER, STATUS, SUBJECT, PATIENT_OF_SUBJECT, ENCOUNTER)

# The parameters of each resource type, besides _id and _lastUpdated (which every type has).
PARAMETERS: dict[str, dict[str, SearchParameter]] = {
    "Patient": _params(IDENTIFIER),
    "Encounter": _params(
        IDENTIFIER,
        STATUS,
        SUBJECT,
        PATIENT_OF_SUBJECT,
        _p("class", "token", "class"),
        TYPE,
        _p("date", "date", "period"),
    ),
    "Condition": _params(IDENTIFIER, SUBJECT, PATIENT_OF_SUBJECT, ENCOUNTER, CODE),
    "Observation": _params(*_CLINICAL, CODE, _p("date", "date", "effective[x]")),
    "Procedure": _params(*_CLINICAL, CODE, _p("date", "date", "performed[x]")),
    "DiagnosticReport": _params(*_CLINICAL, CODE, _p("date", "date", "effective[x]")),
    "ImagingStudy": _params(*_CLINICAL),
    "Specimen": _params(IDENTIFIER, STATUS, SUBJECT, PATIENT_OF_SUBJECT, TYPE),
    "ServiceRequest": _params(*_CLINICAL, CODE),
    "MedicationRequest": _params(*_CLINICAL, MEDICATION_CODE),
    "MedicationAdministration": _params(IDENTIFIER, STATUS, SUBJECT, PATIENT_OF_SUBJECT),
    "MedicationDispense": _params(IDENTIFIER, STATUS, SUBJECT, PATIENT_OF_SUBJECT),
    "MedicationStatement": _params(IDENTIFIER, STATUS, SUBJECT, PATIENT_OF_SUBJECT),
    "Medication": _params(IDENTIFIER, STATUS, CODE),
    "Immunization": _params(IDENTIFIER, STATUS, PATIENT, _p("date", "date", "occurrence[x]")),
    "AllergyIntolerance": _params(IDENTIFIER, PATIENT, CODE, _p("date", "date", "recordedDate")),
    "FamilyMemberHistory": _params(IDENTIFIER, STATUS, PATIENT, _p("date", "date", "date")),
    "CarePlan": _params(*_CLINICAL, _p("date", "date", "period")),
    "CareTeam": _params(*_CLINICAL, _p("date", "date", "period")),
    "Goal": _params(IDENTIFIER, SUBJECT, PATIENT_OF_SUBJECT),
    "EpisodeOfCare": _params(IDENTIFIER, STATUS, TYPE, PATIENT, _p("date", "date", "period")),
    "Appointment": _params(IDENTIFIER, STATUS, _p("date", "date", "start")),
    "DocumentReference": _params(
        _p("identifier", "token", "masterIdentifier", "identifier"),
        STATUS,
        TYPE,
        SUBJECT,
        PATIENT_OF_SUBJECT,
        _p("date", "date", "date"),
    ),
    "Composition": _params(*_CLINICAL, TYPE, _p("date", "date", "date")),
    "QuestionnaireResponse": _params(*_CLINICAL),
    "RiskAssessment": _params(*_CLINICAL, _p("date", "date", "occurrence[x]")),
    "Coverage": _params(IDENTIFIER, STATUS, TYPE, _p("patient", "reference", "beneficiary")),
    "Claim": _params(IDENTIFIER, STATUS, PATIENT),
    "ExplanationOfBenefit": _params(IDENTIFIER, STATUS, PATIENT),
    "Practitioner": _params(IDENTIFIER),
    "PractitionerRole": _params(IDENTIFIER),
    "Organization": _params(IDENTIFIER, TYPE),
    "Location": _params(IDENTIFIER, STATUS, TYPE),
    "Device": _params(IDENTIFIER, STATUS, TYPE, PATIENT),
    "Provenance": {},
    # A document Bundle (one WS/T shared document); Bundle.type is the bundle type code.
    "Bundle": _params(IDENTIFIER, _p("type", "token", "type")),
}


def parameters_of(resource_type: str) -> dict[str, SearchParameter]:
    """The indexed parameters of a type; a type only a custom catalog knows has none."""
    return PARAMETERS.get(resource_type, {})


_REFERENCE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def reference_target(reference: str) -> str | None:
    """``"<Type>/<id>"`` of a literal reference (relative or absolute), or None (contained,
    urn:uuid, conditional)."""
    if reference.startswith(("#", "urn:")) or "?" in reference:
        return None
    match = _REFERENCE.search(reference)
    return None if match is None else f"{match[1]}/{match[2]}"


def _values(resource: dict[str, Any], path: str) -> Iterator[tuple[str, Any]]:
    """(JSON key, value) of an element; a choice element yields the key that is present."""
    if path.endswith("[x]"):
        stem = path[:-3]
        for key, value in resource.items():
            if key.startswith(stem) and key[len(stem) : len(stem) + 1].isupper():
                yield from ((key, v) for v in (value if isinstance(value, list) else [value]))
        return
    value = resource.get(path)
    if value is None:
        return
    yield from ((path, v) for v in (value if isinstance(value, list) else [value]))


def _tokens(value: Any) -> Iterator[tuple[str | None, str]]:
    if isinstance(value, str):
        yield None, value
    elif isinstance(value, dict):
        if isinstance(value.get("coding"), list):  # CodeableConcept
            for coding in value["coding"]:
                yield from _tokens(coding)
        elif isinstance(value.get("code"), str):  # Coding
            yield value.get("system"), value["code"]
        elif isinstance(value.get("value"), str):  # Identifier
            yield value.get("system"), value["value"]


def _dates(key: str, value: Any, zone: ZoneInfo) -> Iterator[tuple[datetime, datetime]]:
    if isinstance(value, str):
        found = date_range(value, zone)
        if found:
            yield found
    elif isinstance(value, dict):
        if key.endswith("Period") or "start" in value or "end" in value:
            found = period_range(value, zone)
            if found:
                yield found
        elif isinstance(value.get("event"), list):  # Timing
            for event in value["event"]:
                yield from _dates(key, event, zone)


def index_rows(resource: dict[str, Any], zone: ZoneInfo) -> list[IndexRow]:
    """Every search-parameter value of ``resource``, as the rows fhir_search_index keeps."""
    rows: list[IndexRow] = []
    for param in parameters_of(str(resource.get("resourceType"))).values():
        for path in param.paths:
            for key, value in _values(resource, path):
                if param.kind == "token":
                    rows.extend(IndexRow(param.name, s, v) for s, v in _tokens(value))
                elif param.kind == "date":
                    rows.extend(
                        IndexRow(param.name, low=lo, high=hi) for lo, hi in _dates(key, value, zone)
                    )
                elif isinstance(value, dict) and isinstance(value.get("reference"), str):
                    target = reference_target(value["reference"])
                    if target and (not param.targets or target.split("/")[0] in param.targets):
                        rows.append(IndexRow(param.name, None, target))
    return rows
