"""A small region with two months of known figures, its reports computed in-process, and tokens
of each role; a real uvicorn server of it for the browser tests, and the browser.

Off CI the browser tests skip when Chromium or Playwright is missing; on CI (CI=true) that is a
failure. Playwright's own browser download is never used: the closed networks hie runs in cannot
reach it."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hie.app import create_app
from hie.catalog import default_catalog_path, read_catalog
from hie.config import Settings
from hie.ingest import Arrival, reject, store_record
from hie.normalize import NormalizedRecord, PatientIdentity
from hie.registry import Institution
from hie.server import BackgroundServer
from hie.storage import Database, open_database
from hie.storage.declarations import set_declaration
from hie.storage.institutions import add_institution
from hie.storage.partitions import PartitionMaker
from hie.storage.tokens import create_token
from hie.storage.uploads import UploadRow, record_upload
from hie.workers import configure
from hie.workers.reports import compute_month_report
from hie.workers.runtime import bind_runtime

SHANGHAI = ZoneInfo("Asia/Shanghai")
CATALOG = read_catalog(default_catalog_path())
P1, P2 = "11010519491231002X", "440524188001010014"
REALM_RULE = "cda.header.realm"


@dataclass(frozen=True)
class Site:
    settings: Settings
    tokens: dict[str, str]  # regulator, admin, submitter (of H1), submitter-h3


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def _rejected_upload(conn: object, code: str, when: datetime, rule: str, message: str) -> None:
    """A rejected upload as the CDA endpoint records it: its receipt and the rejection counts."""
    arrival = Arrival(code, when.astimezone(UTC), when.date(), uuid.uuid4())
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "value",
                "diagnostics": message,
                "details": {"coding": [{"system": "urn:hie:rule", "code": rule}]},
                "expression": ["/ClinicalDocument/realmCode"],
            }
        ],
    }
    record_upload(
        conn,  # type: ignore[arg-type]
        UploadRow(
            arrival.upload_id,
            arrival.received_at,
            code,
            "cda",
            "application/xml",
            10,
            None,
            "rejected",
            422,
            0,
            1,
            outcome,
            None,
        ),
    )
    reject(conn, arrival, [rule])  # type: ignore[arg-type]


def build_region(database: Database) -> dict[str, str]:
    maker = PartitionMaker(database, SHANGHAI)
    for month in ("2019-06-15", "2019-07-15"):
        maker.ensure_for(at(month + "T12:00:00"))
    with database.transaction() as tx:
        conn = tx.conn
        add_institution(conn, Institution("D1", "玄武区", "district"), actor="t")
        add_institution(conn, Institution("D2", "栖霞区", "district"), actor="t")
        add_institution(conn, Institution("H1", "南京鼓楼医院", "hospital", "D1"), actor="t")
        add_institution(conn, Institution("H2", "东南大学附属中大医院", "hospital"), actor="t")
        add_institution(conn, Institution("H3", "南京市儿童医院", "hospital", "D2"), actor="t")
        set_declaration(conn, "D1", ["HSDA00.01", "HSDB04.01", "HSDB04.02", "HSDB01.01"], actor="t")
        set_declaration(conn, "H1", ["C0001", "C0002", "C0053"], actor="t")
        set_declaration(conn, "H3", ["C0002", "C0053"], actor="t")

        serial = iter(range(10_000))

        def put(code: str, when: datetime, table: str, person: str | None = None) -> None:
            n = next(serial)
            kind = "fhir" if table.startswith("FHIR.") else "cda"
            record = NormalizedRecord(
                kind=kind,
                table_code=table,
                logical_id=f"Patient/{n}" if kind == "fhir" else f"2.16.156.10011.1.1^{n}",
                effective_time=when.replace(hour=max(0, when.hour - 3)),
                patient=PatientIdentity(resident_id=person) if person else None,
            )
            stored = store_record(
                conn,
                Arrival(code, when.astimezone(UTC), when.date(), uuid.uuid4()),
                CATALOG.get(table),  # type: ignore[arg-type]
                record,
                content_sha256=hashlib.sha256(str(n).encode()).digest(),
                raw_xml=b"<ClinicalDocument/>" if kind == "cda" else None,
                resource={"resourceType": "Patient"} if kind == "fhir" else None,
                immutable=kind == "cda",
            )
            assert stored.result.status == "created"

        # June, for the trends: H1 uploads less than in July.
        for day in (3, 10, 17):
            put("H1", at(f"2019-06-{day:02d}T10:00:00"), "C0002")
        put("D1", at("2019-06-20T09:00:00"), "HSDA00.01", P2)
        # July.
        for day in (1, 2, 3, 8, 15, 22, 29):
            put("H1", at(f"2019-07-{day:02d}T10:00:00"), "C0002")
        put("H1", at("2019-07-10T09:00:00"), "C0053")
        put("H1", at("2019-07-10T10:00:00"), "FHIR.Patient", P1)  # not declared
        for day in range(1, 21):
            put("H3", at(f"2019-07-{day:02d}T08:00:00"), "C0002")
            put("H3", at(f"2019-07-{day:02d}T09:00:00"), "C0002")
        put("D1", at("2019-07-05T09:00:00"), "HSDA00.01", P1)
        put("D1", at("2019-07-05T10:00:00"), "HSDB04.01", P1)
        put("D1", at("2019-07-06T10:00:00"), "HSDB04.02", P1)
        # H2 never declared; its July uploads were rejected, as was one of H1's.
        for day in (12, 15):
            _rejected_upload(
                conn,
                "H2",
                at(f"2019-07-{day}T09:00:00"),
                REALM_RULE,
                f"realmCode is not CN ({day})",
            )
        _rejected_upload(conn, "H1", at("2019-07-18T09:00:00"), REALM_RULE, "realmCode is US")
        return {
            role: create_token(conn, role=role, institution_code=code, label="", actor="t")[1]
            for role, code in (
                ("regulator", None),
                ("admin", None),
                ("submitter", "H1"),
            )
        }


@pytest.fixture(scope="session")
def site(make_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The region in a database of its own, shared by the dashboard tests (which only read it)."""
    settings = Settings(
        database_url=make_database(),
        data_dir=tmp_path_factory.mktemp("dashboard"),
        secret_key=secrets.token_urlsafe(48),
    )
    database = open_database(settings)
    try:
        tokens = build_region(database)
        configure(settings)
        bind_runtime(settings, database)
        for month in ("2019-06", "2019-07"):
            compute_month_report(month)
    finally:
        bind_runtime(settings, None)
        database.close()
    return Site(settings, tokens)


@pytest.fixture(scope="session")
def server(site: Site) -> Iterator[str]:
    """``create_app(settings)`` served by uvicorn on a free port of 127.0.0.1."""
    with BackgroundServer(create_app(site.settings)) as running:
        yield running.url


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots land in test-artifacts/dashboard/ at the top of the checkout (gitignored)."""
    folder = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1366, "height": 768}


def _unavailable(message: str) -> None:
    if ON_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        _unavailable("Chromium is not installed (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, locale="zh-CN")
    try:
        yield context.new_page()
    finally:
        context.close()
