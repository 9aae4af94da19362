"""The benchmark command runs from a checkout and writes every figure (speed is never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FIGURES = (
    "FHIR transaction ingest over HTTP",
    "FHIR ingest against COPY",
    "conditional batch",
    "-entry batch Bundle",
    "-entry batch: server peak RSS",
    "bulk $import, server's job thread",
    "bulk $import: server peak RSS",
    "CDA ingest over HTTP",
    "hie validate, one process",
    "hie validate --jobs",
    "1 M records",
    "100 M records",
    "dashboard p50",
    "dashboard p99",
    "concurrent clients: throughput",
    "concurrent clients: p99 latency",
    "concurrent clients: errors",
)


@pytest.mark.timeout(900)
def test_the_benchmark_command_writes_every_figure_with_its_floor(
    postgres_url: str, tmp_path: Path
) -> None:
    output = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
    env["HIE_TEST_POSTGRES_URL"] = postgres_url
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--size", "tiny", "--json", str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=850,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ratio" in done.stdout  # the table
    result = json.loads(output.read_text())
    assert result["size"] == "tiny" and not result["failures"]
    names = [f["name"] for f in result["figures"]]
    for expected in FIGURES:
        assert any(expected in name for name in names), (expected, names)
    for figure in result["figures"]:
        assert figure["value"] is not None, figure
        if "errors" not in figure["name"]:
            assert figure["floor"] and figure["ratio"] is not None, figure
            assert figure["floor_label"], figure
