"""The README's and the hospital guide's shell blocks, run as printed against an instance this test
starts, so the documentation cannot drift from what works.

Every fenced ``sh`` block runs, in order, in one working folder that looks like a fresh clone
(``tests/`` is there), with shell variables carried from block to block as in one terminal. An
HTML comment right before a block says how it runs:

- ``background until "TEXT"``: started in the background (the demo, which keeps serving); the
  next blocks run once it has printed TEXT. At the end it gets SIGTERM and must stop, with its
  embedded PostgreSQL.
- ``exit 0 or 1``: each command may report invalid files (exit 1), but not fail otherwise.
- ``ci``: the test command; CI runs it (``.ci/run``), which this test checks instead.
- ``skip: REASON``: only for the production example, which needs servers of your own.

The install commands are the ones CI has already run: ``python3 -m venv .venv`` and
``.venv/bin/pip install`` are answered by shims around the environment running this test, so the
rest of the block runs as printed. The printed address ``127.0.0.1:8000`` becomes a free port.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "hospital-integration.md")
BLOCK = re.compile(r"(?:<!-- docs-test: (?P<directive>.+?) -->\n)?```sh\n(?P<body>.*?)```", re.S)
ASSIGNMENT = re.compile(r"^(?:export )?([A-Z_][A-Z0-9_]*)=", re.M)
SKIPPABLE = {"skip: needs your own PostgreSQL and RabbitMQ"}
DEMO_READY = re.compile(r'background until "(.+)"')


@dataclass
class Block:
    document: str
    directive: str
    body: str


def blocks() -> list[Block]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            found.append(Block(document.name, match["directive"] or "", match["body"]))
    return found


def commands(body: str) -> list[str]:
    """The block's commands: continuation lines joined, blank and comment lines left out."""
    joined = body.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def fake_clone(folder: Path) -> Path:
    """A folder like a fresh clone after the README's install: ``tests/`` and a ``.venv`` whose
    ``bin`` has the ``hie`` and Python running this test; ``python3 -m venv .venv`` and
    ``pip install`` there are what CI did already."""
    clone = folder / "clone"
    (clone / ".venv" / "bin").mkdir(parents=True)
    (clone / "tests").symlink_to(ROOT / "tests")
    venv_bin = clone / ".venv" / "bin"
    hie = Path(sys.executable).parent / "hie"
    assert hie.exists(), f"the hie command is not installed beside {sys.executable}"
    (venv_bin / "hie").symlink_to(hie)
    (venv_bin / "python").symlink_to(sys.executable)
    (venv_bin / "python3").symlink_to(sys.executable)
    pip = venv_bin / "pip"
    pip.write_text(
        "#!/bin/sh\n"
        'case "$*" in "install -e ."|"install -e .[test]") echo "(installed already)";;\n'
        '  *) echo "unexpected pip $*" >&2; exit 2;; esac\n'
    )
    (venv_bin / "activate").write_text(
        f"export VIRTUAL_ENV={shlex.quote(str(clone / '.venv'))}\n"
        'export PATH="$VIRTUAL_ENV/bin:$PATH"\n'
    )
    shims = folder / "shims"
    shims.mkdir()
    python3 = shims / "python3"
    python3.write_text(
        "#!/bin/sh\n"
        '[ "$*" = "-m venv .venv" ] && exit 0\n'
        f'exec {shlex.quote(sys.executable)} "$@"\n'
    )
    for script in (pip, python3):
        script.chmod(0o755)
    return clone


