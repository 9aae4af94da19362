"""What the benchmarks share: a scratch database, a hospital with a token, the app served.

Every benchmark that needs PostgreSQL makes a database of its own on ``HIE_TEST_POSTGRES_URL``
(default: the local server, as for the tests), migrated by the app's own code, and drops it at
the end, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from hie.config import Settings
from hie.registry import Institution
from hie.storage import Database, open_database
from hie.storage.institutions import add_institution
from hie.storage.tokens import create_token

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"  # public test material beside the checkout
SYNTHEA = SHARED / "synthea-r4"
HOSPITAL = "BENCH"


def admin_url() -> str:
    return os.environ.get("HIE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_database(
    prefix: str = "hie_bench", *, keep: bool = False, reuse: str | None = None
) -> Iterator[str]:
    """The URL of an empty database made for the block, dropped after it; with ``keep`` it is
    left (its name printed), and ``reuse`` names one so left instead of making one."""
    admin = admin_url()
    name = reuse or f"{prefix}_{uuid.uuid4().hex[:10]}"
    if reuse is None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    finally:
        if keep or reuse is not None:
            print(f"database kept: {name} (drop it when done)")
        else:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
                )


def settings_for(url: str, data_dir: Path | None = None) -> Settings:
    return Settings(
        database_url=url,
        data_dir=data_dir or Path("/nonexistent"),
        secret_key=secrets.token_urlsafe(48),
    )


def enrol(
    settings: Settings,
    institutions: Sequence[Institution],
    tokens: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, str]:
    """Register ``institutions`` and make ``tokens`` (name: (role, institution code)) in one
    transaction on the database of ``settings`` (migrating it first); the tokens by name."""
    database = open_database(settings)
    try:
        with database.transaction() as tx:
            for institution in institutions:
                add_institution(tx.conn, institution, actor="bench")
            return {
                name: create_token(
                    tx.conn, role=role, institution_code=code, label="", actor="bench"
                )[1]
                for name, (role, code) in (tokens or {}).items()
            }
    finally:
        database.close()


@contextmanager
def scratch_store(
    *institutions: Institution, prefix: str = "hie_bench"
) -> Iterator[tuple[Settings, Database]]:
    """A scratch database, migrated, with ``institutions`` registered, and the app's database
    on it open for the block (closed, and the database dropped, after)."""
    with scratch_database(prefix) as url:
        settings = settings_for(url)
        enrol(settings, institutions)
        database = open_database(settings)
        try:
            yield settings, database
        finally:
            database.close()


@dataclass
class Site:
    """A migrated scratch database with one registered hospital and its submitter token."""

    url: str
    settings: Settings
    token: str
    institution: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/fhir+json"}


@contextmanager
def hospital_site(
    institution: str = HOSPITAL, name: str = "基准医院", prefix: str = "hie_bench"
) -> Iterator[Site]:
    """A scratch database, migrated, with ``institution`` registered and a submitter token."""
    with scratch_database(prefix) as url:
        settings = settings_for(url)
        tokens = enrol(
            settings,
            [Institution(institution, name, "hospital")],
            {"submitter": ("submitter", institution)},
        )
        yield Site(url, settings, tokens["submitter"], institution)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    """``hie serve`` running in a process of its own."""

    base: str
    process: subprocess.Popen[bytes]

    def worker_pids(self) -> list[int]:
        """The processes that answer requests: uvicorn's workers, or the server itself."""
        import psutil

        children = psutil.Process(self.process.pid).children()
        workers = [c.pid for c in children if "spawn_main" in " ".join(c.cmdline())]
        return workers or [self.process.pid]

    def cpu_seconds(self, url: str) -> tuple[float, float]:
        """CPU seconds used so far by the answering processes and by the PostgreSQL backends
        serving the database at ``url`` (on this machine): what a load costs whatever else runs
        beside it."""
        import psutil

        web = sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in self.worker_pids())
        with psycopg.connect(url, autocommit=True) as conn:
            pids = [
                row[0]
                for row in conn.execute(
                    "select pid from pg_stat_activity where datname = current_database()"
                    " and pid <> pg_backend_pid()"
                )
            ]
        database = 0.0
        for pid in pids:
            with contextlib.suppress(psutil.Error):  # gone, or on another machine
                database += sum(psutil.Process(pid).cpu_times()[:2])
        return web, database

    def peak_rss_mib(self) -> float:
        """The largest resident set any answering process has had (VmHWM), in MiB."""
        peaks = []
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return max(peaks, default=0.0)


@contextmanager
def serve(url: str, workers: int, **env: str) -> Iterator[Served]:
    """``hie serve --workers N`` on a free port, on the database at ``url``; stopped after."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
    environment |= {
        "HIE_DATABASE_URL": url,
        "HIE_SECRET_KEY": secrets.token_urlsafe(48),
        "HIE_DB_POOL_MAX": "12",
        **env,
    }
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-m", "hie", "serve", "--port", str(port), "--workers", str(workers)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/fhir/metadata", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("hie serve did not start")
            time.sleep(0.2)
        yield Served(base, process)
    finally:
        process.terminate()
        process.wait(timeout=60)
