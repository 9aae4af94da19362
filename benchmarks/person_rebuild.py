"""``hie persons rebuild``'s speed: Patients stored without the person index (as before
migration 0013), then linked by ``rebuild_batch`` batch after batch; then the same walk again
(every record already linked: the idempotent run); each by record-by-record linking
(``one_by_one``, the store step's path) and by the batch path, on an emptied index in between;
against the walk alone (read and normalize
each record, link nothing), measured on the same database in the same run. Run:

    .venv/bin/python -m benchmarks.person_rebuild [--patients 6000] [--batch 500]

A third of the Patients carry a resident ID, a third a health card, a third demographics only
(as in person_index.py). It makes a scratch database on HIE_TEST_POSTGRES_URL and drops it.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

import hie.ingest
import hie.persons.rebuild
from benchmarks.person_index import AT, patient, store_all
from benchmarks.scratch import scratch_store
from hie.catalog import default_catalog_path, read_catalog
from hie.config import Settings
from hie.persons.rebuild import rebuild_batch
from hie.registry import Institution
from hie.storage import Database
from hie.storage.partitions import PartitionMaker

CATALOG = read_catalog(default_catalog_path())


def walk(
    database: Database, settings: Settings, batch: int, *, one_by_one: bool = False
) -> tuple[float, int]:
    """Seconds for a whole rebuild, and the records it saw."""
    started, seen, after = time.perf_counter(), 0, None
    while True:
        with database.transaction() as tx:
            done, after = rebuild_batch(
                tx.conn,
                CATALOG.get,
                after,
                zone=settings.zone,
                limit=batch,
                one_by_one=one_by_one,
            )
        seen += done.records
        if after is None:
            return time.perf_counter() - started, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    hook = hie.ingest.index_stored
    link: Callable[..., object] = hie.persons.rebuild.link_record
    unlink: Callable[..., object] = hie.persons.rebuild.unlink_record
    link_many: Callable[..., object] = hie.persons.rebuild.link_records
    with scratch_store(Institution("H1", "医院", "hospital")) as (settings, database):
        try:
            PartitionMaker(database, settings.zone).ensure_for(AT)
            rng = random.Random(17)  # noqa: S311 (test data)
            hie.ingest.index_stored = _nothing  # type: ignore[assignment]
            store_all(database, [patient(rng, n, "p") for n in range(args.patients)])
            hie.ingest.index_stored = hook  # type: ignore[assignment]

            hie.persons.rebuild.link_record = _nothing  # type: ignore[assignment]
            hie.persons.rebuild.unlink_record = _nothing  # type: ignore[assignment]
            hie.persons.rebuild.link_records = _none_linked  # type: ignore[assignment]
            bare, records = walk(database, settings, args.batch)
            hie.persons.rebuild.link_records = link_many  # type: ignore[assignment]
            hie.persons.rebuild.link_record = link  # type: ignore[assignment]
            hie.persons.rebuild.unlink_record = unlink  # type: ignore[assignment]
            old_first, _ = walk(database, settings, args.batch, one_by_one=True)
            old_again, _ = walk(database, settings, args.batch, one_by_one=True)
            with database.transaction() as tx:
                tx.conn.execute(
                    "truncate person_history, person_review, person_identifier, person_link,"
                    " person cascade"
                )
            first, _ = walk(database, settings, args.batch)
            again, _ = walk(database, settings, args.batch)
        finally:
            hie.ingest.index_stored = hook  # type: ignore[assignment]
            hie.persons.rebuild.link_record = link  # type: ignore[assignment]
            hie.persons.rebuild.unlink_record = unlink  # type: ignore[assignment]
            hie.persons.rebuild.link_records = link_many  # type: ignore[assignment]
    print(f"records: {records}, batch: {args.batch}")
    for label, seconds in (
        ("walk alone (read, normalize)", bare),
        ("one by one, nothing linked yet", old_first),
        ("one by one again (all linked)", old_again),
        ("rebuild, nothing linked yet", first),
        ("rebuild again (all linked)", again),
    ):
        rate = records / seconds
        print(f"{label:30} {rate:8.0f} records/s  time ratio to the walk {seconds / bare:.2f}")
    print(
        f"batch against one by one: {old_first / first:.1f}x (nothing linked),"
        f" {old_again / again:.1f}x (all linked)"
    )


def _nothing(*args: object, **kwargs: object) -> None:
    return None


def _none_linked(conn: object, records: list[object]) -> list[tuple[None, None]]:
    return [(None, None)] * len(records)


if __name__ == "__main__":
    main()
