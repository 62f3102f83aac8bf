"""The command line, run as users run it: a subprocess, exit codes, every output format."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MODEL = """\
import threading
from torch import nn


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.count = 0
        self.lock = threading.Lock()
"""

CLEAN = (
    "from torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        self.n = 1\n"
)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ckpt_lsp", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "model.py").write_text(MODEL)
    (tmp_path / "clean.py").write_text(CLEAN)
    return tmp_path


def test_text_output_and_exit_one(project: Path) -> None:
    proc = run("--check", cwd=project)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("model.py:9:9: CKPT005 `self.lock` holds a lock")
    assert proc.stderr == ""


def test_clean_exit_zero(project: Path) -> None:
    proc = run("--check", "clean.py", cwd=project)
    assert proc.returncode == 0
    assert "All checks passed" in proc.stdout


def test_json_contract(project: Path) -> None:
    proc = run("--check", "--format", "json", cwd=project)
    assert proc.returncode == 1
    [item] = json.loads(proc.stdout)
    assert set(item) == {
        "code", "message", "severity", "filename", "cell", "location", "end_location",
        "class", "attribute", "url", "fix", "related",
    }  # fmt: skip
    assert item["cell"] is None  # only a notebook's findings are in a cell
    assert item["location"] == {"row": 9, "column": 9}
    assert item["end_location"] == {"row": 9, "column": 18}
    assert (item["class"], item["attribute"], item["severity"]) == ("Counter", "lock", "error")
    assert item["url"].endswith("docs/rules/CKPT005.md")
    edits = item["fix"]["edits"]
    assert edits and all({"content", "location", "end_location"} <= set(e) for e in edits)


def test_sarif_and_github(project: Path) -> None:
    sarif = json.loads(run("--check", "--format", "sarif", cwd=project).stdout)
    assert sarif["version"] == "2.1.0"
    result = sarif["runs"][0]["results"][0]
    assert result["ruleId"] == "CKPT005"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 9
    github = run("--check", "--format", "github", cwd=project).stdout
    assert github.startswith("::error file=model.py,line=9,col=9")


def test_select_and_ignore(project: Path) -> None:
    assert run("--check", "--ignore", "CKPT005", cwd=project).returncode == 0
    assert run("--check", "--select", "CKPT001", cwd=project).returncode == 0
    assert run("--check", "--select", "CKPT00", cwd=project).returncode == 1


def test_diff_changes_nothing_and_fix_clears(project: Path) -> None:
    proc = run("--check", "--diff", cwd=project)
    assert proc.returncode == 1
    assert "+    def __getstate__(self):" in proc.stdout
    assert (project / "model.py").read_text() == MODEL
    proc = run("--check", "--fix", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fixed = (project / "model.py").read_text()
    ast.parse(fixed)
    assert "def __setstate__(self, state):" in fixed
    assert run("--check", "--fix", cwd=project).returncode == 0
    assert (project / "model.py").read_text() == fixed  # fixing twice changes nothing


def test_unreadable_files_are_one_line_each_and_exit_two(project: Path) -> None:
    (project / "latin.py").write_bytes(b"x = '\xe9'\n")
    (project / "binary.py").write_bytes(b"\x00\x01\x02")
    (project / "broken.py").write_text("class A(:\n")
    proc = run("--check", cwd=project)
    assert proc.returncode == 2
    assert "model.py:9:9: CKPT005" in proc.stdout  # the others are still checked
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3, proc.stderr
    assert all("Traceback" not in line for line in lines)
    assert any("latin.py" in line and "utf-8" in line.lower() for line in lines)
    assert any("binary.py" in line for line in lines)
    assert any("broken.py" in line and "syntax error" in line for line in lines)


def test_config_errors_are_one_line(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.ckpt-lsp]\nselct = ['CKPT001']\n")
    proc = run("--check", cwd=project)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "selct" in proc.stderr and "select" in proc.stderr


def test_config_ignore_applies(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.ckpt-lsp]\nignore = ['CKPT005']\n")
    assert run("--check", cwd=project).returncode == 0


def test_missing_path(project: Path) -> None:
    proc = run("--check", "nope.py", cwd=project)
    assert proc.returncode == 2
    assert "nope.py" in proc.stderr


def test_explain_version_usage(project: Path) -> None:
    proc = run("--explain", "CKPT003", cwd=project)
    assert proc.returncode == 0 and proc.stdout.startswith("# CKPT003")
    assert run("--explain", "CKPT999", cwd=project).returncode == 2
    assert run("--version", cwd=project).stdout.startswith("ckpt-lsp ")
    bad = run("--check", "--format", "xml", cwd=project)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_fix_refuses_a_file_changed_on_disk(tmp_path: Path) -> None:
    from ckpt_lsp.runner import write_atomically
    from ckpt_lsp.source import SourceError

    target = tmp_path / "m.py"
    target.write_bytes(b"new")
    with pytest.raises(SourceError):
        write_atomically(target, b"fixed", expected=b"old")
    assert target.read_bytes() == b"new"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_warnings_of_the_code_read_never_reach_stderr(tmp_path: Path, jobs: str) -> None:
    """An invalid escape makes the parser warn (a DeprecationWarning on 3.11, a
    SyntaxWarning from 3.12); a batch run ignores warnings once for all parses, in forked
    workers too."""
    warning = 'import re\n\nX = "a"\nY = re.compile("\\d+") if X is "1" else None\n'
    for i in range(60):  # enough files for workers
        (tmp_path / f"m{i}.py").write_text(warning + MODEL.replace("Counter", f"Counter{i}"))
    # as in a CI that sets PYTHONWARNINGS=error: a warning not ignored would break a parse
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    argv = [sys.executable, "-m", "ckpt_lsp", "--check", "--no-cache", "-j", jobs, "."]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == ""
    assert proc.stdout.count("CKPT005") == 60
