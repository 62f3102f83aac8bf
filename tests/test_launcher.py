"""The extension's launcher (bundled/tool/server.py) on fake bundles.

It must put the bundle for the running Python first on sys.path and start ckpt_lsp.cli.main
with --stdio, or, for an interpreter the bundle cannot serve, write exactly one line that says
what it found, what the bundle supports and what to change, and exit 1.
"""

from __future__ import annotations

import importlib.machinery
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "bundled" / "tool" / "server.py"
HERE_TAG = f"cp{sys.version_info[0]}{sys.version_info[1]}"
NATIVE = "native" + importlib.machinery.EXTENSION_SUFFIXES[0]

# A stand-in for ckpt_lsp.cli: reports how it was called instead of serving.
FAKE_CLI = """
import json, sys
def main(argv):
    print(json.dumps({"argv": argv, "path": sys.path[:2], "all": sys.path}))
    return 7
"""


def make_bundle(root: Path, tags: list[str], native: str = NATIVE, common: bool = True) -> Path:
    """A bundle with the real launcher and fake libraries; returns the launcher's path."""
    tool = root / "bundled" / "tool"
    tool.mkdir(parents=True)
    shutil.copy2(LAUNCHER, tool / "server.py")
    libs = root / "bundled" / "libs"
    if common:
        package = libs / "common" / "ckpt_lsp"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "cli.py").write_text(FAKE_CLI)
    for tag in tags:
        (libs / tag / "libcst").mkdir(parents=True)
        (libs / tag / "libcst" / native).write_bytes(b"")
    return tool / "server.py"


def run(python: str, launcher: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, str(launcher), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_line_advice(proc: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert proc.returncode == 1, proc
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("ckpt-lsp: ")
    for text in (
        "`ckpt-lsp.importStrategy`",
        "`fromEnvironment`",
        "pip install ckpt-lsp",
        *expected,
    ):
        assert text in line, line
    return line


def test_runs_the_server_with_the_bundle_first(tmp_path: Path) -> None:
    launcher = make_bundle(tmp_path, ["cp39", HERE_TAG])
    proc = run(sys.executable, launcher, "--stdio", "--log-level", "debug")
    assert proc.returncode == 7, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["argv"] == ["--stdio", "--log-level", "debug"]
    libs = (tmp_path / "bundled" / "libs").resolve()
    assert [Path(p).resolve() for p in seen["path"]] == [libs / HERE_TAG, libs / "common"]
    tool = str(launcher.parent.resolve())
    assert all(str(Path(p).resolve()) != tool for p in seen["all"] if p)


def test_adds_stdio_when_missing(tmp_path: Path) -> None:
    proc = run(sys.executable, make_bundle(tmp_path, [HERE_TAG]))
    assert json.loads(proc.stdout)["argv"] == ["--stdio"]


def test_no_build_for_this_python(tmp_path: Path) -> None:
    launcher = make_bundle(tmp_path, ["cp39", "cp310"] if HERE_TAG != "cp310" else ["cp39"])
    line = assert_one_line_advice(run(sys.executable, launcher), "3.9")
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert f"no bundled build for Python {here}" in line
    assert sys.executable in line


def test_native_build_of_another_platform(tmp_path: Path) -> None:
    launcher = make_bundle(tmp_path, [HERE_TAG], native="native.cp311-win_arm64.pyd")
    line = assert_one_line_advice(run(sys.executable, launcher))
    assert "no build for this platform" in line


def test_bundle_missing(tmp_path: Path) -> None:
    launcher = make_bundle(tmp_path, [], common=False)
    line = assert_one_line_advice(run(sys.executable, launcher))
    assert "the bundled server is missing" in line


def old_pythons() -> list[str]:
    found = []
    for minor in ("2.7", "3.6", "3.7", "3.8"):
        candidates = sorted(Path.home().glob(f".pyenv/versions/{minor}.*/bin/python{minor}"))
        if candidates:
            found.append(str(candidates[-1]))
    return found


@pytest.mark.parametrize("python", old_pythons() or [pytest.param("", marks=pytest.mark.skip)])
def test_too_old_python_gets_one_line(tmp_path: Path, python: str) -> None:
    """The launcher itself still runs there (no f-strings, no annotations) to say so."""
    launcher = make_bundle(tmp_path, ["cp39", "cp313"])
    line = assert_one_line_advice(run(python, launcher, "--stdio"), "3.9, 3.13")
    assert "is too old" in line
