"""Documents: what the MHD registry entry costs the CDA store path.

    .venv/bin/python -m benchmarks.document_registry [--documents 2000]

The whole CDA store path (validate, normalize, store with aggregates, receipt, event, person
index and the DocumentReference), one document at a time, against the same path with the registry
hook switched off, in alternating rounds of the same run. Then ITI-67 searches of one resident
per second, by an admin and by a clinician at another hospital under the resident's consent.
Scratch database on HIE_TEST_POSTGRES_URL (dropped afterwards).
"""

from __future__ import annotations

import argparse
import statistics
import time

import hie.ingest
from benchmarks.cda_store import CDA_HOSPITAL, documents, store_all
from benchmarks.scratch import scratch_store
from hie.auth import Principal
from hie.cda.submission import CdaPipeline
from hie.documents.search import find_documents
from hie.registry import Institution
from hie.storage.consent import put_consent
from hie.storage.institutions import add_institution
from hie.validators.cda import CdaSchema


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    args = parser.parse_args()
    with scratch_store(CDA_HOSPITAL) as (settings, database):
        pipeline = CdaPipeline(settings, database, schema=CdaSchema())
        store_all(pipeline, documents(200, "w"))  # warm up: partitions, caches, plans
        real = hie.ingest.register_cda

        def off(*args: object) -> None:
            return None

        # Alternating rounds, so that a change of load on the machine hits both alike.
        rates: dict[str, list[float]] = {"without": [], "with": []}
        for round_ in range(4):
            for label, hook in (("without", off), ("with", real)):
                hie.ingest.register_cda = hook  # type: ignore[assignment]
                rates[label].append(
                    store_all(pipeline, documents(args.documents // 4, f"{label}{round_}-"))
                )
        hie.ingest.register_cda = real
        without = statistics.median(rates["without"])
        with_registry = statistics.median(rates["with"])
        print(f"store path without the registry (baseline) {without:>9,.0f} documents/s")
        print(
            f"store path with the registry entry         {with_registry:>9,.0f} documents/s"
            f"  ({with_registry / without:.2f}x)"
        )
        admin = Principal(0, "admin", None)
        # A clinician at another hospital, let through by the resident's consent: every entry
        # decided by hie.consent (the person, the consents, the verdict) on top of the search.
        clinician = Principal(0, "clinician", "455755679")
        query = [
            ("patient.identifier", "urn:oid:2.16.156.10011.1.3|320113198906300623"),
            ("status", "current"),
        ]
        with database.transaction() as tx:
            add_institution(tx.conn, Institution("455755679", "医院乙", "hospital"), actor="b")
            # The consent names the resident by one of the hospital's records of them.
            first = find_documents(
                tx.conn, admin, None, query, zone=settings.zone, base="", self_url=""
            )
            body = first.answer.body or {}
            record = tx.conn.execute(
                "select subject_record from document_reference where id = %s",
                (body["entry"][0]["resource"]["id"],),
            ).fetchone()
            if record is None:
                raise RuntimeError("the resident has no documents")
            put_consent(
                tx.conn,
                "455755678",
                "Consent/bench",
                record["subject_record"],
                status="active",
                actors=["455755679"],
                classes=None,
                start=None,
                end=None,
            )
        searches: dict[str, list[float]] = {"admin": [], "clinician": []}
        shown: dict[str, int] = {}
        with database.connection() as conn:
            for _ in range(3):
                for label, principal in (("admin", admin), ("clinician", clinician)):
                    started = time.perf_counter()
                    for _ in range(50):
                        found = find_documents(
                            conn,
                            principal,
                            None,
                            query,
                            zone=settings.zone,
                            base="http://h/fhir",
                            self_url="",
                        )
                    searches[label].append(50 / (time.perf_counter() - started))
                    shown[label] = found.answer.body["total"] if found.answer.body else 0
        by_admin = statistics.median(searches["admin"])
        by_clinician = statistics.median(searches["clinician"])
        print(
            f"ITI-67 by resident ID, admin ({shown['admin']} documents)"
            f"  {by_admin:>9,.0f} searches/s"
        )
        print(
            f"ITI-67, clinician under consent ({shown['clinician']})"
            f"  {by_clinician:>9,.0f} searches/s  ({by_clinician / by_admin:.2f}x)"
        )


if __name__ == "__main__":
    main()
