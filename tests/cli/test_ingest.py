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
    assert "created" in result.stdout and "rejected" in result.stdout
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


def _row(output: str, name: str) -> list[str]:
    """The cells of the printed row of the file ``name``: created, updated, unchanged, rejected."""
    for line in output.splitlines():
        if name in line:
            return [c.strip() for c in line.strip("│ ").split("│")][1:]
    raise AssertionError(f"no row for {name} in:\n{output}")


def test_ingest_reports_created_updated_unchanged_and_rejected_per_file(
    hie, tmp_path: Path
) -> None:
    hie("institutions", "add", "455755678", "--name", "南京鼓楼医院", "--kind", "hospital")
    patient = json.loads((FIXTURES / "fhir" / "patient-cn.json").read_text("utf-8"))
    patient["id"] = "p1"

    def transaction(*resources: dict) -> dict:
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"Patient/{r['id']}"}}
                for r in resources
            ],
        }

    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(transaction(patient), ensure_ascii=False))
    first = hie("ingest", str(bundle), "--institution", "455755678")
    assert _row(first.stdout, "bundle.json") == ["1", "0", "0", "0"]

    # The same Patient changed, and a second one: one new version, one created.
    second = dict(patient, id="p2")
    patient["gender"] = "female" if patient.get("gender") != "female" else "male"
    bundle.write_text(json.dumps(transaction(patient, second), ensure_ascii=False))
    again = hie("ingest", str(bundle), "--institution", "455755678")
    assert _row(again.stdout, "bundle.json") == ["1", "1", "0", "0"]

    third = hie("ingest", str(bundle), "--institution", "455755678")
    assert _row(third.stdout, "bundle.json") == ["0", "0", "2", "0"]
