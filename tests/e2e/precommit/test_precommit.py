"""The published pre-commit hook, run by real pre-commit (`pre-commit try-repo`).

pre-commit clones this repository at its committed HEAD, pip-installs it into a fresh virtualenv
(PyPI is needed for the dependencies) and runs the `ckpt-lsp` hook of .pre-commit-hooks.yaml in a
throwaway git repository: a model holding a lock must fail the hook with CKPT005, a clean one must
pass. The committed HEAD, not the work tree, is what is tested: uncommitted edits of others would
make try-repo build a shadow repository from a half-edited tree.
"""

from __future__ import annotations

import json
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

# The same model in a notebook's only code cell (the hook's types_or takes jupyter files).
NOTEBOOK = json.dumps(
    {
        "cells": [
            {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": ["# Model"]},
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "model",
                "metadata": {},
                "outputs": [],
                "source": HAZARD.splitlines(keepends=True),
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    },
    indent=1,
)


# Two files: the hazard is made by a factory in base.py, used by a model in blocks.py.
BASE = """\
import threading

from torch import nn


class Layer(nn.Module):
    pass


def make_lock():
    return threading.Lock()
"""
BLOCKS = """\
from base import Layer, make_lock


class Block(Layer):
    def __init__(self):
        super().__init__()
        self.lock = make_lock()
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


def throwaway_repo(folder: Path, files: dict[str, str]) -> Path:
    """A git repository holding `files`, committed (pre-commit wants a real repo)."""
    folder.mkdir()
    git(folder, "init", "-q")
    git(folder, "config", "user.email", "e2e@example.invalid")
    git(folder, "config", "user.name", "e2e")
    git(folder, "config", "commit.gpgsign", "false")
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    git(folder, "add", *files)
    git(folder, "commit", "-q", "-m", "model")
    return folder


def try_repo(
    repo: Path, head: str, hook: str = "ckpt-lsp", *, all_files: bool = True
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PRE_COMMIT_CONFIG", None)
    env["PRE_COMMIT_HOME"] = str(CACHE / "home")
    env["PIP_CACHE_DIR"] = str(CACHE / "pip")
    env["PRE_COMMIT_COLOR"] = "never"
    # The hook's own virtualenv must not see the venv running the tests.
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    command = [*pre_commit_command(), "try-repo", str(ROOT), hook, "--ref", head]
    command += ["--color", "never", *(["--all-files"] if all_files else [])]
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
    print(f"\npre-commit try-repo {hook} in {repo.name}: {time.monotonic() - started:.1f} s")
    return proc


def output_of(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-3000:]}"


def head_with_hooks(e2e) -> str:
    """The committed HEAD to test; skips (fails under CI) when pre-commit or git is missing."""
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
    return head


@pytest.mark.e2e
def test_hook_fails_on_a_hazard_and_passes_a_clean_model(tmp_path: Path, e2e) -> None:
    head = head_with_hooks(e2e)
    files = {"model.py": HAZARD, "nb.ipynb": NOTEBOOK}
    bad = try_repo(throwaway_repo(tmp_path / "hazard", files), head)
    assert bad.returncode != 0, output_of(bad)
    assert "model.py:10:9: CKPT005" in bad.stdout, output_of(bad)
    assert "nb.ipynb:cell 2:10:9: CKPT005" in bad.stdout, output_of(bad)
    assert "ckpt-lsp" in bad.stdout and "Failed" in bad.stdout, output_of(bad)

    good = try_repo(throwaway_repo(tmp_path / "clean", {"model.py": CLEAN}), head)
    assert good.returncode == 0, output_of(good)
    assert "Passed" in good.stdout, output_of(good)
    assert "CKPT" not in good.stdout, output_of(good)


@pytest.mark.e2e
def test_both_hooks_see_a_base_in_a_file_that_is_not_committed(tmp_path: Path, e2e) -> None:
    """Only blocks.py is staged; its hazard comes from a factory in base.py, which is not.

    The per-file hook is given blocks.py alone and still resolves the factory through the
    project (the throwaway repository's .git); the project hook checks every file.
    """
    head = head_with_hooks(e2e)
    repo = throwaway_repo(tmp_path / "split", {"base.py": BASE, "blocks.py": "x = 1\n"})
    (repo / "blocks.py").write_text(BLOCKS, encoding="utf-8")
    git(repo, "add", "blocks.py")

    project = try_repo(repo, head, "ckpt-lsp-project", all_files=False)
    assert project.returncode != 0, output_of(project)
    assert "blocks.py:7:9: CKPT005" in project.stdout, output_of(project)
    staged = try_repo(repo, head, "ckpt-lsp", all_files=False)
    assert staged.returncode != 0, output_of(staged)
    assert "blocks.py:7:9: CKPT005" in staged.stdout, output_of(staged)
