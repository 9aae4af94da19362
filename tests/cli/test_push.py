"""``hie push`` against a running platform: what validates is uploaded, the rest is reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from hie.app import create_app
from hie.cli import app
from hie.config import Settings
from hie.registry import Institution
from hie.server import BackgroundServer, free_port
from hie.storage import open_database
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cda"


@pytest.fixture
def platform(settings: Settings) -> Iterator[tuple[str, str]]:
    database = open_database(settings)
    with database.transaction() as tx:
        add_institution(tx.conn, Institution("455755678", "南京鼓楼医院", "hospital"), actor="t")
        _, token = create_token(
            tx.conn, role="submitter", institution_code="455755678", label="", actor="t"
        )
    database.close()
    with BackgroundServer(create_app(settings)) as server:
        yield server.url, token


def test_push_uploads_what_validates_and_reports_the_rest(
    platform: tuple[str, str], tmp_path: Path
) -> None:
    url, token = platform
    for name in ("C0002-valid.xml", "C0053-valid.xml", "broken-realm.xml"):
        (tmp_path / name).write_bytes((FIXTURES / name).read_bytes())
    result = CliRunner().invoke(app, ["push", str(tmp_path), "--server", url, "--token", token])
    assert result.exit_code == 1
    assert "accepted" in result.stdout and "invalid here, not sent" in result.stdout
    assert "cda.header.realm" in result.stdout

    (tmp_path / "broken-realm.xml").unlink()
    again = CliRunner().invoke(app, ["push", str(tmp_path), "--server", url, "--token", token])
    assert again.exit_code == 0
    assert "unchanged" in again.stdout and "accepted" not in again.stdout


def test_push_sends_what_the_server_accepts_though_hl7_would_refuse_it(
    platform: tuple[str, str], tmp_path: Path
) -> None:
    url, token = platform
    # A local extension: HL7's validator (and hie validate --mode hl7) refuse an extension it
    # has no definition for; the server accepts it, so push sends it.
    patient = {
        "resourceType": "Patient",
        "extension": [
            {"url": "https://fhir.gulou-hospital.cn/StructureDefinition/ward", "valueString": "7"}
        ],
        "gender": "female",
    }
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(patient), "utf-8")
    assert CliRunner().invoke(app, ["validate", "--mode", "hl7", str(path)]).exit_code == 1
    result = CliRunner().invoke(app, ["push", str(path), "--server", url, "--token", token])
    assert result.exit_code == 0, result.stdout
    assert "accepted" in result.stdout


def test_push_stops_and_reports_when_the_platform_stays_unreachable(tmp_path: Path) -> None:
    for name in ("C0002-valid.xml", "C0053-valid.xml"):
        (tmp_path / name).write_bytes((FIXTURES / name).read_bytes())
    closed = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        app, ["push", str(tmp_path), "--server", closed, "--token", "t", "--retry-for", "1"]
    )
    assert result.exit_code == 1
    # Retried for the second it was given, then the rest was not tried.
    assert "ConnectError, retrying in 0.5 s" in result.output
    assert "unavailable" in result.stdout
    assert "not sent: the platform stayed unavailable" in result.stdout


def test_push_puts_a_resource_under_its_id_so_pushing_again_stores_no_copy(
    platform: tuple[str, str], tmp_path: Path
) -> None:
    url, token = platform
    patient = {"resourceType": "Patient", "id": "gulou-p-0001", "gender": "male"}
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(patient), "utf-8")
    first = CliRunner().invoke(app, ["push", str(path), "--server", url, "--token", token])
    assert first.exit_code == 0, first.stdout
    assert "accepted" in first.stdout
    # A retry after a lost answer is the same request again: it must not make a second Patient.
    again = CliRunner().invoke(app, ["push", str(path), "--server", url, "--token", token])
    assert again.exit_code == 0, again.stdout
    assert "unchanged" in again.stdout and "accepted" not in again.stdout

    headers = {"Authorization": f"Bearer {token}"}
    found = httpx.get(f"{url}/fhir/Patient", headers=headers).json()
    matches = [e for e in found.get("entry", []) if e.get("search", {}).get("mode") == "match"]
    assert [e["resource"]["id"] for e in matches] == ["gulou-p-0001"]
    history = httpx.get(f"{url}/fhir/Patient/gulou-p-0001/_history", headers=headers).json()
    assert len(history["entry"]) == 1
