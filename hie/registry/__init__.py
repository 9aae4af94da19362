"""Institutions and their declarations: the values and the CSV files they are imported from."""

from hie.registry.files import parse_declarations_csv, parse_institutions_csv
from hie.registry.model import CODE_PATTERN, KINDS, Institution, check_code

__all__ = [
    "CODE_PATTERN",
    "KINDS",
    "Institution",
    "check_code",
    "parse_declarations_csv",
    "parse_institutions_csv",
]
