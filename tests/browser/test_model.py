"""What the record browser's search form asks for, and how a timeline dates its entries."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from hie.browser.model import classes_of, entry_of, parse_query
from hie.errors import InvalidInput
from hie.persons.model import HEALTH_CARD, OUTPATIENT
from hie.storage.timeline import TimelineRow


def test_a_query_by_identifier_or_by_demographics_folded_as_the_index_folds() -> None:
    query = parse_query({"system": "health-card", "value": " H3201 "})
    assert (query.system, query.value, query.local) == (HEALTH_CARD, "H3201", False)
    assert parse_query({"system": "outpatient", "value": "MZ1"}).system == OUTPATIENT
    assert parse_query({"system": "outpatient", "value": "MZ1"}).local
    query = parse_query({"name": "Ｚhang Wei", "birth": "1949-12-31", "gender": "1"})
    assert (query.name, query.birth_date, query.gender) == ("zhangwei", date(1949, 12, 31), "1")
    assert query.system is None
    # The audit entry's parameters; the ID number is masked where they are recorded.
    assert parse_query({"system": "resident-id", "value": "X"}).pairs() == [
        ("identifier", "urn:oid:2.16.156.10011.1.3|X")
    ]


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"name": "张伟"}, "value"),  # demographics need the birth date
        ({"system": "passport", "value": "E1"}, "system"),
        ({"birth": "31/12/1949"}, "birth"),
        ({"birth": "1949-12-31", "gender": "x"}, "gender"),
    ],
)
def test_a_query_that_names_no_one_is_refused_with_its_field(
    form: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_query(form)
    assert field in [p.field for p in refused.value.problems]


def _row(logical_id: str, cda: bool, **normalized: str) -> TimelineRow:
    return TimelineRow(
        "H1", "医院", logical_id, "C0053" if cda else "FHIR.Encounter", None, None,
        datetime(2019, 8, 1, tzinfo=UTC), cda, normalized,
    )  # fmt: skip


def test_documents_are_dated_by_their_own_time_encounters_by_their_start() -> None:
    times = {"effective_time": "2019-07-20T17:00:00+08:00", "encounter_start": "2019-07-10"}
    assert entry_of(_row("1.2^3", True, **times)).when.day == 20
    assert entry_of(_row("Encounter/e", False, **times)).when.day == 10
    assert entry_of(_row("Encounter/e", False)).when == datetime(2019, 8, 1, tzinfo=UTC)
    assert entry_of(_row("1.2^3", True)).kind == "document"
    assert entry_of(_row("Encounter/e", False)).kind == "encounter"


def test_what_a_consent_class_is_checked_against() -> None:
    assert classes_of("C0053", "1.2^3", True) == {"DocumentReference", "C0053", "discharge"}
    assert classes_of("FHIR.Encounter", "Encounter/e", False) == {"Encounter"}
    assert classes_of("C0002", "Bundle/b", False) == {
        "Bundle", "Composition", "DocumentReference", "C0002", "outpatient"
    }  # fmt: skip
