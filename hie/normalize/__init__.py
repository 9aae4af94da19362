"""CDA documents and FHIR resources mapped to normalized records. Pure functions, no I/O."""

from hie.normalize.identity import normalize_resident_id, resident_id_problem
from hie.normalize.record import NormalizedRecord, PatientIdentity

__all__ = ["NormalizedRecord", "PatientIdentity", "normalize_resident_id", "resident_id_problem"]
