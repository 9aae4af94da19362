"""The monthly figures: counting rules, and (to come) their computation from the aggregates."""

from hie.metrics.units import icd10_category, units_of

__all__ = ["icd10_category", "units_of"]
