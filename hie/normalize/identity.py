"""Resident ID numbers (居民身份证号码, GB 11643-1999): normalization and the check character."""

from __future__ import annotations

from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def check_character(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def _birth_date_ok(digits: str) -> bool:
    try:
        born = date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return False
    return born.year >= 1850


def resident_id_problem(raw: str) -> str | None:
    """Why ``raw`` is not a valid resident ID number, or None. Never echoes the number itself."""
    value = raw.strip().upper()
    if len(value) == 15:
        if not (value.isascii() and value.isdigit()):
            return "a 15-digit legacy ID number must be all digits"
        if not _birth_date_ok("19" + value[6:12]):
            return "the birth date inside the ID number is not a real date"
        return None
    if len(value) != 18:
        return f"an ID number has 18 characters (or 15 for legacy numbers), not {len(value)}"
    if (
        not value.isascii()
        or not value[:17].isdigit()
        or not (value[17].isdigit() or value[17] == "X")
    ):
        return "an ID number is 17 digits and a check character (0-9 or X)"
    if not _birth_date_ok(value[6:14]):
        return "the birth date inside the ID number (characters 7-14) is not a real date"
    if check_character(value[:17]) != value[17]:
        return "the check character does not match (GB 11643)"
    return None


def normalize_resident_id(raw: str) -> str | None:
    """The 18-character form of a valid ID number (legacy 15-digit converted), or None."""
    if resident_id_problem(raw) is not None:
        return None
    value = raw.strip().upper()
    if len(value) == 15:
        first17 = value[:6] + "19" + value[6:]
        return first17 + check_character(first17)
    return value
