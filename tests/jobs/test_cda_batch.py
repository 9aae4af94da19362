"""POST /cda/batch: a zip of CDA documents, each stored as POST /cda would store it; hostile
entries (a zip bomb, an oversized entry, XML with a DOCTYPE) refused one by one."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hie.app import create_app
from hie.config import Settings
from hie.jobs.runner import runner_of
from hie.registry import Institution
from hie.storage import open_database
from hie.storage.declarations import set_declaration
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token
from tests.hospitals import auth
from tests.jobs.data import zipped

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cda"
GULOU = "455755678"  # the custodian of the hospital fixtures
ZIP = "application/zip"
MiB = 1024 * 1024


@pytest.fixture
def cda_client(
    make_database: Callable[[], str], tmp_path: Path
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = Settings(
        database_url=make_database(),
        data_dir=tmp_path,
        secret_key=secrets.token_urlsafe(48),
        max_request_bytes=2 * MiB,
    )
    database = open_database(settings)
    with database.transaction() as tx:
        add_institution(tx.conn, Institution(GULOU, "南京鼓楼医院", "hospital"), actor="t")
        add_institution(tx.conn, Institution("H2", "南京市儿童医院", "hospital"), actor="t")
        set_declaration(tx.conn, GULOU, ["C0001", "C0002"], actor="t")
        tokens = {
            role: create_token(tx.conn, role=role, institution_code=code, label="", actor="t")[1]
            for role, code in (("submitter", GULOU), ("regulator", None), ("admin", None))
        }
        tokens["h2"] = create_token(
            tx.conn, role="submitter", institution_code="H2", label="", actor="t"
        )[1]
    database.close()
    with TestClient(create_app(settings)) as client:
        yield client, tokens


def test_a_zip_of_documents_is_stored_entry_by_entry(
    cda_client: tuple[TestClient, dict[str, str]],
) -> None:
    client, tokens = cda_client
    valid = (FIXTURES / "C0001-valid.xml").read_bytes()
    hostile = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><ClinicalDocument/>'
    archive = zipped(
        {
            "day/C0001.xml": valid,
            "day/C0002.xml": (FIXTURES / "C0002-valid.xml").read_bytes(),
            "day/again.xml": valid,  # the same document again: unchanged, as POST /cda says
            "day/broken.xml": b"<ClinicalDocument>",
            "day/entity.xml": hostile,
            "bomb.xml": b"\0" * (MiB + MiB // 2),  # compressed about a thousand times
            "big.xml": b" " * (3 * MiB),
        }
    )
    answer = client.post(
        "/cda/batch", content=archive, headers=auth(tokens["submitter"], **{"Content-Type": ZIP})
    )
    assert answer.status_code == 202, answer.text
    url = answer.headers["Content-Location"]
    runner = runner_of(client.app.state.database)  # type: ignore[attr-defined]
    assert runner is not None and runner.wait(120)
    summary = client.get(url, headers=auth(tokens["submitter"])).json()
    assert summary["items"] == 7
    assert (summary["accepted"], summary["rejected"], summary["failed"]) == (3, 4, 0)
    items = client.get(f"{url}/items", headers=auth(tokens["submitter"])).json()["items"]
    by_entry = {i["entry"]: i for i in items}
    assert by_entry["day/C0001.xml"]["status"] == 201
    assert by_entry["day/again.xml"]["status"] == 200
    assert by_entry["day/broken.xml"]["status"] == 422
    assert by_entry["day/entity.xml"]["status"] == 422
    assert by_entry["bomb.xml"]["code"] == "bulk.zip.ratio"
    assert by_entry["big.xml"]["code"] == "bulk.item.too-large"


def test_batch_refusals(cda_client: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = cda_client
    archive = zipped({"a.xml": (FIXTURES / "C0001-valid.xml").read_bytes()})
    headers = {"Content-Type": ZIP}
    assert (
        client.post(
            "/cda/batch", content=archive, headers=auth(tokens["regulator"], **headers)
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/cda/batch",
            content=archive,
            params={"institution": "H2"},
            headers=auth(tokens["submitter"], **headers),
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/cda/batch", content=b"not a zip", headers=auth(tokens["submitter"], **headers)
        ).status_code
        == 400
    )
    assert (
        client.post("/cda/batch", content=archive, headers=auth(tokens["submitter"])).status_code
        == 415
    )
    # A zip that breaks off: accepted (stored as sent), then the job fails with the reason.
    answer = client.post(
        "/cda/batch", content=archive[:-30], headers=auth(tokens["submitter"], **headers)
    )
    assert answer.status_code == 202
    runner = runner_of(client.app.state.database)  # type: ignore[attr-defined]
    assert runner is not None and runner.wait(60)
    failed = client.get(answer.headers["Content-Location"], headers=auth(tokens["submitter"]))
    assert failed.status_code == 400
    assert "cannot be read" in failed.json()["issue"][0]["diagnostics"]
    # Another institution's submitter writing for its own: its documents' custodian is wrong.
    other = client.post("/cda/batch", content=archive, headers=auth(tokens["h2"], **headers))
    assert other.status_code == 202
    assert runner.wait(60)
    summary = client.get(other.headers["Content-Location"], headers=auth(tokens["h2"])).json()
    assert summary["rejected"] == 1
