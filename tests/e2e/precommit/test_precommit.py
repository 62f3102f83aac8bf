"""The published pre-commit hook, run by real pre-commit (`pre-commit try-repo`).

pre-commit clones this repository at its committed HEAD, pip-installs it into a fresh virtualenv
(PyPI is needed for the dependencies) and runs the `ckpt-lsp` hook of .pre-commit-hooks.yaml in a
throwaway git repository: a model holding a lock must fail the hook with CKPT005, a clean one must
pass. The committed HEAD, not the work tree, is what is tested: uncommitted edits of others would
make try-repo build a shadow repository from a half-edited tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# pip's download cache lives here, so a second run reuses the wheels (try-repo itself always
# builds its hook environment in a temporary store).
CACHE = ROOT / ".e2e" / "pre-commit"
RUN_TIMEOUT_S = 600

HAZARD = """\
import threading

from torch import nn


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.count = 0
        self.lock = threading.Lock()
"""

CLEAN = """\
from torch import nn


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.count = 0
"""


def pre_commit_command() -> list[str]:
    """pre-commit from the venv running the tests (it is a test dependency)."""
    script = Path(sys.executable).with_name("pre-commit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pre_commit"]


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def throwaway_repo(folder: Path, model: str) -> Path:
    """A git repository holding one model file, committed (pre-commit wants a real repo)."""
    folder.mkdir()
    git(folder, "init", "-q")
    git(folder, "config", "user.email", "e2e@example.invalid")
    git(folder, "config", "user.name", "e2e")
    git(folder, "config", "commit.gpgsign", "false")
    (folder / "model.py").write_text(model, encoding="utf-8")
    git(folder, "add", "model.py")
    git(folder, "commit", "-q", "-m", "model")
    return folder


def try_repo(repo: Path, head: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PRE_COMMIT_CONFIG", None)
    env["PRE_COMMIT_HOME"] = str(CACHE / "home")
    env["PIP_CACHE_DIR"] = str(CACHE / "pip")
    env["PRE_COMMIT_COLOR"] = "never"
    # The hook's own virtualenv must not see the venv running the tests.
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    command = [*pre_commit_command(), "try-repo", str(ROOT), "ckpt-lsp"]
    command += ["--ref", head, "--all-files", "--color", "never"]
    started = time.monotonic()
    proc = subprocess.run(
        command,
        cwd=repo,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    print(f"\npre-commit try-repo in {repo.name}: {time.monotonic() - started:.1f} s")
    return proc


def output_of(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-3000:]}"


@pytest.mark.e2e
def test_hook_fails_on_a_hazard_and_passes_a_clean_model(tmp_path: Path, e2e) -> None:
    if shutil.which("git") is None:
        e2e.missing_tool("git")
    check = subprocess.run(
        [*pre_commit_command(), "--version"], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        e2e.missing_tool("pre-commit (pip install pre-commit into .venv)")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: pre-commit try-repo needs one")
    head = git(ROOT, "rev-parse", "HEAD")
    committed = git(ROOT, "ls-tree", "--name-only", head, ".pre-commit-hooks.yaml")
    assert committed == ".pre-commit-hooks.yaml", "HEAD has no .pre-commit-hooks.yaml"

    bad = try_repo(throwaway_repo(tmp_path / "hazard", HAZARD), head)
    assert bad.returncode != 0, output_of(bad)
    assert "model.py:10:9: CKPT005" in bad.stdout, output_of(bad)
    assert "ckpt-lsp" in bad.stdout and "Failed" in bad.stdout, output_of(bad)

    good = try_repo(throwaway_repo(tmp_path / "clean", CLEAN), head)
    assert good.returncode == 0, output_of(good)
    assert "Passed" in good.stdout, output_of(good)
    assert "CKPT" not in good.stdout, output_of(good)
