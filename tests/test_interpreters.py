"""The analysis gives the same findings under the oldest and the newest Python we support.

`requires-python` says 3.9; the syntax trees, the standard library's module list and the
library facts differ between versions, so the same corpus is checked under the oldest
and the newest interpreter found (pyenv's, or `python3.X` on PATH) and the findings must
be equal. Nothing is installed: `--check` without fixes needs only pure-Python
dependencies (pathspec, and tomli before 3.11), which are linked from this environment
or, for tomli, from the copy pip vendors in the interpreter under test.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "corpus" / "cases"
# blind rounds whose saves reach the weights-only and hparam modules the attribute cases never
# import (they are loaded on demand), so a newer-Python-only construct there fails here too
ROUNDS = ["blind/round15/cases", "blind/round16/cases"]
SUPPORTED = [(3, minor) for minor in range(9, 14)]

pytestmark = pytest.mark.slow


def _version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return (int(out[0]), int(out[1])) if len(out) == 2 else None


def _candidates() -> list[str]:
    found: list[str] = []
    roots = [Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))]
    pyenv = shutil.which("pyenv")
    if pyenv is not None:
        result = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        if result.returncode == 0 and result.stdout.strip():
            roots.append(Path(result.stdout.strip()))
    for root in roots:
        found += [str(p) for p in sorted(root.glob("versions/*/bin/python3"))]
    for major, minor in SUPPORTED:
        on_path = shutil.which(f"python{major}.{minor}")
        if on_path is not None:
            found.append(on_path)
    return found


def _interpreters() -> dict[tuple[int, int], str]:
    """One interpreter per supported version, the first found of each."""
    by_version: dict[tuple[int, int], str] = {}
    for python in _candidates():
        version = _version(python)
        if version in SUPPORTED and version not in by_version:
            by_version[version] = python
    return by_version


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _vendored_tomli(python: str) -> Path | None:
    result = subprocess.run(
        [python, "-c", "import pip._vendor.tomli as t, os; print(os.path.dirname(t.__file__))"],
        capture_output=True,
        text=True,
        check=False,
    )
    path = result.stdout.strip()
    return Path(path) if result.returncode == 0 and path else None


def _dependencies(python: str, version: tuple[int, int], into: Path) -> str | None:
    """A directory of the pure-Python dependencies `--check` imports; why not, if missing."""
    into.mkdir(parents=True)
    pathspec = _package_dir("pathspec")
    if pathspec is None:
        return "pathspec is not installed in the test environment"
    (into / "pathspec").symlink_to(pathspec, target_is_directory=True)
    if version < (3, 11):
        tomli = _package_dir("tomli") or _vendored_tomli(python)
        if tomli is None:
            return f"no tomli for Python {version[0]}.{version[1]} (neither here nor in its pip)"
        (into / "tomli").symlink_to(tomli, target_is_directory=True)
    return None


def _findings(python: str, deps: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "server"), str(deps)])
    env["PYTHONNOUSERSITE"] = "1"
    result = subprocess.run(
        [python, "-m", "ckpt_lsp", "--check", "--no-cache", "--exit-zero", "-j", "2", "cases"]
        + ROUNDS,
        cwd=CASES.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_oldest_and_newest_python_find_the_same(tmp_path: Path) -> None:
    found = _interpreters()
    if len(found) < 2:
        versions = ", ".join(f"{a}.{b}" for a, b in sorted(found)) or "none"
        pytest.skip(f"needs two of Python 3.9-3.13 (pyenv or python3.X on PATH); found {versions}")
    oldest, newest = min(found), max(found)
    outputs = {}
    for version in (oldest, newest):
        deps = tmp_path / f"deps{version[0]}{version[1]}"
        missing = _dependencies(found[version], version, deps)
        if missing is not None:
            pytest.skip(missing)
        outputs[version] = _findings(found[version], deps)
    assert "CKPT" in outputs[oldest], outputs[oldest][-2000:]
    assert outputs[oldest] == outputs[newest], f"{oldest} and {newest} disagree"
