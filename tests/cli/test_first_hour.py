"""What a newcomer meets in the first hour: sample files that are what they say, a report that
finds the month with data and says when a month is empty, readable help, and ``hie doctor``."""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hie.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STRONG_KEY = secrets.token_urlsafe(48)


def hie_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """hie as a user runs it, with its output piped (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "hie", *args], env=env, capture_output=True, text=True, timeout=120
    )


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_") and k != "COLUMNS"}
    return env | settings


@pytest.fixture
def hie(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HIE_DATABASE_URL", database_url)
    monkeypatch.setenv("HIE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HIE_SECRET_KEY", STRONG_KEY)

    def run(*args: str, expect: int = 0):
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == expect, result.output
        return result

    return run


def test_synth_writes_json_bundles_with_uuid_full_urls_and_nothing_validate_mistakes(
    hie, tmp_path: Path
) -> None:
    out = tmp_path / "sample"
    hie("synth", "--out", str(out), "--scale", "0.1", "--seed", "3")
    bundles = sorted((out / "uploads").rglob("*.json"))
    assert bundles, "the sample month has FHIR transaction Bundles"
    for path in bundles:
        bundle = json.loads(path.read_text("utf-8"))
        assert bundle["resourceType"] == "Bundle"
        for entry in bundle["entry"]:
            assert entry["fullUrl"].startswith("urn:uuid:")
            uuid.UUID(entry["fullUrl"].removeprefix("urn:uuid:"))  # a real UUID
    for path in (out / "uploads").rglob("*.xml"):
        assert path.read_bytes().lstrip().startswith(b"<"), path
    with (out / "expected-figures.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {"institution", "records", "rejected"} <= set(rows[0])
    # Validating the whole folder judges the uploads only: no metadata file passes for FHIR.
    result = hie("validate", "--format", "json", str(out), expect=1)
    judged = {Path(f["path"]).name for f in json.loads(result.stdout)}
    assert judged and not judged & {"expected-figures.csv", "institutions.csv"}
    assert all(name.endswith((".xml", ".json")) for name in judged)


def test_report_defaults_to_the_month_with_uploads_and_says_when_a_month_is_empty(
    hie, tmp_path: Path
) -> None:
    hie("institutions", "add", "455755678", "--name", "南京鼓楼医院", "--kind", "hospital")
    hie(
        "ingest",
        str(FIXTURES / "cda" / "C0002-valid.xml"),
        "--institution",
        "455755678",
        "--received-at",
        "2019-07-20T10:00:00",
    )
    latest = hie("report", "--kind", "hospital")
    assert "2019-07" in latest.stdout and "南京鼓楼医院" in latest.stdout
    assert "no uploads were received" not in latest.output
    empty = hie("report", "--month", "2019-08", "--kind", "hospital")
    assert "no uploads were received in 2019-08. Months with uploads: 2019-07." in empty.output


def test_report_with_nothing_stored_says_what_to_do(hie) -> None:
    result = hie("report", expect=1)
    assert "no uploads are stored yet" in result.output and "hie demo" in result.output


def test_help_shows_what_to_type_at_full_width() -> None:
    done = hie_process(clean_env(), "validate", "--help")
    assert done.returncode == 0, done.stderr
    assert not re.search(r"<(bool|str|int|list\[\w+\]|path)>", done.stdout), done.stdout
    assert "PATH..." in done.stdout  # --ig, repeatable
    assert "…" not in done.stdout  # nothing cut off
    assert max(len(line) for line in done.stdout.splitlines()) > 80
    report = hie_process(clean_env(), "report", "--help")
    assert "YYYY-MM" in report.stdout


def test_piped_tables_are_not_squeezed_to_80_columns(hie) -> None:
    long_name = "东南大学附属中大医院江北院区" * 3  # 84 columns alone
    hie("institutions", "add", "H1", "--name", long_name, "--kind", "hospital")
    env = clean_env(**{k: v for k, v in os.environ.items() if k.startswith("HIE_")})
    done = hie_process(env, "institutions", "list")
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if "H1" in line)
    assert long_name in row  # one line, not folded into a column of 80


def test_doctor_says_what_to_fix(database_url: str, tmp_path: Path) -> None:
    good = clean_env(
        HIE_DATABASE_URL=database_url, HIE_SECRET_KEY=STRONG_KEY, HIE_DATA_DIR=str(tmp_path)
    )
    done = hie_process(good, "doctor", "--port", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"ok database: .*schema at version \d+", done.stdout)
    assert "ok broker" in done.stdout and "ok secret key" in done.stdout

    unreachable = good | {"HIE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    unreachable.pop("HIE_SECRET_KEY")
    bad = hie_process(unreachable, "doctor", "--port", "0")
    assert bad.returncode == 1
    assert "FAIL database" in bad.stdout and "FAIL secret key" in bad.stdout
    assert bad.stdout.count("fix:") >= 2 and "Traceback" not in bad.stderr


def test_version() -> None:
    done = hie_process(clean_env(), "--version")
    assert done.returncode == 0 and re.fullmatch(r"hie \d+\.\d+\.\d+\S*\n", done.stdout)
