"""One resident across two hospitals and a district: linked by the keys the records carry, by
score into the review list, merged and unmerged; the monthly figures count as before."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from hie.errors import Conflict
from hie.ingest import Arrival, Incoming, store_records
from hie.normalize.fhir import normalize_resource
from hie.persons import service
from hie.storage import Database
from hie.storage import persons as store
from tests.persons.conftest import (
    CATALOG,
    HEALTH_CARD,
    HEALTH_RECORD,
    INPATIENT,
    JULY,
    OTHER_ID,
    RESIDENT_ID,
    ZHANG_ID,
    ZHANG_LEGACY,
    StoreFn,
    patient,
)


def person(region: Database, institution: str, record_id: str) -> int | None:
    with region.connection() as conn:
        return service.person_of_record(conn, institution, record_id)


def reviews(region: Database) -> list[dict]:
    with region.connection() as conn:
        return store.open_reviews(conn)


def test_resident_id_at_one_hospital_and_health_card_at_another_are_one_person(
    region: Database, store: StoreFn
) -> None:
    store("H1", patient("a", (RESIDENT_ID, ZHANG_ID), (HEALTH_CARD, "HC-778")))
    store("H2", patient("b", (HEALTH_CARD, "HC-778"), name="张 伟"))
    assert person(region, "H1", "Patient/a") == person(region, "H2", "Patient/b") is not None
    with region.connection() as conn:
        view = service.show(conn, person(region, "H1", "Patient/a") or 0)
    assert {(link.institution_code, link.rule) for link in view.links} == {
        ("H1", "new"),
        ("H2", HEALTH_CARD),
    }


def test_legacy_15_digit_number_links_to_its_18_digit_form(
    region: Database, store: StoreFn
) -> None:
    store("H1", patient("a", (RESIDENT_ID, ZHANG_ID)))
    store("H2", patient("b", (RESIDENT_ID, ZHANG_LEGACY), name="完全不同", address="别处"))
    assert person(region, "H1", "Patient/a") == person(region, "H2", "Patient/b")


def test_demographics_only_goes_to_the_review_list_and_a_merge_joins_it(
    region: Database, store: StoreFn
) -> None:
    store("H1", patient("a", (RESIDENT_ID, ZHANG_ID), (HEALTH_CARD, "HC-778")))
    store("H2", patient("b", (HEALTH_CARD, "HC-778")))
    # The district knows him by name, birth date, gender and the address he moved to.
    store("D1", patient("c", (HEALTH_RECORD, "JK-3201"), address="南京市玄武区孝陵卫街道200号"))
    zhang = person(region, "H1", "Patient/a")
    district = person(region, "D1", "Patient/c")
    assert district is not None and district != zhang
    [review] = reviews(region)
    assert (review["person_id"], review["candidate_id"]) == (district, zhang)
    assert 0.70 <= review["score"] < 0.92

    with region.transaction() as tx:
        moved = service.merge(tx.conn, zhang or 0, district, actor="admin")
    assert moved == [("D1", "Patient/c")]
    assert person(region, "D1", "Patient/c") == zhang
    assert reviews(region) == []

    # A later record of the district's health-record number now finds the merged person.
    store("D1", patient("d", (HEALTH_RECORD, "JK-3201"), name="X", birth="2001-01-01"))
    assert person(region, "D1", "Patient/d") == zhang

    with region.transaction() as tx:
        back = service.unmerge(tx.conn, district, actor="admin")
    assert back == [("D1", "Patient/c")]
    assert person(region, "D1", "Patient/c") == district
    assert person(region, "H2", "Patient/b") == zhang
    with region.connection() as conn:
        actions = [h["action"] for h in service.show(conn, district).history]
    assert actions == ["link", "merge", "unmerge"]


def test_near_identical_demographics_link_without_review(region: Database, store: StoreFn) -> None:
    store("H1", patient("a", (RESIDENT_ID, ZHANG_ID)))
    store("D1", patient("c", name="张伟", address="江苏省南京市玄武区北京东路1号"))
    assert person(region, "D1", "Patient/c") == person(region, "H1", "Patient/a")
    assert reviews(region) == []


def test_someone_else_born_the_same_day_is_a_new_person(region: Database, store: StoreFn) -> None:
    store("H1", patient("a", (RESIDENT_ID, ZHANG_ID)))
    store("H2", patient("b", name="李娜", gender="female", address="苏州市姑苏区"))
    assert person(region, "H2", "Patient/b") != person(region, "H1", "Patient/a")
    assert reviews(region) == []


def test_a_shared_health_card_does_not_join_two_resident_ids(
    region: Database, store: StoreFn
) -> None:
    store("H1", patient("a", (RESIDENT_ID, ZHANG_ID), (HEALTH_CARD, "HC-1")))
    store("H2", patient("b", (RESIDENT_ID, OTHER_ID), (HEALTH_CARD, "HC-1")))
    first, second = person(region, "H1", "Patient/a"), person(region, "H2", "Patient/b")
    assert first != second
    with region.transaction() as tx, pytest.raises(Conflict):
        service.merge(tx.conn, first or 0, second or 0, actor="admin")


def test_a_record_bridging_two_persons_merges_them_reversibly(
    region: Database, store: StoreFn
) -> None:
    store("H1", patient("a", (HEALTH_CARD, "HC-9"), name="王芳", birth="1980-02-02"))
    store("H2", patient("b", (HEALTH_RECORD, "JK-9"), name="赵敏", birth="1990-03-03"))
    a, b = person(region, "H1", "Patient/a"), person(region, "H2", "Patient/b")
    assert a != b
    store("D1", patient("c", (HEALTH_CARD, "HC-9"), (HEALTH_RECORD, "JK-9")))
    assert person(region, "H2", "Patient/b") == a == person(region, "D1", "Patient/c")
    with region.transaction() as tx:
        service.unmerge(tx.conn, b or 0, actor="admin")
    assert person(region, "H2", "Patient/b") == b


def test_medical_record_numbers_link_only_within_their_institution(
    region: Database, store: StoreFn
) -> None:
    store("H1", patient("a", (INPATIENT, "ZY001"), name="钱一", birth="1970-01-01"))
    store(
        "H1", patient("b", (INPATIENT, "ZY001"), name="钱一", birth="1970-01-01", gender="unknown")
    )
    store("H2", patient("c", (INPATIENT, "ZY001"), name="孙二", birth="1960-06-06"))
    assert person(region, "H1", "Patient/a") == person(region, "H1", "Patient/b")
    assert person(region, "H2", "Patient/c") != person(region, "H1", "Patient/a")


def test_a_deleted_patient_leaves_its_person(region: Database, store: StoreFn) -> None:
    resource = patient("a", (RESIDENT_ID, ZHANG_ID))
    store("H1", resource)
    assert person(region, "H1", "Patient/a") is not None
    store("H1", resource, deleted=True)
    assert person(region, "H1", "Patient/a") is None


def test_persons_are_counted_in_the_figures_by_person_key_as_before(
    region: Database, store: StoreFn
) -> None:
    # One resident in the index, but the figures count by person key, as they did: the
    # resident ID at H1, and nothing at H2 (a health card is no person key).
    store("H1", patient("a", (RESIDENT_ID, ZHANG_ID), (HEALTH_CARD, "HC-778")))
    stored = store("H2", patient("b", (HEALTH_CARD, "HC-778")))
    assert stored.person_key is None
    with region.connection() as conn:
        rows = conn.execute(
            "select institution_code, figure, units from monthly_unit_count"
            " where figure not like 'unkeyed:%%' order by 1"
        ).fetchall()
    assert [(r["institution_code"], r["units"]) for r in rows] == [("H1", 1)]


def test_no_resident_id_number_in_messages(region: Database, store: StoreFn) -> None:
    store("H1", patient("a", (RESIDENT_ID, ZHANG_ID)))
    store("H2", patient("b", (RESIDENT_ID, OTHER_ID)))
    a, b = person(region, "H1", "Patient/a"), person(region, "H2", "Patient/b")
    with region.transaction() as tx, pytest.raises(Conflict) as raised:
        service.merge(tx.conn, a or 0, b or 0, actor="admin")
    assert ZHANG_ID not in str(raised.value) and OTHER_ID not in str(raised.value)


def test_an_updated_patient_is_found_by_its_new_identifiers_only(
    region: Database, store: StoreFn
) -> None:
    store("H1", patient("a", (HEALTH_CARD, "HC-OLD"), (HEALTH_RECORD, "JK-1")))
    store("H1", patient("a", (HEALTH_CARD, "HC-NEW"), (HEALTH_RECORD, "JK-1")))
    with region.connection() as conn:
        linked = service.person_of_record(conn, "H1", "Patient/a")
        assert service.find_persons(conn, HEALTH_CARD, "HC-NEW") == [linked]
        assert service.find_persons(conn, HEALTH_RECORD, "jk-1") == [linked]
        assert service.find_persons(conn, HEALTH_CARD, "HC-OLD") == []


def test_an_uncertain_record_sent_again_is_reviewed_once(region: Database, store: StoreFn) -> None:
    store("H1", patient("a", (RESIDENT_ID, ZHANG_ID)))
    district = patient("c", address="南京市玄武区孝陵卫街道200号")
    store("D1", district)
    store("D1", {**district, "telecom": [{"system": "phone", "value": "025-1"}]})
    assert len(reviews(region)) == 1


def test_records_stored_together_join_the_index_too(region: Database) -> None:
    table = CATALOG.get("FHIR.Patient")
    resources = [
        patient("x", (RESIDENT_ID, ZHANG_ID)),
        patient("y", (RESIDENT_ID, ZHANG_LEGACY), name="张伟"),
    ]
    incoming = [
        Incoming(
            record=normalize_resource(r, table),
            table=table,
            content_sha256=hashlib.sha256(json.dumps(r).encode()).digest(),
            resource=r,
        )
        for r in resources
    ]
    with region.transaction() as tx:
        store_records(
            tx.conn, Arrival("H1", JULY, JULY.date(), uuid.uuid4()), incoming, immutable=False
        )
    assert person(region, "H1", "Patient/x") == person(region, "H1", "Patient/y") is not None
