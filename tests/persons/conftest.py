"""A region of two hospitals and a district, and a way to store records through the one store
step (``ingest.store_record``), as the CDA and FHIR paths do."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from hie.catalog import default_catalog_path, read_catalog
from hie.config import Settings
from hie.ingest import Arrival, Stored, store_record
from hie.normalize.fhir import normalize_resource
from hie.registry import Institution
from hie.storage import Database, open_database
from hie.storage.institutions import add_institution
from hie.storage.partitions import PartitionMaker

CATALOG = read_catalog(default_catalog_path())
JULY = datetime(2019, 7, 10, 2, 0, tzinfo=UTC)

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
HEALTH_CARD = "urn:oid:2.16.156.10011.1.19"
HEALTH_RECORD = "urn:oid:2.16.156.10011.1.2"
INPATIENT = "urn:oid:2.16.156.10011.1.12"

# 张伟, born 1949-12-31: his 18-character number and the 15-digit legacy form of it.
ZHANG_ID = "11010519491231002X"
ZHANG_LEGACY = "110105491231002"
OTHER_ID = "110105194912310046"  # another resident born the same day (valid check character)


@pytest.fixture
def region(settings: Settings) -> Iterator[Database]:
    database = open_database(settings)
    PartitionMaker(database, settings.zone).ensure_for(JULY)
    with database.transaction() as tx:
        add_institution(tx.conn, Institution("D1", "玄武区卫生服务中心", "district"), actor="t")
        add_institution(tx.conn, Institution("H1", "鼓楼医院", "hospital"), actor="t")
        add_institution(tx.conn, Institution("H2", "省人民医院", "hospital"), actor="t")
    yield database
    database.close()


def patient(
    pid: str,
    *identifiers: tuple[str, str],
    name: str = "张伟",
    birth: str = "1949-12-31",
    gender: str = "male",
    address: str = "江苏省南京市玄武区北京东路1号",
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": s, "value": v} for s, v in identifiers],
        "name": [{"text": name}],
        "gender": gender,
        "birthDate": birth,
        "address": [{"text": address}],
    }
    return resource


StoreFn = Callable[..., Stored]


@pytest.fixture
def store(region: Database) -> StoreFn:
    """Store a FHIR resource for an institution, each in its own transaction."""

    def run(institution: str, resource: dict[str, Any], *, deleted: bool = False) -> Stored:
        table = CATALOG.get("FHIR.Patient")
        record = normalize_resource(resource, table)
        body = json.dumps(resource, sort_keys=True)
        with region.transaction() as tx:
            return store_record(
                tx.conn,
                Arrival(institution, JULY, JULY.date(), uuid.uuid4()),
                table,
                record,
                content_sha256=hashlib.sha256((body + str(deleted)).encode()).digest(),
                resource=resource,
                immutable=False,
                deleted=deleted,
            )

    return run
