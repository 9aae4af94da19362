"""The conditional lookup reads the search index through its index, on statistics the product
itself keeps current (analysed after a bulk write, new partitions analysed at creation)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hie.config import Settings
from hie.storage import open_database
from hie.storage.fhir import IndexValue, IndexWriter
from hie.storage.partitions import PartitionMaker
from hie.storage.search import VALUE_LOOKUP, LiveRow, lookup_values
from hie.storage.statistics import analyze_if_stale

TYPES = ("Organization", "Practitioner", "Patient", "Observation")


def _load(settings: Settings) -> tuple[int, int]:
    """A few thousand resources of three institutions, with the index rows the product writes
    (an identifier each, Observations with codes, subjects, status and dates)."""
    database = open_database(settings)
    resources = rows = 0
    start = datetime(2024, 1, 1, tzinfo=UTC)
    try:
        with database.transaction() as tx:
            for code in ("H1", "H2", "H3"):
                tx.conn.execute(
                    "insert into institution (code, name, kind) values (%s, %s, 'hospital')",
                    (code, code),
                )
                writer = IndexWriter(code)
                for n in range(1200):
                    resource_type = TYPES[n % len(TYPES)]
                    values = [IndexValue("identifier", "urn:sys", f"{code}-{n}")]
                    if resource_type == "Observation":
                        moment = start + timedelta(hours=n)
                        values += [
                            IndexValue("code", "http://loinc.org", f"{n % 40}-1"),
                            IndexValue("subject", None, f"Patient/{n % 300}"),
                            IndexValue("patient", None, f"Patient/{n % 300}"),
                            IndexValue("status", None, "final"),
                            IndexValue("date", low=moment, high=moment + timedelta(seconds=1)),
                        ]
                    row = LiveRow(resource_type, f"r{n}", 1, start, n)
                    writer.put(row, values)
                    resources += 1
                    rows += len(values)
                writer.flush(tx.conn)
    finally:
        database.close()
    return resources, rows


def test_conditional_lookup_uses_the_token_index(settings: Settings) -> None:
    resources, rows = _load(settings)
    database = open_database(settings)
    try:
        # What a bulk write does after its commit: the fresh tables get statistics.
        analysed = analyze_if_stale(
            database, {"fhir_search_index": rows, "fhir_resource": resources, "record_head": 0}
        )
        assert analysed == ["fhir_resource", "fhir_search_index"]
        # A few more rows are no reason to analyse again.
        assert analyze_if_stale(database, {"fhir_search_index": 600, "fhir_resource": 100}) == []
        values = [f"H2-{n}" for n in range(0, 1200, 10)]
        with database.connection() as conn:
            params = {"inst": "H2", "type": "Organization", "param": "identifier"}
            plan = "\n".join(
                str(r["QUERY PLAN"])
                for r in conn.execute("explain " + VALUE_LOOKUP, {**params, "values": values})
            )
            found = lookup_values(conn, "H2", "Organization", "identifier", values)
        # Without the analysis the planner, taking the fresh tables for empty, reads every
        # Organization row of H2 through fhir_search_owner_idx for each lookup instead.
        assert "Seq Scan on fhir_search_index" not in plan, plan
        assert "fhir_search_token_idx" in plan, plan
        # Every fourth resource is an Organization: H2-0, H2-20, ...
        assert sorted(v for v, _, _ in found) == sorted(f"H2-{n}" for n in range(0, 1200, 20))
        assert {system for _, system, _ in found} == {"urn:sys"}
    finally:
        database.close()


def test_new_partitions_are_analysed_and_autoanalysed_sooner(settings: Settings) -> None:
    database = open_database(settings)
    try:
        created = PartitionMaker(database, ZoneInfo("Asia/Shanghai")).ensure_month(date(2031, 5, 1))
        assert created == ["upload_y2031m05", "record_version_y2031m05"]
        with database.connection() as conn:
            found = conn.execute(
                "select relname, reltuples, reloptions from pg_class where relname = any(%s)",
                (created,),
            ).fetchall()
        assert len(found) == 2
        for row in found:
            assert row["reltuples"] == 0  # analysed: known to be empty, not "never analysed"
            assert "autovacuum_analyze_scale_factor=0.02" in row["reloptions"]
    finally:
        database.close()
