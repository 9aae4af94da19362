"""Synthetic uploads for demos, tests and benchmarks: a region modelled on the bulletin, a month of
CDA documents with realistic defects, and the figures they must produce."""

from hie.synth.month import MonthPlan, Upload, plan_month
from hie.synth.region import REGION, Member

__all__ = ["REGION", "Member", "MonthPlan", "Upload", "plan_month"]
