"""The monthly figures: counting rules, the report computed from the aggregates, flags, exports."""

from hie.metrics.units import units_of

__all__ = ["units_of"]
