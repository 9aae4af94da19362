"""`hie push --async`: resources, NDJSON and CDA documents sent as two bulk jobs to a live
server (no broker: its own thread works them), followed to the end."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from hie.app import create_app
from hie.cli.main import app
from hie.config import Settings
from hie.registry import Institution
from hie.server import BackgroundServer
from hie.storage import open_database
from hie.storage.declarations import set_declaration
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token
from tests.jobs.data import ndjson, resources

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cda"
GULOU = "455755678"


def test_push_async_sends_two_jobs_and_reports_their_outcomes(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    settings = Settings(
        database_url=make_database(), data_dir=tmp_path, secret_key=secrets.token_urlsafe(48)
    )
    database = open_database(settings)
    with database.transaction() as tx:
        add_institution(tx.conn, Institution(GULOU, "南京鼓楼医院", "hospital"), actor="t")
        set_declaration(tx.conn, GULOU, ["C0001", "C0002"], actor="t")
        token = create_token(tx.conn, role="submitter", institution_code=GULOU, label="", actor="t")
    database.close()
    folder = tmp_path / "export"
    folder.mkdir()
    generated = resources(10)
    (folder / "patients.ndjson").write_bytes(ndjson(generated[2:]))
    (folder / "one.json").write_text(json.dumps(generated[0]))
    (folder / "two.json").write_text(json.dumps(generated[1]))
    for name in ("C0001-valid.xml", "C0002-valid.xml"):
        (folder / name).write_bytes((FIXTURES / name).read_bytes())
    with BackgroundServer(create_app(settings)) as server:
        result = CliRunner().invoke(
            app, ["push", str(folder), "--server", server.url, "--token", token[1], "--async"]
        )
    assert result.exit_code == 0, result.output
    assert "accepted" in result.output
    rows = [line.strip("│ ").split() for line in result.output.splitlines()]
    counts = {row[0]: row[-1] for row in rows if row and row[0] in ("accepted", "rejected")}
    assert counts == {"accepted": "12", "rejected": "0"}, result.output
    assert "rejections by rule" not in result.output
