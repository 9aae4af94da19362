"""Rebuilding the search index of stored FHIR resources (``hie db reindex``).

Index rows are written with each resource; when the parameters change (migration 0009 added
every R4 parameter type), the resources stored before have only the old rows until they are
indexed again. This reads each live resource's stored version and writes its rows anew, a batch
of resources per transaction, so a long reindex holds no lock for long and can be interrupted
and run again.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from hie.fhir.parameters import index_rows
from hie.storage.database import Database
from hie.storage.fhir import IndexWriter, load_resources
from hie.storage.search import LiveRow

BATCH = 500


def reindex(
    database: Database,
    zone: ZoneInfo,
    *,
    institution: str | None = None,
    resource_type: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Index every live FHIR resource again (of one institution or type when given); the count."""
    done = 0
    after: tuple[str, str, str] = ("", "", "")
    while True:
        with database.transaction() as tx:
            rows = tx.conn.execute(
                """
                select institution_code, resource_type, resource_id, version, last_updated,
                    record_id
                from fhir_resource
                where (institution_code, resource_type, resource_id) > (%s, %s, %s)
                  and (%s::text is null or institution_code = %s)
                  and (%s::text is null or resource_type = %s)
                order by institution_code, resource_type, resource_id
                limit %s
                for update
                """,
                (*after, institution, institution, resource_type, resource_type, BATCH),
            ).fetchall()
            if not rows:
                return done
            by_institution: dict[str, list[LiveRow]] = {}
            for row in rows:
                code = row.pop("institution_code")
                by_institution.setdefault(code, []).append(LiveRow(**row))
            for code, live in by_institution.items():
                stored = load_resources(tx.conn, live)
                writer = IndexWriter(code)
                for live_row in live:
                    resource = stored.get(live_row.record_id)
                    if resource is not None:
                        writer.put(live_row, index_rows(resource, zone))
                writer.flush(tx.conn)
            after = (code, live[-1].resource_type, live[-1].resource_id)
        done += len(rows)
        if progress is not None:
            progress(done)
