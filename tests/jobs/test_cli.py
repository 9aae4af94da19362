"""`hie jobs`: listing, a poison item recorded as failed without blocking the rest, failures
grouped by error code, and `hie jobs retry` storing the item once the fault is gone."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hie.cli.main import app
from hie.config import Settings
from hie.jobs.processor import JobProcessor
from hie.jobs.runner import runner_of
from tests.hospitals import Tokens, auth
from tests.jobs.data import ndjson, resources


def test_poison_item_then_failed_then_retry(
    client: TestClient,
    tokens: Tokens,
    bulk_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fault where every NDJSON line is read, whether it is written with others or alone.
    original = JobProcessor._fhir_line

    def poisoned(
        self: JobProcessor, job: Any, seq: int, data: bytes, agent: Any, types: Any
    ) -> Any:
        if b"poison" in data:
            raise RuntimeError("a fault in the platform")
        return original(self, job, seq, data, agent, types)

    monkeypatch.setattr(JobProcessor, "_fhir_line", poisoned)
    lines = resources(6)
    lines[2]["name"] = [{"text": "poison"}]
    answer = client.post(
        "/fhir/$import",
        content=ndjson(lines),
        headers=auth(tokens.h1, **{"Content-Type": "application/fhir+ndjson"}),
    )
    url = answer.headers["Content-Location"]
    job = url.rsplit("/", 1)[1]
    runner = runner_of(client.app.state.database)  # type: ignore[attr-defined]
    assert runner is not None and runner.wait(60)
    summary = client.get(url, headers=auth(tokens.h1)).json()
    assert (summary["accepted"], summary["failed"]) == (5, 1)
    failures = client.get(summary["error"], headers=auth(tokens.h1)).json()["items"]
    assert failures[0]["line"] == 3
    assert "RuntimeError" in failures[0]["outcome"]["issue"][0]["diagnostics"]

    monkeypatch.setenv("HIE_DATABASE_URL", bulk_settings.database_url.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.setenv("HIE_DATA_DIR", str(bulk_settings.data_dir))
    cli = CliRunner()
    listed = cli.invoke(app, ["jobs"])
    assert listed.exit_code == 0 and job in listed.output
    grouped = cli.invoke(app, ["jobs", "failed"])
    assert grouped.exit_code == 0 and "bulk.item.error" in grouped.output
    shown = cli.invoke(app, ["jobs", "show", job])
    assert "3: failed" in shown.output

    monkeypatch.setattr(JobProcessor, "_fhir_line", original)
    retried = cli.invoke(app, ["jobs", "retry", job])
    assert retried.exit_code == 0, retried.output
    summary = client.get(url, headers=auth(tokens.h1)).json()
    assert (summary["state"], summary["accepted"], summary["failed"]) == ("done", 6, 0)


def test_hie_worker_runs_every_queue_and_beat_or_one_of_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from hie.cli.worker import commands

    both = commands("hie", str(tmp_path), only=None, queues=None, concurrency=None)
    assert [line[5] for line in both[:2]] == ["worker", "beat"]
    assert both[2][-3:] == ["hie", "events", "relay"]
    assert commands("hie", str(tmp_path), only="relay", queues=None, concurrency=None) == [both[2]]
    assert both[0][both[0].index("-Q") + 1] == "hie.ingest,hie.figures,hie.maintenance"
    ingest = commands("hie", str(tmp_path), only="celery", queues=["ingest"], concurrency=4)
    assert len(ingest) == 1 and "hie.ingest" in ingest[0] and "4" in ingest[0]

    monkeypatch.delenv("HIE_BROKER_URL", raising=False)
    monkeypatch.setenv("HIE_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 1 and "HIE_BROKER_URL" in result.output
