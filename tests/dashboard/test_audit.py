"""The dashboard's audit trail page, and the dashboard's own look-ups in the trail."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.audit import flush_reads
from tests.dashboard.test_pages import sign_in


@pytest.fixture
def client(site: Any) -> Iterator[TestClient]:
    with TestClient(create_app(site.settings), follow_redirects=False) as test_client:
        yield test_client


def _rows(site: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    assert flush_reads()  # reads are audited in the background
    with psycopg.connect(site.settings.database_url.get_secret_value()) as conn:
        return conn.execute(sql, params).fetchall()


def test_regulators_read_and_filter_the_trail(client: TestClient, site: Any) -> None:
    sign_in(client, site.tokens["regulator"])
    # A drill-down into an institution's page is recorded, with who and from where.
    assert client.get("/dashboard/institutions/H1", params={"month": "2019-07"}).status_code == 200
    page = client.get("/dashboard/audit", params={"target": "institution/H1"})
    assert page.status_code == 200
    assert 'id="nav-audit"' in page.text
    assert "dashboard.view" in page.text and "testclient" in page.text
    english = client.get("/dashboard/audit", params={"lang": "en", "action": "nothing.at-all"})
    assert "No entries match." in english.text


def test_the_csv_export_is_itself_audited(client: TestClient, site: Any) -> None:
    sign_in(client, site.tokens["admin"])
    marker = f"Patient/{uuid.uuid4().hex}"
    download = client.get("/dashboard/audit", params={"export": "csv", "target": marker})
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith('attachment; filename="audit-')
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0][0] == "id" and len(rows) == 1  # nothing matched, headings only
    exports = _rows(
        site,
        "select actor, address, outcome from audit_event where action = 'audit.export'"
        " and detail->>'query' like %s",
        f"%{marker.split('/')[1]}%",
    )
    assert len(exports) == 1 and exports[0][1:] == ("testclient", 0)


def test_submitters_may_not_read_the_trail(client: TestClient, site: Any) -> None:
    sign_in(client, site.tokens["submitter"], "/dashboard/institutions/H1")
    page = client.get("/dashboard/audit")
    assert page.status_code == 403
    assert 'id="nav-audit"' not in page.text
    refused = _rows(
        site, "select count(*) from audit_event where action = 'audit.view' and outcome = 4"
    )
    assert refused[0][0] >= 1
    assert client.get("/dashboard/institutions/H2", params={"month": "2019-07"}).status_code == 403
    denied = _rows(
        site,
        "select count(*) from audit_event where target = 'institution/H2' and outcome = 4",
    )
    assert denied[0][0] >= 1
