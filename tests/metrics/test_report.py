"""A month whose figures are known by construction, computed through the report task in-process
and by a real worker over RabbitMQ; every figure of every row is checked."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from hie.catalog import default_catalog_path, read_catalog
from hie.config import Settings
from hie.ingest import Arrival, reject, store_record
from hie.normalize import NormalizedRecord, PatientIdentity
from hie.registry import Institution
from hie.storage import Database, open_database
from hie.storage.declarations import set_declaration
from hie.storage.institutions import add_institution
from hie.storage.partitions import PartitionMaker
from hie.storage.reports import load_report
from hie.workers import configure
from hie.workers.reports import compute_month_report
from hie.workers.runtime import bind_runtime

SHANGHAI = ZoneInfo("Asia/Shanghai")
CATALOG = read_catalog(default_catalog_path())
P1, P2 = "11010519491231002X", "440524188001010014"


def at(text: str) -> datetime:
    """A Shanghai wall-clock time."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def build_month(database: Database) -> None:
    maker = PartitionMaker(database, SHANGHAI)
    for month in ("2019-06-15", "2019-07-15", "2019-08-15"):
        maker.ensure_for(at(month + "T12:00:00"))
    with database.transaction() as tx:
        conn = tx.conn
        add_institution(conn, Institution("D1", "玄武区", "district"), actor="t")
        add_institution(conn, Institution("H1", "南京鼓楼医院", "hospital", "D1"), actor="t")
        add_institution(conn, Institution("H2", "东南大学附属中大医院", "hospital"), actor="t")
        set_declaration(conn, "D1", ["HSDA00.01", "HSDB04.01", "HSDB04.02", "HSDB01.01"], actor="t")
        set_declaration(conn, "H1", ["C0002", "C0053"], actor="t")

        def put(
            code: str, when: datetime, table: str, record: NormalizedRecord, content: str = ""
        ) -> str:
            arrival = Arrival(code, when.astimezone(UTC), when.date(), uuid.uuid4())
            stored = store_record(
                conn,
                arrival,
                CATALOG.get(table),
                record,
                content_sha256=hashlib.sha256((record.logical_id + content).encode()).digest(),
                raw_xml=b"<ClinicalDocument/>" if record.kind == "cda" else None,
                resource={"resourceType": "x"} if record.kind == "fhir" else None,
                immutable=record.kind == "cda",
            )
            return stored.result.status

        def doc(
            table: str,
            doc_id: str,
            person: str | None = None,
            replaces: str | None = None,
            clinical: datetime | None = None,
        ) -> NormalizedRecord:
            return NormalizedRecord(
                kind="cda",
                effective_time=clinical,
                table_code=table,
                logical_id=f"2.16.156.10011.1.1^{doc_id}",
                replaces=f"2.16.156.10011.1.1^{replaces}" if replaces else None,
                patient=PatientIdentity(resident_id=person) if person else None,
            )

        # H1: the last second of July and the first second of July (UTC says otherwise for both).
        assert (
            put(
                "H1",
                at("2019-07-31T23:59:59"),
                "C0002",
                doc("C0002", "A", clinical=at("2019-07-31T20:00:00")),
            )
            == "created"
        )
        assert (
            put(
                "H1",
                at("2019-07-01T00:00:00"),
                "C0002",
                doc("C0002", "B", clinical=at("2019-06-29T12:00:00")),
            )
            == "created"
        )
        assert put("H1", at("2019-07-12T09:00:00"), "C0002", doc("C0002", "A")) == "unchanged"
        assert put("H1", at("2019-07-10T09:00:00"), "C0053", doc("C0053", "C")) == "created"
        # A replacement of B in July: a record, not a second visit.
        assert (
            put("H1", at("2019-07-20T09:00:00"), "C0002", doc("C0002", "B2", replaces="B"))
            == "created"
        )
        # An undeclared table, and an Encounter created in July that finishes in August.
        patient = NormalizedRecord(
            kind="fhir",
            table_code="FHIR.Patient",
            logical_id="Patient/1",
            patient=PatientIdentity(resident_id=P1),
        )
        assert put("H1", at("2019-07-10T10:00:00"), "FHIR.Patient", patient) == "created"
        assert put("H1", at("2019-07-10T10:00:01"), "FHIR.Patient", patient) == "unchanged"

        def encounter(status: str) -> NormalizedRecord:
            return NormalizedRecord(
                kind="fhir",
                table_code="FHIR.Encounter",
                logical_id="Encounter/9",
                encounter_class="IMP",
                encounter_status=status,
            )

        assert (
            put("H1", at("2019-07-25T08:00:00"), "FHIR.Encounter", encounter("in-progress"), "1")
            == "created"
        )
        assert (
            put("H1", at("2019-08-02T08:00:00"), "FHIR.Encounter", encounter("finished"), "2")
            == "updated"
        )
        # The first second of August belongs to August.
        assert put("H1", at("2019-08-01T00:00:00"), "C0002", doc("C0002", "D")) == "created"
        # An August Condition whose Patient came in a July upload counts for that person.
        condition = NormalizedRecord(
            kind="fhir",
            table_code="FHIR.Condition",
            logical_id="Condition/7",
            subject_reference="Patient/1",
            diagnosis_categories=("I10",),
        )
        assert put("H1", at("2019-08-05T10:00:00"), "FHIR.Condition", condition) == "created"

        # D1: P2 registered in June; P1 in July with both hypertension and diabetes follow-ups.
        assert (
            put("D1", at("2019-06-20T09:00:00"), "HSDA00.01", doc("HSDA00.01", "E", P2))
            == "created"
        )
        assert (
            put("D1", at("2019-07-05T09:00:00"), "HSDA00.01", doc("HSDA00.01", "F", P1))
            == "created"
        )
        assert (
            put("D1", at("2019-07-05T10:00:00"), "HSDB04.01", doc("HSDB04.01", "G", P1))
            == "created"
        )
        assert (
            put("D1", at("2019-07-06T10:00:00"), "HSDB04.02", doc("HSDB04.02", "H", P1))
            == "created"
        )
        assert (
            put("D1", at("2019-07-07T10:00:00"), "HSDB04.01", doc("HSDB04.01", "I", P1))
            == "created"
        )

        # H2 has no declaration; its only July upload was rejected.
        july = at("2019-07-15T09:00:00")
        reject(
            conn,
            Arrival("H2", july.astimezone(UTC), july.date(), uuid.uuid4()),
            ["cda.header.realm"],
        )


