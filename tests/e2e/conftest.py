"""Shared pieces of the end-to-end tests that drive real editors we did not write.

The editors are installed by scripts/setup-e2e.sh. Locally a missing editor skips its test;
under CI (env CI set) it fails, because CI must really run them.
"""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MODEL_NAME = "model.py"
# 1-based line of `self.lock = threading.Lock()` in fixtures/model.py.
LOCK_LINE = 9
SETUP_HINT = "run `bash scripts/setup-e2e.sh` to install it"


def missing_tool(what: str) -> None:
    """Skip locally, fail under CI: a CI run that silently skipped the editors proves nothing."""
    message = f"{what} is not installed; {SETUP_HINT}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this test must run)", pytrace=False)
    pytest.skip(message)


@dataclass
class Workspace:
    """A temporary folder holding a fresh copy of the model file."""

    folder: Path
    model: Path

    def model_text(self) -> str:
        return self.model.read_text(encoding="utf-8")


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    folder = tmp_path / "workspace"
    folder.mkdir()
    model = folder / MODEL_NAME
    shutil.copyfile(FIXTURES / MODEL_NAME, model)
    return Workspace(folder=folder, model=model)


def server_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment in which `python -m ckpt_lsp` imports this checkout's server.

    An explicit PYTHONPATH stays in front, so a stand-in server can be swapped in by hand.
    """
    env = dict(os.environ if base is None else base)
    server_dir = str(ROOT / "server")
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p] + [server_dir]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def server_python() -> str:
    """The interpreter that has the server's dependencies (the venv running pytest)."""
    return sys.executable


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kill_group(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """End a process started with start_new_session=True and everything it spawned."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # Children may outlive the leader; the group id stays the leader's pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def wait_for(predicate: Callable[[], bool], deadline: float, interval: float = 0.25) -> bool:
    """Poll until predicate() holds or the monotonic deadline passes."""
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def assert_fixed_source(text: str) -> None:
    """The quickfix added a __getstate__ and left valid Python."""
    assert "def __getstate__" in text, text
    ast.parse(text)


def tail(path: Path, limit: int = 4000) -> str:
    """The end of a log file, for assertion messages."""
    try:
        data = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"<no {path.name}>"
    return data[-limit:]


@pytest.fixture
def timed(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how long the test took (the e2e tests are the slow ones, so we watch them)."""
    start = time.monotonic()
    yield
    print(f"\n{request.node.nodeid}: {time.monotonic() - start:.1f} s")


class E2EHelpers:
    """The helpers above, handed to tests as a fixture (conftest modules are not importable)."""

    root = ROOT
    lock_line = LOCK_LINE
    missing_tool = staticmethod(missing_tool)
    server_env = staticmethod(server_env)
    server_python = staticmethod(server_python)
    free_port = staticmethod(free_port)
    kill_group = staticmethod(kill_group)
    wait_for = staticmethod(wait_for)
    assert_fixed_source = staticmethod(assert_fixed_source)
    tail = staticmethod(tail)


@pytest.fixture
def e2e() -> type[E2EHelpers]:
    return E2EHelpers
