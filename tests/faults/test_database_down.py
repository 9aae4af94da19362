"""PostgreSQL stopped for 20 s while ``hie push`` uploads to ``hie serve``: the server answers
only 503 with Retry-After meanwhile, push waits it out and finishes, and every upload it reports
as acknowledged is stored exactly once."""

from __future__ import annotations

import csv
import re
import secrets
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from hie.catalog import default_catalog_path, read_catalog
from hie.cli import app
from hie.server import free_port
from hie.synth import plan_month
from hie.validators.cda_rules.content import default_content_rules

from .conftest import PrivatePostgres, clean_env

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]

OUTAGE = 20.0  # seconds PostgreSQL stays down
DOCUMENTS = 40
STOP_AFTER = 10  # documents stored before PostgreSQL is stopped

ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')
RETRY = re.compile(r"(?P<path>/\S*): (?P<why>[^,\n]+), retrying in (?P<delay>[\d.]+) s")
COUNT = re.compile(r"(?P<outcome>accepted|unchanged|rejected|unavailable)\W+(?P<n>\d+)")


def _documents(folder: Path) -> bytes:
    """Write valid, distinct CDA documents and the registry they need; return one more, kept
    back for probing."""
    plan = plan_month(
        date(2026, 10, 1),
        read_catalog(default_catalog_path()),
        default_content_rules(),
        seed=7,
        scale=0.5,
    )
    clean = [
        u for u in plan.uploads if u.channel == "cda" and u.expect == "accepted" and not u.note
    ]
    assert len(clean) > DOCUMENTS
    docs = folder / "documents"
    docs.mkdir()
    for number, upload in enumerate(clean[:DOCUMENTS]):
        (docs / f"{number:03d}.xml").write_bytes(upload.body)
    with (folder / "institutions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["code", "name", "kind", "district"])
        writer.writerows([m.code, m.name, m.kind, m.district or ""] for m in plan.members)
    with (folder / "declarations.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["institution", "tables"])
        writer.writerows([c, " ".join(t)] for c, t in plan.declarations.items() if t is not None)
    return clean[DOCUMENTS].body


def _stored(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select (select count(*) from record_head) as heads,"
            " (select count(*) from record_version) as versions,"
            " (select count(*) from upload where outcome = 'accepted') as accepted"
        ).fetchone()
    assert row is not None
    return {"heads": row[0], "versions": row[1], "accepted": row[2]}


def test_push_rides_out_a_database_outage_and_stores_each_document_once(
    private_postgres: PrivatePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg = private_postgres
    probe_document = _documents(tmp_path)
    env = clean_env(
        HIE_DATABASE_URL=pg.url,
        HIE_SECRET_KEY=secrets.token_urlsafe(48),
        HIE_DATA_DIR=tmp_path / "data",
    )
    # Registered with the hie command against the private server.
    for name, value in env.items():
        if name.startswith("HIE_"):
            monkeypatch.setenv(name, value)
    runner = CliRunner()
    for args in (
        ["db", "upgrade"],
        ["institutions", "import", str(tmp_path / "institutions.csv")],
        ["declarations", "import", str(tmp_path / "declarations.csv")],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    created = runner.invoke(app, ["tokens", "create", "--role", "admin"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_log = tmp_path / "serve.log"
    push_out, push_err = tmp_path / "push.out", tmp_path / "push.err"
    with server_log.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "hie", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    push: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server_log.read_text()
            assert time.monotonic() < deadline, "hie serve did not answer within 120 s"
            time.sleep(0.2)

        with push_out.open("wb") as out, push_err.open("wb") as err:
            push = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hie",
                    "push",
                    str(tmp_path / "documents"),
                    "--server",
                    base,
                    "--token",
                    token,
                    "--retry-for",
                    "120",
                ],
                env=env,
                stdout=out,
                stderr=err,
            )
        while _stored(pg.url)["heads"] < STOP_AFTER:
            assert push.poll() is None, push_err.read_text()
            time.sleep(0.05)

        pg.stop()
        stopped = time.monotonic()
        assert push.poll() is None, "push finished before the outage: send more documents"
        with httpx.Client(base_url=base, timeout=5) as probe:
            # Within 5 s (the client's timeout), each says what is down and when to come back.
            health = probe.get("/healthz")
            assert health.status_code == 503, health.text
            assert health.json()["unavailable"] == ["database"]
            assert health.json()["database"]["status"] == "unavailable"
            assert int(health.headers["Retry-After"]) > 0
            answer = probe.post(
                "/cda",
                content=probe_document,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/hl7-cda+xml",
                },
            )
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["Retry-After"]) > 0
        issue = answer.json()["issue"][0]
        assert issue["code"] == "transient" and "database" in issue["diagnostics"]
        assert str(pg.port) not in answer.text and "postgresql://" not in answer.text

        time.sleep(max(0.0, stopped + OUTAGE - time.monotonic()))
        assert push.poll() is None, "push gave up during the outage"
        pg.start()
        # The first request after the database is back is served: the pool reconnects for it
        # instead of waiting out a reconnection backoff grown during the outage.
        back = httpx.get(f"{base}/healthz", timeout=10)
        assert back.status_code == 200, back.text
        assert push.wait(timeout=150) == 0, push_out.read_text() + push_err.read_text()
    finally:
        if push is not None and push.poll() is None:
            push.kill()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    # What the server answered: to uploads only receipts and 503s, never a 500.
    log_text = server_log.read_text()
    answered = [m.groupdict() for m in ACCESS.finditer(log_text)]
    uploads = [int(a["status"]) for a in answered if a["path"].startswith("/cda")]
    assert set(uploads) <= {200, 201, 503}, sorted(set(uploads))
    assert 503 in uploads and len(uploads) > DOCUMENTS
    assert all(a["status"] != "500" for a in answered)
    assert "Traceback" not in log_text, log_text

    # What push went through: 503s, each waited out at least as long as Retry-After asked
    # (its own backoff starts at half a second), and no dropped connection.
    retries = [m.groupdict() for m in RETRY.finditer(push_err.read_text())]
    assert retries, push_err.read_text()
    assert all(r["why"].startswith("503") for r in retries), retries
    assert all(float(r["delay"]) >= 5 for r in retries), retries

    # Every document acknowledged, and stored once: no lost commit, no duplicate after a retry
    # whose first attempt had committed; the probe answered 503 stored nothing.
    counts = {m["outcome"]: int(m["n"]) for m in COUNT.finditer(push_out.read_text())}
    assert counts.get("accepted", 0) + counts.get("unchanged", 0) == DOCUMENTS, counts
    assert "rejected" not in counts and "unavailable" not in counts
    assert _stored(pg.url) == {"heads": DOCUMENTS, "versions": DOCUMENTS, "accepted": DOCUMENTS}
