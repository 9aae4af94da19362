"""``hie demo`` at a small scale: the printed bulletin tables equal the generator's truth, and a
rerun changes nothing."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from hie.catalog import default_catalog_path, read_catalog
from hie.synth import plan_month
from hie.validators.cda_rules.content import default_content_rules

ARGS = ["demo", "--month", "2019-07", "--scale", "0.2", "--seed", "11", "--no-serve", "--port", "0"]


def run_demo(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hie", *ARGS], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def printed_rows(output: str) -> dict[str, list[str]]:
    """Rows of the printed tables by institution name (the first column)."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            if cells[0]:
                rows[cells[0]] = cells
    return rows


@pytest.mark.timeout(900)
def test_demo_prints_the_generators_truth_and_reruns_safely(
    database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
    env |= {
        "HIE_DATABASE_URL": database_url,
        "HIE_DATA_DIR": str(tmp_path),
        "HIE_SECRET_KEY": secrets.token_urlsafe(48),
    }
    env["COLUMNS"] = "300"  # one table row per printed line
    first = run_demo(env)
    plan = plan_month(
        date(2019, 7, 1),
        read_catalog(default_catalog_path()),
        default_content_rules(),
        seed=11,
        scale=0.2,
    )
    rows = printed_rows(first)
    for member in plan.members:
        expected = plan.expected(member.code)
        cells = rows[member.name]
        declared = plan.declarations[member.code]
        assert cells[1] == member.code
        assert cells[2].startswith("未反馈/" if declared is None else f"{len(declared)}/")
        assert cells[3] == str(expected["uploaded_tables"])
        assert cells[4] == f"{expected['records']:,}"
        assert cells[5] == str(expected["upload_days"])
        assert cells[6] == f"{expected['outpatient_visits']:,}"
        assert cells[7] == f"{expected['discharges']:,}"
        if member.kind == "district":
            persons = expected["health_records"]
            assert cells[8:11] == [
                f"{persons['basic']:,}",
                f"{persons['hypertension']:,}",
                f"{persons['diabetes']:,}",
            ]
            assert cells[11] == str(expected["rejected"])
        else:
            assert cells[8] == str(expected["rejected"])
    total = sum(t.records for t in plan.truth.values())
    assert f"(cumulative records): {total:,}" in first

    second = run_demo(env)
    assert "was loaded before: recomputing its figures only" in second
    assert printed_rows(second) == rows
