"""The monthly figures: counting rules, the report computed from the aggregates, flags, exports."""

from hie.metrics.units import icd10_category, units_of

__all__ = ["icd10_category", "units_of"]
