"""Record and upload partitions follow months of the platform's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest

from hie.config import Settings
from hie.storage import open_database
from hie.storage.partitions import PartitionMaker, month_of

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_month_of_uses_the_platform_time_zone() -> None:
    # 2019-07-31T16:30Z is 00:30 on 1 August in Shanghai.
    assert month_of(datetime(2019, 7, 31, 16, 30, tzinfo=UTC), SHANGHAI) == date(2019, 8, 1)
    assert month_of(datetime(2019, 7, 31, 15, 59, 59, tzinfo=UTC), SHANGHAI) == date(2019, 7, 1)


def test_rows_land_in_the_partition_of_their_local_month(settings: Settings, tmp_path) -> None:
    database = open_database(settings)
    try:
        maker = PartitionMaker(database, SHANGHAI)
        first_of_august = datetime(2019, 7, 31, 16, 0, tzinfo=UTC)
        maker.ensure_for(first_of_august)
        maker.ensure_for(datetime(2019, 7, 31, 15, 59, 59, tzinfo=UTC))
        with database.transaction() as tx:
            tx.conn.execute(
                "insert into institution (code, name, kind) values ('H1', 'x', 'hospital')"
            )
            for moment in (first_of_august, datetime(2019, 7, 31, 15, 59, 59, tzinfo=UTC)):
                tx.conn.execute(
                    """
                    insert into record_version (received_at, institution_code, table_code,
                        logical_id, version, upload_id, content_sha256, resource)
                    values (%s, 'H1', 'FHIR.Patient', 'Patient/1', 1, gen_random_uuid(),
                        '\\x00', '{}')
                    """,
                    (moment,),
                )
            rows = tx.conn.execute(
                "select tableoid::regclass::text as part from record_version order by received_at"
            ).fetchall()
        assert [r["part"] for r in rows] == ["record_version_y2019m07", "record_version_y2019m08"]
    finally:
        database.close()


def test_a_row_without_a_partition_is_refused_not_misfiled(db) -> None:
    with pytest.raises(psycopg.errors.CheckViolation), db.transaction() as tx:
        tx.conn.execute(
            """
            insert into upload (id, received_at, institution_code, channel, byte_size, outcome,
                receipt)
            values (gen_random_uuid(), '1999-01-01T00:00:00Z', 'H1', 'cda', 1, 'accepted', '{}')
            """
        )
