"""Pure pieces: FHIR date ranges, index rows of a resource, reference targets, Prefer, ETags."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hie.fhir.content import content_hash, parse_etag, stored_form
from hie.fhir.dates import MAX, date_range
from hie.fhir.parameters import index_rows, reference_target
from hie.fhir.responses import Preferences

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_date_ranges_follow_precision_and_zone() -> None:
    assert date_range("2019", SHANGHAI) == (
        datetime(2019, 1, 1, tzinfo=SHANGHAI),
        datetime(2020, 1, 1, tzinfo=SHANGHAI),
    )
    low, high = date_range("2019-12", SHANGHAI) or (None, None)
    assert (low, high) == (
        datetime(2019, 12, 1, tzinfo=SHANGHAI),
        datetime(2020, 1, 1, tzinfo=SHANGHAI),
    )
    low, high = date_range("2019-07-01T10:00:00Z", SHANGHAI) or (None, None)
    assert low == datetime(2019, 7, 1, 10, tzinfo=UTC) and (high - low).total_seconds() == 1
    low, high = date_range("2019-07-01T10:00:00.25+08:00", SHANGHAI) or (None, None)
    assert (high - low).total_seconds() == 0.01
    assert date_range("2019-02-30", SHANGHAI) is None
    assert date_range("July", SHANGHAI) is None


def test_index_rows_of_an_observation() -> None:
    rows = index_rows(
        {
            "resourceType": "Observation",
            "status": "final",
            "identifier": [{"system": "urn:s", "value": "1"}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}, {"code": "x"}]},
            "subject": {"reference": "http://other/fhir/Patient/7/_history/2"},
            "encounter": {"reference": "urn:uuid:1"},
            "effectivePeriod": {"start": "2019-07-01"},
        },
        SHANGHAI,
    )
    tokens = {(r.param, r.system, r.value) for r in rows if r.value}
    assert tokens == {
        ("status", None, "final"),
        ("identifier", "urn:s", "1"),
        ("code", "http://loinc.org", "8867-4"),
        ("code", None, "x"),
        ("combo-code", "http://loinc.org", "8867-4"),  # R4: Observation.code | component.code
        ("combo-code", None, "x"),
        ("subject", None, "Patient/7"),
        ("patient", None, "Patient/7"),
    }
    (date,) = [r for r in rows if r.param == "date"]
    assert date.low == datetime(2019, 7, 1, tzinfo=SHANGHAI) and date.high == MAX


def test_references_prefer_and_etags() -> None:
    assert reference_target("Patient/1") == "Patient/1"
    assert reference_target("#contained") is None
    assert reference_target("Patient?identifier=x|1") is None
    assert Preferences.parse("return=minimal, handling=strict") == Preferences("minimal", True)
    assert Preferences.parse(None) == Preferences(None, False)
    assert Preferences.parse("handling=lenient").lenient
    assert [parse_etag(v) for v in ('W/"3"', '"4"', "5", "W/x", None)] == [3, 4, 5, None, None]
    served = {"resourceType": "Patient", "id": "1", "meta": {"versionId": "2", "source": "s"}}
    assert stored_form(served) == {"resourceType": "Patient", "id": "1", "meta": {"source": "s"}}
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