def test_docs_blocks_are_what_we_test() -> None:
    found = blocks()
    assert {b.document for b in found} == {d.name for d in DOCUMENTS}
    for block in found:
        assert (
            block.directive in ("", "exit 0 or 1", "ci")
            or block.directive in SKIPPABLE
            or DEMO_READY.fullmatch(block.directive)
        ), f"unknown docs-test directive {block.directive!r} in {block.document}"
    # The README's test command is CI's: .ci/run installs the test extra and runs pytest.
    ci = (ROOT / ".ci" / "run").read_text()
    (test_command,) = [b.body for b in found if b.directive == "ci"]
    assert "pip install -e '.[test]'" in test_command and "pip install --quiet -e '.[test]'" in ci
    assert test_command.strip().endswith(".venv/bin/pytest")
    assert re.search(r"^\.venv/bin/pytest$", ci, re.M)


@pytest.mark.timeout(600)
def test_readme_and_guide_run_as_printed(tmp_path: Path) -> None:
    if shutil.which("curl") is None and os.environ.get("CI") != "true":
        pytest.skip("curl is not installed")
    clone = fake_clone(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIE_")}
    env |= {
        "HIE_DATA_DIR": str(tmp_path / "data"),
        "HIE_SECRET_KEY": secrets.token_urlsafe(48),
        "PATH": f"{tmp_path / 'shims'}:{env['PATH']}",
        "COLUMNS": "200",
    }
    state = tmp_path / "state.sh"
    state.write_text("")
    names: list[str] = []
    background: subprocess.Popen[bytes] | None = None
    log = tmp_path / "background.log"

    def script(body: str) -> str:
        names.extend(n for n in ASSIGNMENT.findall(body) if n not in names)
        body = body.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        body = body.replace("hie demo", f"hie demo --port {port}")
        # What a terminal keeps between commands: the variables set, and an activated venv.
        kept = " ".join(["PATH", "VIRTUAL_ENV", *names])
        keep = f"declare -p {kept} > {shlex.quote(str(state))} 2>/dev/null || true"
        return f"source {shlex.quote(str(state))}\nset -euo pipefail\n{body}\n{keep}\n"

    def run(body: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", script(body)],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    try:
        for block in blocks():
            where = f"{block.document}:\n{block.body}"
            if block.directive in SKIPPABLE or block.directive == "ci":
                continue
            ready = DEMO_READY.fullmatch(block.directive)
            if ready:
                assert background is None, "one background block at a time"
                with log.open("wb") as out:
                    background = subprocess.Popen(
                        ["bash", "--noprofile", "--norc", "-c", script(block.body)],
                        cwd=clone,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                deadline = time.monotonic() + 300
                while ready[1] not in log.read_text(errors="replace"):
                    assert background.poll() is None, f"{where}\n{log.read_text()}"
                    assert time.monotonic() < deadline, f"{where}\n{log.read_text()}"
                    time.sleep(0.3)
                continue
            if block.directive == "exit 0 or 1":
                for command in commands(block.body):
                    done = run(command)
                    assert done.returncode in (0, 1), f"{command}\n{done.stdout}{done.stderr}"
                    assert "Traceback" not in done.stderr, f"{command}\n{done.stderr}"
                continue
            done = run(block.body)
            assert done.returncode == 0, f"{where}\n{done.stdout}\n{done.stderr}"
            assert "Traceback" not in done.stderr, f"{where}\n{done.stderr}"
    finally:
        if background is not None:
            stop_hie(background)
    # The demo stopped by SIGTERM, as by Ctrl-C, and its embedded PostgreSQL with it.
    assert background is not None
    assert background.returncode == 128 + signal.SIGTERM, log.read_text()
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists()


def stop_hie(shell: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the hie process the shell started, as ``kill`` would: not to its process
    group, which holds the embedded PostgreSQL too (that must be stopped by hie)."""
    hies = [
        p
        for p in psutil.Process(shell.pid).children(recursive=True)
        if "hie" in " ".join(p.cmdline()) and "postgres" not in p.name()
    ]
    for process in hies:
        process.send_signal(signal.SIGTERM)
    psutil.wait_procs(hies, timeout=60)
    try:
        shell.wait(timeout=60)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)


def free_port() -> int:
    from hie.server import free_port as free

    return free()
