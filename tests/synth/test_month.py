"""A generated month goes through the real CDA pipeline and the report equals the plan's truth."""

from __future__ import annotations

from collections import Counter
from datetime import date

from hie.catalog import default_catalog_path, read_catalog
from hie.cda.submission import CdaPipeline, submit_cda
from hie.config import Settings
from hie.fhir.access import Scope
from hie.fhir.bundles import BundleProcessor
from hie.fhir.responses import Preferences
from hie.fhir.server import Call, FhirServer
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.declarations import set_declaration
from hie.storage.institutions import add_institution
from hie.synth import plan_month
from hie.validators.cda_rules.content import default_content_rules
from hie.workers import configure
from hie.workers.reports import compute_month_report
from hie.workers.runtime import bind_runtime

CATALOG = read_catalog(default_catalog_path())


def test_the_plan_is_deterministic_and_has_defects() -> None:
    first = plan_month(date(2019, 7, 1), CATALOG, default_content_rules(), scale=0.3, seed=1)
    second = plan_month(date(2019, 7, 1), CATALOG, default_content_rules(), scale=0.3, seed=1)
    assert [u.body for u in first.uploads] == [u.body for u in second.uploads]
    assert first.declarations == second.declarations
    notes = Counter(u.note for u in first.uploads)
    assert notes[""] > 100
    assert {"duplicate", "replacement", "malformed"} <= set(notes)
    assert (
        sum(1 for d in first.declarations.values() if d is None) == 7
    )  # 未反馈 as in the bulletin


def test_a_generated_month_reports_exactly_its_truth(settings: Settings) -> None:
    plan = plan_month(
        date(2019, 7, 1), CATALOG, default_content_rules(), scale=0.25, seed=7, defect_rate=0.1
    )
    database = open_database(settings)
    configure(settings)
    bind_runtime(settings, database)
    try:
        with database.transaction() as tx:
            for member in sorted(plan.members, key=lambda m: m.kind != "district"):
                add_institution(
                    tx.conn,
                    Institution(member.code, member.name, member.kind, member.district),
                    actor="t",
                )
                if plan.declarations[member.code] is not None:
                    set_declaration(
                        tx.conn, member.code, plan.declarations[member.code] or [], actor="t"
                    )
        pipeline = CdaPipeline(settings, database)
        fhir = FhirServer(settings, database)
        outcomes = Counter()
        for upload in plan.uploads:
            if upload.channel == "fhir":
                scope = Scope(upload.institution, None, upload.received_at)
                answer = BundleProcessor(fhir).process(
                    Call(scope, Preferences.parse(None), "/fhir"), upload.body
                )
                assert answer.status == 200, answer.body
                outcomes["fhir"] += 1
                continue
            receipt = submit_cda(
                pipeline,
                upload.body,
                principal=None,
                institution=upload.institution,
                received_at=upload.received_at,
            )
            got = {201: "accepted", 200: "unchanged"}.get(receipt.status, "rejected")
            assert got == upload.expect, (upload.note, receipt.body)
            outcomes[got] += 1
        compute_month_report("2019-07")
        from hie.storage.reports import load_report

        with database.connection() as conn:
            report = load_report(conn, date(2019, 7, 1))
    finally:
        bind_runtime(settings, None)
        database.close()
    assert report is not None
    rows = {r["institution"]: r for r in report["rows"]}
    for member in plan.members:
        expected = plan.expected(member.code)
        got = {key: rows[member.code][key] for key in expected}
        assert got == expected, member.name
        assert rows[member.code]["declared"] == (
            None
            if plan.declarations[member.code] is None
            else len(plan.declarations[member.code] or [])
        )
    assert report["cumulative_records"] == sum(t.records for t in plan.truth.values())
    assert outcomes["rejected"] > 0 and outcomes["unchanged"] > 0 and outcomes["fhir"] > 0
