"""The report over HTTP: JSON for regulators, the bulletin's CSV and XLSX, trends, computing."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from hie.app import create_app
from hie.catalog import default_catalog_path, read_catalog
from hie.config import Settings
from hie.ingest import Arrival, store_record
from hie.normalize import NormalizedRecord
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.storage.partitions import PartitionMaker
from hie.storage.tokens import create_token

SHANGHAI = ZoneInfo("Asia/Shanghai")
CATALOG = read_catalog(default_catalog_path())


@pytest.fixture
def setup(settings: Settings) -> dict[str, str]:
    database = open_database(settings)
    try:
        PartitionMaker(database, SHANGHAI).ensure_month(datetime(2019, 7, 1, tzinfo=UTC).date())
        with database.transaction() as tx:
            add_institution(tx.conn, Institution("H1", "南京市儿童医院", "hospital"), actor="t")
            add_institution(tx.conn, Institution("H2", "南京市中心医院", "hospital"), actor="t")
            for n in range(3):
                when = datetime(2019, 7, 10 + n, 9, tzinfo=SHANGHAI)
                record = NormalizedRecord(kind="cda", table_code="C0002", logical_id=f"doc^{n}")
                store_record(
                    tx.conn,
                    Arrival("H1", when, when.date(), uuid.uuid4()),
                    CATALOG.get("C0002"),  # type: ignore[arg-type]
                    record,
                    content_sha256=hashlib.sha256(str(n).encode()).digest(),
                    raw_xml=b"<ClinicalDocument/>",
                    immutable=True,
                )
            tokens = {
                role: create_token(tx.conn, role=role, institution_code=code, label="", actor="t")[
                    1
                ]
                for role, code in (("regulator", None), ("admin", None), ("submitter", "H1"))
            }
    finally:
        database.close()
    return tokens


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_report_lifecycle_over_http(client: TestClient, setup: dict[str, str]) -> None:
    regulator, admin = auth(setup["regulator"]), auth(setup["admin"])
    missing = client.get(
        "/api/reports/completeness", params={"month": "2019-07"}, headers=regulator
    )
    assert missing.status_code == 404
    assert "no report has been computed for 2019-07" in missing.json()["issue"][0]["diagnostics"]

    assert (
        client.post(
            "/api/reports/completeness/compute", params={"month": "2019-07"}, headers=regulator
        ).status_code
        == 403
    )
    queued = client.post(
        "/api/reports/completeness/compute", params={"month": "2019-07"}, headers=admin
    )
    assert queued.status_code == 202 and queued.json()["month"] == "2019-07"

    body = client.get(
        "/api/reports/completeness", params={"month": "2019-07"}, headers=regulator
    ).json()
    rows = {r["institution"]: r for r in body["rows"]}
    assert (rows["H1"]["records"], rows["H1"]["upload_days"], rows["H1"]["outpatient_visits"]) == (
        3,
        3,
        3,
    )
    assert rows["H2"]["declared"] is None and rows["H2"]["records"] == 0
    only = client.get(
        "/api/reports/completeness",
        params={"month": "2019-07", "kind": "district"},
        headers=regulator,
    ).json()
    assert only["rows"] == []

    assert (
        client.get(
            "/api/reports/completeness",
            params={"month": "2019-07"},
            headers=auth(setup["submitter"]),
        ).status_code
        == 403
    )
    bad = client.get("/api/reports/completeness", params={"month": "July"}, headers=regulator)
    assert bad.status_code == 422 and "YYYY-MM" in bad.json()["issue"][0]["diagnostics"]


def test_exports_have_the_bulletin_headings_and_totals(
    client: TestClient, setup: dict[str, str]
) -> None:
    admin = auth(setup["admin"])
    client.post("/api/reports/completeness/compute", params={"month": "2019-07"}, headers=admin)
    csv_text = client.get(
        "/api/reports/completeness",
        params={"month": "2019-07", "kind": "hospital", "format": "csv"},
        headers=admin,
    ).content.decode("utf-8-sig")
    lines = csv_text.splitlines()
    assert lines[0].startswith(
        "接入单位,机构代码,声明上传表/规定上传表,已上传表（CDA文档）,数据入库量,数据上传天数"
    )
    assert lines[1].startswith("南京市儿童医院,H1,未反馈/53,1,3,3,3,0")
    assert lines[-1].startswith("合计,,,,3,,3,0")

    workbook = load_workbook(
        io.BytesIO(
            client.get(
                "/api/reports/completeness",
                params={"month": "2019-07", "format": "xlsx"},
                headers=admin,
            ).content
        )
    )
    assert workbook.sheetnames == ["区", "医院"]
    hospitals = workbook["医院"]
    assert hospitals["A1"].value == "2019-07卫生信息平台数据采集情况（医院）"
    assert hospitals["E2"].value == "数据入库量"
    # Empty cells read back as None; the total of 数据入库量 is in column E.
    assert [c.value for c in hospitals[hospitals.max_row]][:5] == ["合计", None, None, None, 3]


def test_trend_of_an_institution(client: TestClient, setup: dict[str, str]) -> None:
    client.post(
        "/api/reports/completeness/compute",
        params={"month": "2019-07"},
        headers=auth(setup["admin"]),
    )
    trend = client.get(
        "/api/reports/trend",
        params={"institution": "H1", "month": "2019-08", "months": 3},
        headers=auth(setup["submitter"]),
    ).json()
    assert trend["months"] == ["2019-06", "2019-07", "2019-08"]
    assert trend["series"]["records"] == [None, 3, None]
    other = client.get(
        "/api/reports/trend",
        params={"institution": "H2", "month": "2019-08"},
        headers=auth(setup["submitter"]),
    )
    assert other.status_code == 403
