"""POST /cda: receipts, replays, conflicts, located errors, hostile input, and atomic storage."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.audit import flush_reads
from hie.config import Settings
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.declarations import set_declaration
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cda"
GULOU = "455755678"  # the custodian of the hospital fixtures
CDA = {"Content-Type": "application/hl7-cda+xml"}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def tokens(settings: Settings) -> dict[str, str]:
    database = open_database(settings)
    try:
        with database.transaction() as tx:
            add_institution(tx.conn, Institution(GULOU, "南京鼓楼医院", "hospital"), actor="t")
            add_institution(tx.conn, Institution("H2", "南京市儿童医院", "hospital"), actor="t")
            set_declaration(tx.conn, GULOU, ["C0001", "C0002"], actor="t")
            made = {
                "gulou": create_token(
                    tx.conn, role="submitter", institution_code=GULOU, label="", actor="t"
                ),
                "h2": create_token(
                    tx.conn, role="submitter", institution_code="H2", label="", actor="t"
                ),
                "admin": create_token(
                    tx.conn, role="admin", institution_code=None, label="", actor="t"
                ),
                "regulator": create_token(
                    tx.conn, role="regulator", institution_code=None, label="", actor="t"
                ),
            }
    finally:
        database.close()
    return {k: v[1] for k, v in made.items()}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def as_(token: str) -> dict[str, str]:
    return {**CDA, "Authorization": f"Bearer {token}"}


def stored(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {
            table: conn.execute(f"select count(*) from {table}").fetchone()[0]  # noqa: S608
            for table in ("record_version", "daily_table_count", "upload", "daily_rejection")
        }


def test_store_replay_conflict_and_replacement(
    client: TestClient, tokens: dict[str, str], database_url: str
) -> None:
    document = fixture("C0002-valid.xml")
    created = client.post("/cda", content=document, headers=as_(tokens["gulou"]))
    assert created.status_code == 201, created.text
    receipt = created.json()
    assert (
        receipt["table"] == "C0002" and receipt["version"] == 1 and receipt["institution"] == GULOU
    )
    assert receipt["document"] == "2.16.156.10011.1.1^455755678-C0002-20190715-0001"

    location = created.headers["location"]
    assert client.get(location, headers=as_(tokens["gulou"])).json() == receipt
    assert client.get(location, headers=as_(tokens["h2"])).status_code == 403

    again = client.post("/cda", content=document, headers=as_(tokens["gulou"]))
    assert again.status_code == 200
    assert again.json() == receipt  # the original receipt, upload id included

    changed = document.replace("门（急）诊病历</title>".encode(), "门诊病历</title>".encode())
    conflict = client.post("/cda", content=changed, headers=as_(tokens["gulou"]))
    assert conflict.status_code == 409
    assert conflict.json()["issue"][-1]["details"]["coding"][0]["code"] == "cda.document.conflict"

    replacement = client.post(
        "/cda", content=fixture("C0002-replacement.xml"), headers=as_(tokens["gulou"])
    )
    assert replacement.status_code == 201
    assert replacement.json()["replaces"] == receipt["document"]

    with psycopg.connect(database_url) as conn:
        raw = conn.execute("select raw_xml from record_version order by id").fetchall()
        visits = conn.execute(
            "select sum(units) from monthly_unit_count where figure = 'outpatient_visits'"
        ).fetchone()
        uploads = conn.execute(
            "select outcome, http_status from upload order by received_at"
        ).fetchall()
    assert bytes(raw[0][0]) == document  # byte-exact
    assert len(raw) == 2
    assert visits == (1,)  # a replacement is not a second visit
    assert uploads == [("accepted", 201), ("unchanged", 200), ("rejected", 409), ("accepted", 201)]


def test_undeclared_tables_are_accepted_and_flagged(
    client: TestClient, tokens: dict[str, str]
) -> None:
    response = client.post("/cda", content=fixture("C0053-valid.xml"), headers=as_(tokens["gulou"]))
    assert response.status_code == 201
    assert "cda.catalog.undeclared" in {w["rule"] for w in response.json()["warnings"]}


def test_invalid_documents_get_every_error_located(
    client: TestClient, tokens: dict[str, str], database_url: str
) -> None:
    response = client.post(
        "/cda", content=fixture("broken-realm.xml"), headers=as_(tokens["gulou"])
    )
    assert response.status_code == 422
    issues = response.json()["issue"]
    realm = [i for i in issues if i["details"]["coding"][0]["code"] == "cda.header.realm"]
    assert realm and realm[0]["location"][0].startswith("line ")
    counts = stored(database_url)
    assert (
        counts["record_version"] == 0 and counts["upload"] == 1 and counts["daily_rejection"] == 1
    )


def test_a_submitter_cannot_upload_another_institutions_document(
    client: TestClient, tokens: dict[str, str]
) -> None:
    response = client.post("/cda", content=fixture("C0002-valid.xml"), headers=as_(tokens["h2"]))
    assert response.status_code == 422
    assert "submission.custodian" in {
        i["details"]["coding"][0]["code"] for i in response.json()["issue"]
    }
    forbidden = client.post(
        "/cda",
        params={"institution": GULOU},
        content=fixture("C0002-valid.xml"),
        headers=as_(tokens["h2"]),
    )
    assert forbidden.status_code == 403
    assert (
        client.post(
            "/cda", content=fixture("C0002-valid.xml"), headers=as_(tokens["regulator"])
        ).status_code
        == 403
    )


def test_an_admin_backfills_for_the_custodian(
    client: TestClient, tokens: dict[str, str], database_url: str
) -> None:
    response = client.post("/cda", content=fixture("C0001-valid.xml"), headers=as_(tokens["admin"]))
    assert response.status_code == 201, response.text
    assert response.json()["institution"] == GULOU
    # Checked against the custodian's declaration (C0001 and C0002) as its own upload would be.
    undeclared = client.post(
        "/cda", content=fixture("C0053-valid.xml"), headers=as_(tokens["admin"])
    )
    assert "cda.catalog.undeclared" in {w["rule"] for w in undeclared.json()["warnings"]}


def test_media_type_and_size_limits(
    client: TestClient, tokens: dict[str, str], settings: Settings
) -> None:
    wrong = client.post(
        "/cda",
        content=fixture("C0002-valid.xml"),
        headers={**as_(tokens["gulou"]), "Content-Type": "application/json"},
    )
    assert wrong.status_code == 415
    big = b"<ClinicalDocument>" + b" " * (50 * 1024 * 1024) + b"</ClinicalDocument>"  # 50 MB
    assert client.post("/cda", content=big, headers=as_(tokens["gulou"])).status_code == 413


@pytest.mark.parametrize(
    "name",
    [
        "hostile-billion-laughs.xml",
        "hostile-external-entity.xml",
        "hostile-external-dtd.xml",
        "broken-invalid-utf8.xml",
        "broken-malformed.xml",
    ],
)
def test_hostile_and_malformed_xml_is_refused_with_nothing_stored(
    client: TestClient, tokens: dict[str, str], database_url: str, name: str
) -> None:
    response = client.post("/cda", content=fixture(name), headers=as_(tokens["gulou"]))
    assert response.status_code == 422
    assert response.json()["issue"][0]["severity"] == "fatal"
    assert stored(database_url)["record_version"] == 0


def test_deep_nesting_is_refused(client: TestClient, tokens: dict[str, str]) -> None:
    deep = (
        b"<ClinicalDocument xmlns='urn:hl7-org:v3'>"
        + b"<a>" * 10_000
        + b"</a>" * 10_000
        + b"</ClinicalDocument>"
    )
    response = client.post("/cda", content=deep, headers=as_(tokens["gulou"]))
    assert response.status_code == 422


def test_a_failure_halfway_leaves_nothing(
    settings: Settings, tokens: dict[str, str], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hie.cda.submission as submission

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(submission, "record_upload", broken)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post(
            "/cda", content=fixture("C0002-valid.xml"), headers=as_(tokens["gulou"])
        )
    assert response.status_code == 500
    assert response.json()["resourceType"] == "OperationOutcome"
    counts = stored(database_url)
    assert counts == {
        "record_version": 0,
        "daily_table_count": 0,
        "upload": 0,
        "daily_rejection": 0,
    }


def test_only_an_admin_backfill_keeps_a_given_receipt_time(
    client: TestClient, tokens: dict[str, str], database_url: str
) -> None:
    when = {"received_at": "2019-07-31T23:59:59+08:00"}
    refused = client.post(
        "/cda", params=when, content=fixture("C0001-valid.xml"), headers=as_(tokens["gulou"])
    )
    assert refused.status_code == 403
    kept = client.post(
        "/cda", params=when, content=fixture("C0001-valid.xml"), headers=as_(tokens["admin"])
    )
    assert kept.status_code == 201
    kept_at = datetime.fromisoformat(kept.json()["received_at"])
    assert kept_at == datetime(2019, 7, 31, 15, 59, 59, tzinfo=UTC)
    with psycopg.connect(database_url) as conn:
        day = conn.execute("select day from daily_table_count").fetchone()
    assert str(day[0]) == "2019-07-31"  # the Shanghai day, though UTC says 15:59


def _audit(database_url: str) -> list[tuple[str, str | None, int, int, str | None]]:
    assert flush_reads()  # reads are audited in the background
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "select action, target, outcome, (detail->>'status')::int, role from audit_event"
            " where action like 'cda.%' order by at, id"
        ).fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_uploads_and_receipt_reads_are_audited(
    client: TestClient, tokens: dict[str, str], database_url: str
) -> None:
    created = client.post("/cda", content=fixture("C0002-valid.xml"), headers=as_(tokens["gulou"]))
    client.get(created.headers["location"], headers=as_(tokens["h2"]))
    client.post("/cda?institution=H2", content=b"<x/>", headers=as_(tokens["gulou"]))
    upload = created.headers["location"].rsplit("/", 1)[1]
    document = "2.16.156.10011.1.1^455755678-C0002-20190715-0001"
    assert _audit(database_url) == [
        ("cda.create", document, 0, 201, "submitter"),
        ("cda.read", f"upload/{upload}", 4, 403, "submitter"),
        ("cda.create", None, 4, 403, "submitter"),
    ]


def test_the_audit_entry_of_an_upload_is_in_its_transaction(
    settings: Settings, tokens: dict[str, str], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document stored is audited, and a document not stored leaves no entry claiming it."""
    import hie.audit as audit

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(audit, "record_event", broken)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post(
            "/cda", content=fixture("C0002-valid.xml"), headers=as_(tokens["gulou"])
        )
    assert response.status_code == 500
    assert stored(database_url)["record_version"] == 0  # no audit entry, no record
