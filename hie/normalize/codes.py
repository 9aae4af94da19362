"""Code normalization shared by the CDA and FHIR mappings."""

from __future__ import annotations

import re

_CATEGORY = re.compile(r"\s*([A-Za-z])\s*(\d)\s*(\d)")


def icd10_category(code: str) -> str | None:
    """The category of an ICD-10 code: the letter and two digits (``I10.x00`` → ``I10``)."""
    match = _CATEGORY.match(code)
    return None if match is None else f"{match[1].upper()}{match[2]}{match[3]}"
