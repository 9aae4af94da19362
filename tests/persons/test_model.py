"""The pure rules: keys, the score and its thresholds."""

from __future__ import annotations

from datetime import date

from hie.normalize import PatientIdentity
from hie.persons.model import (
    HEALTH_CARD,
    INPATIENT,
    LOWER,
    RESIDENT_ID,
    UPPER,
    Demographics,
    Key,
    keys_of,
    mask,
    score,
    verdict,
)


def test_keys_strongest_first_and_medical_record_numbers_carry_their_institution() -> None:
    identity = PatientIdentity(
        resident_id="11010519491231002X", health_card_number=" hc-1 ", inpatient_number="ZY1"
    )
    assert keys_of(identity, "H1") == [
        Key(RESIDENT_ID, "11010519491231002X"),
        Key(HEALTH_CARD, "HC-1"),
        Key(INPATIENT, "ZY1", "H1"),
    ]


def test_score_thresholds() -> None:
    born = date(1949, 12, 31)
    same = Demographics("张伟", born, "1", "南京市玄武区北京东路1号")
    assert verdict(score(same, same).value) == "link"
    assert (
        verdict(score(same, Demographics("张伟", born, "1", "南京市玄武区北京东路")).value)
        == "link"
    )
    moved = Demographics("张伟", born, "1", "南京市玄武区孝陵卫街道200号")
    assert LOWER <= score(same, moved).value < UPPER
    assert verdict(score(same, Demographics("李娜", born, "2", "苏州")).value) == "new"


def test_missing_fields_count_half() -> None:
    born = date(1990, 1, 1)
    assert score(Demographics("a", born), Demographics("a", born)).value == 0.85


def test_a_resident_id_is_never_shown() -> None:
    assert "1101" not in mask(Key(RESIDENT_ID, "11010519491231002X"))
