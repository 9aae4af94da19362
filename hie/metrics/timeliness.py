"""Timeliness (及时性): how long after the clinical event a record reaches the platform.

Delays are kept as a histogram (few rows, updated at ingest) rather than per record; the median is
read off the histogram as the upper bound of the bucket that holds it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

# Upper bounds (hours, exclusive) of the buckets; a last bucket holds everything longer.
LATENCY_BOUNDS_HOURS = (1, 2, 4, 8, 12, 24, 48, 72, 168, 336, 720, 2160)
ONE_DAY_BUCKETS = LATENCY_BOUNDS_HOURS.index(24) + 1  # buckets 0..5 are within a day


def latency_bucket(clinical_time: datetime, received_at: datetime) -> int:
    """The bucket of a delay. Clinical times after receipt (clock skew) count as no delay."""
    hours = max(0.0, (received_at - clinical_time).total_seconds() / 3600)
    for index, bound in enumerate(LATENCY_BOUNDS_HOURS):
        if hours < bound:
            return index
    return len(LATENCY_BOUNDS_HOURS)


def summarize(histogram: dict[int, int]) -> dict[str, Any]:
    """Median delay (the upper bound of its bucket, in hours; None past the last bound) and the
    share of versions received within a day of their clinical time."""
    measured = sum(histogram.values())
    if measured == 0:
        return {"measured": 0, "median_hours_at_most": None, "within_1_day": None}
    running = 0
    median: float | None = None
    for bucket in sorted(histogram):
        running += histogram[bucket]
        if running * 2 >= measured:
            median = (
                float(LATENCY_BOUNDS_HOURS[bucket]) if bucket < len(LATENCY_BOUNDS_HOURS) else None
            )
            break
    within = sum(n for b, n in histogram.items() if b < ONE_DAY_BUCKETS)
    return {
        "measured": measured,
        "median_hours_at_most": median,
        "within_1_day": round(within / measured, 4),
    }