EXPECTED_JULY = {
    "cumulative_records": 1
    + 6
    + 4,  # June: E; July: A, B, C, B2, Patient, Encounter v1 and F, G, H, I
    "rows": {
        "H1": {
            "required": 53,
            "declared": 2,
            "uploaded_tables": 4,
            "undeclared_tables": ["FHIR.Encounter", "FHIR.Patient"],
            "missing_declared_tables": [],
            "records": 6,
            "upload_days": 5,
            "outpatient_visits": 2,
            "discharges": 1,
            "health_records": {"basic": 1, "hypertension": 0, "diabetes": 0},
            "rejected": 0,
        },
        "H2": {
            "required": 53,
            "declared": None,
            "uploaded_tables": 0,
            "undeclared_tables": [],
            "missing_declared_tables": [],
            "records": 0,
            "upload_days": 0,
            "outpatient_visits": 0,
            "discharges": 0,
            "health_records": {"basic": 0, "hypertension": 0, "diabetes": 0},
            "rejected": 1,
        },
        "D1": {
            "required": 20,
            "declared": 4,
            "uploaded_tables": 3,
            "undeclared_tables": [],
            "missing_declared_tables": ["HSDB01.01"],
            "records": 4,
            "upload_days": 3,
            "outpatient_visits": 0,
            "discharges": 0,
            "health_records": {"basic": 2, "hypertension": 1, "diabetes": 1},
            "rejected": 0,
        },
    },
}


def check_july(body: dict) -> None:
    assert (
        body["month"] == "2019-07" and body["timezone"] == "Asia/Shanghai" and body["final"] is True
    )
    assert body["cumulative_records"] == EXPECTED_JULY["cumulative_records"]
    rows = {r["institution"]: r for r in body["rows"]}
    # The RabbitMQ worker's database is shared by the session's tests: only these three count.
    ordered = [r["institution"] for r in body["rows"] if r["institution"] in EXPECTED_JULY["rows"]]
    assert ordered == ["H1", "H2", "D1"]
    for code, expected in EXPECTED_JULY["rows"].items():
        got = {k: rows[code][k] for k in expected}
        assert got == expected, code
    assert rows["H1"]["name"] == "南京鼓楼医院" and rows["H1"]["district"] == "D1"
    assert {f["rule"] for f in rows["H1"]["flags"]} >= {"flag.undeclared-tables"}
    # A (4 hours late) and B (over 2 days late) carry clinical times; the others do not.
    assert rows["H1"]["timeliness"] == {
        "measured": 2,
        "median_hours_at_most": 4.0,
        "within_1_day": 0.5,
    }
    assert rows["H1"]["rejection_rate"] == 0.0 and rows["H2"]["rejection_rate"] == 1.0
    assert rows["H2"]["top_rejection_reasons"] == [{"rule": "cda.header.realm", "occurrences": 1}]


def check_august(body: dict) -> None:
    rows = {r["institution"]: r for r in body["rows"]}
    # The Encounter finished in August is an August discharge; persons are cumulative.
    assert rows["H1"]["discharges"] == 1 and rows["H1"]["outpatient_visits"] == 1
    assert rows["H1"]["records"] == 3
    assert rows["H1"]["health_records"] == {"basic": 1, "hypertension": 1, "diabetes": 0}
    assert rows["D1"]["health_records"] == {"basic": 2, "hypertension": 1, "diabetes": 1}
    assert rows["D1"]["records"] == 0
    assert {f["rule"] for f in rows["D1"]["flags"]} == {"flag.declared-silent", "flag.month-drop"}


@pytest.fixture
def in_process(settings: Settings) -> Iterator[Database]:
    database = open_database(settings)
    configure(settings)
    bind_runtime(settings, database)
    yield database
    bind_runtime(settings, None)
    database.close()


def test_month_report_in_process(in_process: Database) -> None:
    build_month(in_process)
    assert compute_month_report("2019-07")["institutions"] == 3
    # A rerun replaces the stored report with the same figures.
    compute_month_report.delay("2019-07").get()
    compute_month_report.delay("2019-08").get()
    with in_process.connection() as conn:
        check_july(load_report(conn, date(2019, 7, 1)))
        check_august(load_report(conn, date(2019, 8, 1)))
        stored = conn.execute("select count(*) as n from monthly_report").fetchone()
    assert stored["n"] == 2  # type: ignore[index]


def test_month_report_through_rabbitmq_worker(worker: Settings) -> None:
    database = open_database(worker)
    try:
        build_month(database)
        summary = compute_month_report.delay("2019-07").get(timeout=120)
        assert summary["month"] == "2019-07" and summary["cumulative_records"] == 11
        with database.connection() as conn:
            check_july(load_report(conn, date(2019, 7, 1)))
    finally:
        database.close()
