"""What the person index links by, and how records without a national ID are scored (pure).

Deterministic keys come first, strongest first: the resident ID number (GB 11643, always the
normalized 18-character form, so a 15-digit legacy number meets its 18-digit form), the resident
health card, the health-record number, then an institution's own medical-record numbers, which
only mean something together with that institution. A record with none of these (or whose keys
are all new) is scored against the persons born on the same day by name, birth date, gender and
address: at or above ``UPPER`` it joins the best candidate, from ``LOWER`` up to ``UPPER`` it gets
a person of its own and a review item proposing the merge, below ``LOWER`` a person of its own.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date
from difflib import SequenceMatcher
from typing import Literal

from hie.normalize import PatientIdentity

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
HEALTH_CARD = "urn:oid:2.16.156.10011.1.19"
HEALTH_RECORD = "urn:oid:2.16.156.10011.1.2"
OUTPATIENT = "urn:oid:2.16.156.10011.1.11"
INPATIENT = "urn:oid:2.16.156.10011.1.12"

# Keys valid across institutions, strongest first; medical-record numbers are per institution.
REGIONAL_SYSTEMS = (RESIDENT_ID, HEALTH_CARD, HEALTH_RECORD)
LOCAL_SYSTEMS = (OUTPATIENT, INPATIENT)
SYSTEM_NAMES = {
    RESIDENT_ID: "resident ID",
    HEALTH_CARD: "health card",
    HEALTH_RECORD: "health-record number",
    OUTPATIENT: "outpatient number",
    INPATIENT: "inpatient number",
}

UPPER = 0.92  # at or above: the same person, linked without review
LOWER = 0.70  # from here up to UPPER: a review item; below: another person

# The weights of the probabilistic match; they sum to 1.
WEIGHTS = {"name": 0.45, "birth_date": 0.25, "gender": 0.10, "address": 0.20}

# FHIR gender and GB/T 2261.1 codes on one scale (0 and 9: unknown, not compared).
_GENDERS = {"male": "1", "female": "2", "1": "1", "2": "2"}


@dataclass(frozen=True)
class Key:
    """One identifier of a record: ``institution`` is set only for medical-record numbers."""

    system: str
    value: str
    institution: str = ""

    @property
    def regional(self) -> bool:
        return self.system in REGIONAL_SYSTEMS


@dataclass(frozen=True)
class Demographics:
    name: str | None = None
    birth_date: date | None = None
    gender: str | None = None  # "1" male, "2" female, None unknown
    address: str | None = None

    @property
    def usable(self) -> bool:
        """Enough to score: a name and a birth date (the blocking key)."""
        return bool(self.name) and self.birth_date is not None


def keys_of(identity: PatientIdentity, institution: str) -> list[Key]:
    """The identifiers of a record, strongest first."""
    keys: list[Key] = []
    for system, value in (
        (RESIDENT_ID, identity.resident_id),
        (HEALTH_CARD, identity.health_card_number),
        (HEALTH_RECORD, identity.health_record_number),
    ):
        if value and value.strip():
            keys.append(Key(system, value.strip().upper()))
    for system, value in (
        (OUTPATIENT, identity.outpatient_number),
        (INPATIENT, identity.inpatient_number),
    ):
        if value and value.strip():
            keys.append(Key(system, value.strip(), institution))
    return keys


def demographics_of(identity: PatientIdentity) -> Demographics:
    return Demographics(
        name=_fold(identity.name),
        birth_date=identity.birth_date,
        gender=_GENDERS.get((identity.gender or "").strip().lower()),
        address=_fold(identity.address),
    )


def _fold(text: str | None) -> str | None:
    """Compared form: NFKC (full-width letters and digits), case folded, no spaces or dots."""
    if not text:
        return None
    folded = "".join(
        c for c in unicodedata.normalize("NFKC", text).casefold() if c.isalnum() or c > "\u2e7f"
    )
    return folded or None


def _similarity(a: str, b: str) -> float:
    return 1.0 if a == b else SequenceMatcher(None, a, b).ratio()


@dataclass(frozen=True)
class Score:
    value: float
    parts: dict[str, float]  # each field's contribution, for the reviewer


def score(a: Demographics, b: Demographics) -> Score:
    """How alike two residents' demographics are, 0 to 1. A field missing on either side counts
    half its weight (neither for nor against); a gender known on both sides and different, or
    birth dates that differ, weigh fully against."""
    parts: dict[str, float] = {}
    for field, weight in WEIGHTS.items():
        left, right = getattr(a, field), getattr(b, field)
        if left is None or right is None:
            parts[field] = weight / 2
        elif field in ("name", "address"):
            parts[field] = weight * _similarity(left, right)
        else:
            parts[field] = weight if left == right else 0.0
    return Score(round(sum(parts.values()), 4), {k: round(v, 4) for k, v in parts.items()})


Verdict = Literal["link", "review", "new"]


def verdict(value: float, upper: float = UPPER, lower: float = LOWER) -> Verdict:
    if value >= upper:
        return "link"
    if value >= lower:
        return "review"
    return "new"


def mask(key: Key) -> str:
    """A key as it may be shown in messages: a resident ID number never appears whole."""
    if key.system == RESIDENT_ID:
        return f"{SYSTEM_NAMES[key.system]} ***"
    return f"{SYSTEM_NAMES.get(key.system, key.system)} {key.value}"
