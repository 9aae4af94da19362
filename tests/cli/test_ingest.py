"""``hie ingest``: folders of CDA and FHIR files through the same pipeline as HTTP, keeping the
given receipt time, with a summary of what was accepted and rejected by rule."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from hie.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def hie(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HIE_DATABASE_URL", database_url)
    monkeypatch.setenv("HIE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str, expect: int = 0):
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == expect, result.output
        return result

    return run


def test_ingest_backfills_cda_and_fhir_with_their_receipt_time(
    hie, tmp_path: Path, database_url: str
) -> None:
    hie("institutions", "add", "455755678", "--name", "南京鼓楼医院", "--kind", "hospital")
    folder = tmp_path / "upload"
    (folder / "cda").mkdir(parents=True)
    for name in ("C0002-valid.xml", "C0053-valid.xml", "broken-realm.xml"):
        (folder / "cda" / name).write_bytes((FIXTURES / "cda" / name).read_bytes())
    patient = json.loads((FIXTURES / "fhir" / "patient-cn.json").read_text("utf-8"))
    encounter = json.loads((FIXTURES / "fhir" / "encounter-amb.json").read_text("utf-8"))
    (folder / "resources.ndjson").write_text(
        "\n".join(
            json.dumps(r, ensure_ascii=False)
            for r in (patient, encounter, {"resourceType": "Nope"})
        )
    )
    result = hie(
        "ingest", str(folder), "--institution", "455755678", "--received-at", "2019-07-31T23:59:59"
    )
    assert "accepted" in result.stdout and "rejected" in result.stdout
    assert "cda.header.realm" in result.stdout
    with psycopg.connect(database_url) as conn:
        days = conn.execute("select distinct day::text from daily_table_count").fetchall()
        tables = conn.execute(
            "select table_code, sum(records) from daily_table_count group by 1 order by 1"
        ).fetchall()
    # Wall-clock time of the platform's zone: 31 July, whatever UTC says.
    assert days == [("2019-07-31",)]
    assert [t for t, _ in tables] == ["C0002", "C0053", "FHIR.Encounter", "FHIR.Patient"]

    again = hie("ingest", str(folder / "cda"), "--institution", "455755678")
    assert "unchanged" in again.stdout


def test_ingest_refuses_what_it_cannot_find(hie, tmp_path: Path) -> None:
    hie("ingest", str(tmp_path / "nothing"), "--institution", "X", expect=2)
    hie(
        "ingest",
        str(FIXTURES / "cda"),
        "--institution",
        "X",
        "--received-at",
        "yesterday",
        expect=2,
    )
