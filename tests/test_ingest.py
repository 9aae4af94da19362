"""The shared storage path: versions, no-op re-uploads, conflicts, chains, persons, aggregates."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import pytest

from hie.catalog import default_catalog_path, read_catalog
from hie.config import Settings
from hie.ingest import Arrival, reject, store_record
from hie.normalize import NormalizedRecord, PatientIdentity
from hie.registry import Institution
from hie.storage import Database, open_database
from hie.storage.institutions import add_institution
from hie.storage.partitions import PartitionMaker

CATALOG = read_catalog(default_catalog_path())
JULY = datetime(2019, 7, 10, 2, 0, tzinfo=UTC)
AUGUST = datetime(2019, 8, 2, 2, 0, tzinfo=UTC)


def arrival(at: datetime = JULY) -> Arrival:
    return Arrival("H1", at, at.date(), uuid.uuid4())


def sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@pytest.fixture
def database(settings: Settings):
    database = open_database(settings)
    maker = PartitionMaker(database, settings.zone)
    maker.ensure_for(JULY)
    maker.ensure_for(AUGUST)
    with database.transaction() as tx:
        add_institution(tx.conn, Institution("H1", "医院", "hospital"), actor="t")
    yield database
    database.close()


def figures(database: Database) -> dict[tuple[str, str], int]:
    with database.connection() as conn:
        rows = conn.execute("select figure, month, units from monthly_unit_count").fetchall()
    return {(r["figure"], r["month"].strftime("%Y-%m")): r["units"] for r in rows}


def records_per_day(database: Database) -> dict[str, int]:
    with database.connection() as conn:
        rows = conn.execute(
            "select table_code, sum(records) as n from daily_table_count group by 1"
        ).fetchall()
    return {r["table_code"]: int(r["n"]) for r in rows}


def document(doc_id: str, replaces: str | None = None) -> NormalizedRecord:
    return NormalizedRecord(
        kind="cda",
        table_code="C0002",
        logical_id=f"2.16.156.10011.1.1^{doc_id}",
        replaces=f"2.16.156.10011.1.1^{replaces}" if replaces else None,
        patient=PatientIdentity(resident_id="11010519491231002X"),
    )


def test_cda_documents_are_immutable_and_replacements_join_their_chain(database: Database) -> None:
    table = CATALOG.get("C0002")
    with database.transaction() as tx:
        first = store_record(
            tx.conn,
            arrival(),
            table,
            document("D1"),
            content_sha256=sha("a"),
            raw_xml=b"<a/>",
            immutable=True,
        )
        same = store_record(
            tx.conn,
            arrival(),
            table,
            document("D1"),
            content_sha256=sha("a"),
            raw_xml=b"<a/>",
            immutable=True,
        )
        changed = store_record(
            tx.conn,
            arrival(),
            table,
            document("D1"),
            content_sha256=sha("b"),
            raw_xml=b"<b/>",
            immutable=True,
        )
        replacement = store_record(
            tx.conn,
            arrival(AUGUST),
            table,
            document("D2", replaces="D1"),
            content_sha256=sha("c"),
            raw_xml=b"<c/>",
            immutable=True,
        )
    assert (first.result.status, same.result.status, changed.result.status) == (
        "created",
        "unchanged",
        "conflict",
    )
    assert replacement.result.status == "created"
    assert replacement.chain_key == first.chain_key == "2.16.156.10011.1.1^D1"
    # One visit, in July; the August replacement adds a record but no visit.
    assert figures(database) == {("outpatient_visits", "2019-07"): 1}
    assert records_per_day(database) == {"C0002": 2}
    with database.connection() as conn:
        raw = conn.execute("select raw_xml from record_version order by id").fetchall()
    assert [bytes(r["raw_xml"]) for r in raw] == [b"<a/>", b"<c/>"]


def test_an_encounter_becomes_a_discharge_when_it_is_finished(database: Database) -> None:
    table = CATALOG.by_resource_type("Encounter")

    def encounter(status: str) -> NormalizedRecord:
        return NormalizedRecord(
            kind="fhir",
            table_code=table.code,
            logical_id="Encounter/e1",
            encounter_class="IMP",
            encounter_status=status,
        )

    with database.transaction() as tx:
        june = store_record(
            tx.conn,
            arrival(),
            table,
            encounter("in-progress"),
            content_sha256=sha("1"),
            resource={"v": 1},
            immutable=False,
        )
        later = store_record(
            tx.conn,
            arrival(AUGUST),
            table,
            encounter("finished"),
            content_sha256=sha("2"),
            resource={"v": 2},
            immutable=False,
        )
        again = store_record(
            tx.conn,
            arrival(AUGUST),
            table,
            encounter("finished"),
            content_sha256=sha("2"),
            resource={"v": 2},
            immutable=False,
        )
        stale = store_record(
            tx.conn,
            arrival(AUGUST),
            table,
            encounter("cancelled"),
            content_sha256=sha("3"),
            resource={"v": 3},
            immutable=False,
            if_match=1,
        )
    assert [june.result.status, later.result.status, again.result.status, stale.result.status] == [
        "created",
        "updated",
        "unchanged",
        "precondition-failed",
    ]
    assert later.result.head.version == 2
    assert figures(database) == {("discharges", "2019-08"): 1}
    assert records_per_day(database) == {"FHIR.Encounter": 2}


def test_a_condition_counts_for_its_stored_patient_and_unkeyed_patients_are_counted(
    database: Database,
) -> None:
    patient_table, condition_table = (
        CATALOG.by_resource_type("Patient"),
        CATALOG.by_resource_type("Condition"),
    )
    patient = NormalizedRecord(
        kind="fhir",
        table_code=patient_table.code,
        logical_id="Patient/p1",
        patient=PatientIdentity(resident_id="11010519491231002X"),
    )
    anonymous = NormalizedRecord(
        kind="fhir",
        table_code=patient_table.code,
        logical_id="Patient/p2",
        patient=PatientIdentity(resident_id_invalid=True),
    )

    def condition(rid: str, categories: tuple[str, ...]) -> NormalizedRecord:
        return NormalizedRecord(
            kind="fhir",
            table_code=condition_table.code,
            logical_id=f"Condition/{rid}",
            subject_reference="Patient/p1",
            diagnosis_categories=categories,
        )

    with database.transaction() as tx:
        store_record(
            tx.conn,
            arrival(),
            patient_table,
            patient,
            content_sha256=sha("p"),
            resource={},
            immutable=False,
        )
        store_record(
            tx.conn,
            arrival(),
            patient_table,
            anonymous,
            content_sha256=sha("q"),
            resource={},
            immutable=False,
        )
    with database.transaction() as tx:
        # A later upload: the person comes from the stored Patient.
        both = store_record(
            tx.conn,
            arrival(AUGUST),
            condition_table,
            condition("c1", ("I10", "E11")),
            content_sha256=sha("c1"),
            resource={},
            immutable=False,
        )
        store_record(
            tx.conn,
            arrival(AUGUST),
            condition_table,
            condition("c2", ("I11",)),
            content_sha256=sha("c2"),
            resource={},
            immutable=False,
        )
        store_record(
            tx.conn,
            arrival(AUGUST),
            condition_table,
            condition("c3", ("J45",)),
            content_sha256=sha("c3"),
            resource={},
            immutable=False,
        )
        reject(tx.conn, arrival(AUGUST), ["cda.header.realm", "cda.header.realm", "cda.schema"])
    assert both.person_key == "id:11010519491231002X"
    assert figures(database) == {
        ("health_records.basic", "2019-07"): 1,
        ("unkeyed:health_records.basic", "2019-07"): 1,
        ("health_records.hypertension", "2019-08"): 1,
        ("health_records.diabetes", "2019-08"): 1,
    }
    with database.connection() as conn:
        assert conn.execute("select rejected from daily_rejection").fetchone()["rejected"] == 1
        reasons = conn.execute(
            "select rule_id, occurrences from daily_rejection_reason order by 1"
        ).fetchall()
    assert [(r["rule_id"], r["occurrences"]) for r in reasons] == [
        ("cda.header.realm", 2),
        ("cda.schema", 1),
    ]


def test_resident_id_normalization() -> None:
    from hie.normalize import normalize_resident_id, resident_id_problem

    assert normalize_resident_id(" 11010519491231002x ") == "11010519491231002X"
    assert normalize_resident_id("110105491231002") == "11010519491231002X"
    assert (
        resident_id_problem("110105194912310021") == "the check character does not match (GB 11643)"
    )
    assert resident_id_problem("110105194913310020") is not None  # month 13
    assert normalize_resident_id("12345") is None
