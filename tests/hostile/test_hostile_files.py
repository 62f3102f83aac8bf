"""Hostile files in a check run: each gets one clear line or is checked correctly, the
others are still checked, exit code 2 when any file could not be checked, no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ckpt_lsp.config import Config
from ckpt_lsp.runner import run_check
from ckpt_lsp.source import SourceError, decode_source
from hostile_inputs import FINDING, MODEL, Expect, hostile_files, make_tree

REPO = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full["PYTHONPATH"] = str(REPO / "server")
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ckpt_lsp", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full,
        timeout=300,
    )


@pytest.fixture(scope="module")
def tree_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Expect], subprocess.CompletedProcess[str], float]:
    root = tmp_path_factory.mktemp("hostile") / "proj"
    expect = make_tree(root)
    started = time.monotonic()
    proc = run_cli("--check", "--no-cache", ".", cwd=root)
    return expect, proc, time.monotonic() - started


def test_exit_two_and_no_traceback(tree_run) -> None:
    _, proc, elapsed = tree_run
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert elapsed < 60


NAMES = sorted(hostile_files(big=False)) + ["huge.py", "dir.py", "loop_a.py", "dangling.py"]


@pytest.mark.parametrize("name", [*NAMES, "sub/inner.py"])
def test_each_file_is_checked_or_diagnosed_in_one_line(tree_run, name: str) -> None:
    expect, proc, _ = tree_run
    want = expect[name.replace("/", os.sep)]
    shown = name.replace("/", os.sep)
    errors = [line for line in proc.stderr.splitlines() if shown + ":" in line]
    findings = [line for line in proc.stdout.splitlines() if line.startswith(shown + ":")]
    if want.finding is not None:
        assert any(line.startswith(f"{shown}:{want.finding}") for line in findings), proc.stdout
    if want.error:
        assert len(errors) == 1, errors
        assert all(word in errors[0].lower() for word in want.error), errors[0]
    else:
        assert errors == [], errors
    if want.silent:
        assert findings == []


def test_explicitly_named_odd_paths_get_one_line_each(tmp_path: Path) -> None:
    make_tree(tmp_path, big=False)
    proc = run_cli("--check", "loop_a.py", "dangling.py", "dir.py", "good.py", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, lines  # dir.py is walked (and holds nothing)
    assert any(line.startswith("error: loop_a.py") and "symbolic links" in line for line in lines)
    assert any(line.startswith("error: dangling.py") for line in lines)
    assert f"good.py:{FINDING}" in proc.stdout


def test_decode_cases_are_one_line() -> None:
    for name, (data, want) in hostile_files(big=False).items():
        try:
            text = decode_source(data)
        except SourceError as exc:
            assert want.error and want.finding is None, name
            assert "\n" not in str(exc) and str(exc)
            continue
        assert not (want.error and want.finding is None and "line" not in want.error[0]), name
        assert "\ufeff" not in text


def test_a_file_removed_after_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ckpt_lsp.runner as runner

    (tmp_path / "a.py").write_text(MODEL)
    (tmp_path / "b.py").write_text(MODEL)
    real = runner.discover

    def discover_then_remove(paths, config):  # type: ignore[no-untyped-def]
        found = real(paths, config)
        (tmp_path / "a.py").unlink(missing_ok=True)  # the neighbours are discovered too
        return found

    monkeypatch.setattr(runner, "discover", discover_then_remove)
    result = run_check([tmp_path], Config(root=tmp_path))
    assert [(Path(e.filename).name, e.message) for e in result.errors] == [
        ("a.py", "No such file or directory")
    ]
    assert [Path(f.filename).name for f in result.findings] == ["b.py"]


def test_a_directory_removed_while_walking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ckpt_lsp.discovery as discovery

    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "x.py").write_text(MODEL)
    (tmp_path / "kept.py").write_text(MODEL)
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if str(path).endswith("gone"):
            shutil.rmtree(path)
        return real_scandir(path)

    monkeypatch.setattr(discovery.os, "scandir", scandir)
    result = run_check([tmp_path], Config(root=tmp_path))
    assert result.errors == []
    assert [Path(f.filename).name for f in result.findings] == ["kept.py"]


def test_deep_nesting_is_called_by_its_name(tree_run) -> None:
    _, proc, _ = tree_run
    line = next(line for line in proc.stderr.splitlines() if "deep.py:" in line)
    assert "nested" in line, line


def test_huge_file_is_skipped_fast(tmp_path: Path) -> None:
    data, _ = hostile_files()["huge.py"]
    (tmp_path / "huge.py").write_bytes(data)
    started = time.monotonic()
    result = run_check([tmp_path], Config(root=tmp_path))
    assert time.monotonic() - started < 5
    assert len(result.errors) == 1 and "too large" in result.errors[0].message
