"""Institutions, declarations, tokens and the catalog through the ``hie`` command line."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from hie.cli import app


@pytest.fixture
def hie(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HIE_DATABASE_URL", database_url)
    monkeypatch.setenv("HIE_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def run(*args: str, expect: int = 0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == expect, result.output
        return result

    return run


def test_institutions_round_trip(hie) -> None:
    hie("institutions", "add", "320114000000", "--name", "雨花台区", "--kind", "district")
    hie(
        "institutions",
        "add",
        "H001",
        "--name",
        "南京鼓楼医院",
        "--kind",
        "hospital",
        "--district",
        "320114000000",
    )
    listed = hie("institutions", "list").output
    assert "雨花台区" in listed and "南京鼓楼医院" in listed
    assert "未反馈" in listed

    again = hie("institutions", "add", "H001", "--name", "x", "--kind", "hospital", expect=1)
    assert "already exists" in again.output
    wrong = hie(
        "institutions",
        "add",
        "H2",
        "--name",
        "x",
        "--kind",
        "hospital",
        "--district",
        "H001",
        expect=1,
    )
    assert "'H001' is a hospital, not a district" in wrong.output
    bad_kind = hie("institutions", "add", "H3", "--name", "x", "--kind", "clinic", expect=2)
    assert "hospital or district" in bad_kind.output


def test_institutions_import_is_all_or_nothing(hie, tmp_path: Path, database_url: str) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text(
        "code,name,kind,district\nD1,江宁区,district,\nH1,医院,hosp,\n", encoding="utf-8"
    )
    result = hie("institutions", "import", str(broken), expect=1)
    assert "line 3, field kind: 'hosp' is not one of hospital, district" in result.output
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select count(*) from institution").fetchone() == (0,)

    good = tmp_path / "good.csv"
    good.write_text(
        "code,name,kind,district\nH1,南京市中心医院,hospital,D1\nD1,江宁区,district,\n",
        encoding="utf-8-sig",
    )
    assert "2 added, 0 updated" in hie("institutions", "import", str(good)).output
    good.write_text(
        "code,name,kind,district\nH1,南京市中心医院（新）,hospital,D1\n", encoding="utf-8"
    )
    assert "0 added, 1 updated" in hie("institutions", "import", str(good)).output
    assert "南京市中心医院（新）" in hie("institutions", "list").output


def test_declarations_set_clear_and_import(hie, tmp_path: Path) -> None:
    hie("institutions", "add", "H1", "--name", "医院", "--kind", "hospital")
    assert "no declaration (未反馈)" in hie("declarations", "show", "H1").output

    hie("declarations", "set", "H1", "C0002", "C0001", "C0002")
    assert "H1: 2 table(s) C0001 C0002" in hie("declarations", "show", "H1").output

    unknown = hie("declarations", "set", "H1", "C0001", "C9999", expect=1)
    assert "'C9999' is not a table of the loaded catalog" in unknown.output
    assert "H1: 2 table(s)" in hie("declarations", "show", "H1").output

    hie("declarations", "set", "H1")
    assert "H1: 0 table(s)" in hie("declarations", "show", "H1").output
    hie("declarations", "clear", "H1")
    assert "no declaration (未反馈)" in hie("declarations", "show", "H1").output

    missing = hie("declarations", "set", "NOPE", "C0001", expect=1)
    assert "no institution with code 'NOPE'" in missing.output

    file = tmp_path / "declarations.csv"
    file.write_text("institution,tables\nH1,C0001;C0053\nH9,C0001\nH1,\n", encoding="utf-8")
    refused = hie("declarations", "import", str(file), expect=1).output
    assert "line 4, field institution: 'H1' is already on line 2" in refused
    file.write_text("institution,tables\nH1,C0001;C0053\nH9,C0001 C0000\n", encoding="utf-8")
    refused = hie("declarations", "import", str(file), expect=1).output
    assert "line 3, field institution: no institution with code 'H9'" in refused
    assert "line 3, field tables: 'C0000' is not a table" in refused
    assert "no declaration" in hie("declarations", "show", "H1").output
    file.write_text("institution,tables\nH1,C0001;C0053\n", encoding="utf-8")
    hie("declarations", "import", str(file))
    assert "H1: 2 table(s) C0001 C0053" in hie("declarations", "show", "H1").output


def test_tokens_are_printed_once_and_stored_as_hashes(hie, database_url: str) -> None:
    hie("institutions", "add", "H1", "--name", "医院", "--kind", "hospital")
    token = hie("tokens", "create", "H1", "--role", "submitter").stdout.strip()
    assert token.startswith("hie_") and len(token) > 40
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("select token_hash, hint from access_token").fetchall()
        audit = conn.execute("select detail::text from audit_event").fetchall()
    assert len(stored) == 1
    assert token.encode() not in stored[0][0]
    assert token not in stored[0][1]
    assert all(token not in row[0] for row in audit)
    assert token not in hie("tokens", "list").output

    needs_institution = hie("tokens", "create", "--role", "submitter", expect=1)
    assert "needs an institution" in needs_institution.output
    hie("tokens", "create", "--role", "regulator")
    hie("tokens", "revoke", "1")
    assert "no token with id 99" in hie("tokens", "revoke", "99", expect=1).output


def test_catalog_load_refuses_a_broken_file_and_keeps_the_loaded_one(
    hie, tmp_path: Path, database_url: str
) -> None:
    broken = tmp_path / "region.csv"
    broken.write_text(
        "code,name_zh,name_en,standard,cda_template_id,template_id_confirmed,cda_code,"
        "fhir_resource_type,required_for,feeds\n"
        "R1,甲,A,local,,,R1,,hospital,\n"
        "R2,乙,B,local,,,R2,,everyone,\n",
        encoding="utf-8",
    )
    result = hie("catalog", "load", str(broken), expect=1)
    assert "line 3, field required_for: 'everyone' is not an institution kind" in result.output
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select count(*) from catalog_table").fetchone() == (109,)

    broken.write_text(broken.read_text().replace("everyone", "district"))
    assert "loaded 2 tables" in hie("catalog", "load", str(broken)).output
    shown = hie("catalog", "show").output
    assert "R1" in shown and "C0001" not in shown


def test_db_upgrade_and_status(hie) -> None:
    from hie.storage.migrator import available

    latest = available()[-1]
    assert f"schema at version {latest.version}" in hie("db", "upgrade").output
    status = hie("db", "status").output
    assert "0001_initial  applied" in status
    assert f"{latest.version:04d}_{latest.name}  applied" in status


def test_db_reindex_on_a_database_without_fhir_resources(hie) -> None:
    """``hie db reindex`` runs (nothing to do on a fresh database) and says how many."""
    assert "reindexed 0 FHIR resources" in hie("db", "reindex").output


def test_help_reads_well() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("serve", "db", "catalog", "institutions", "declarations", "tokens"):
        assert group in result.output
