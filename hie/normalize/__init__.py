"""CDA documents and FHIR resources mapped to normalized records. Pure functions, no I/O."""

from hie.normalize.codes import icd10_category
from hie.normalize.identity import normalize_resident_id, resident_id_problem
from hie.normalize.record import NormalizedRecord, PatientIdentity

__all__ = [
    "NormalizedRecord",
    "PatientIdentity",
    "icd10_category",
    "normalize_resident_id",
    "resident_id_problem",
]
