"""What the linux-x64 .vsix carries: everything the extension runs, and nothing else.

The newest ckpt-lsp-linux-x64-*.vsix at the repo root (or CKPT_E2E_VSIX) is read as the zip it
is. When it is older than the sources it is built from, `npm run package` rebuilds it first.
With no .vsix and no way to build one the test skips locally and fails under CI.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PATTERN = "ckpt-lsp-linux-x64-*.vsix"
# What the .vsix is made from: a newer file here means the one on disk is stale.
SOURCES = (
    "client/src",
    "server/ckpt_lsp",
    "docs/rules",
    "bundled/tool",
    "package.json",
    ".vscodeignore",
    "LICENSE",
    "scripts/build-vsix.sh",
    "scripts/build-vsix-libs.py",
)
PYTHONS = ("39", "310", "311", "312", "313")
RULE_CODES = tuple(f"CKPT{n:03d}" for n in range(1, 10))
LIBS = "extension/bundled/libs/"
COMMON = LIBS + "common/"
# Outside bundled/libs only these files may be shipped (vsce adds the first two).
TOP_LEVEL = {
    "extension.vsixmanifest",
    "[Content_Types].xml",
    "extension/package.json",
    "extension/readme.md",
    "extension/changelog.md",
    "extension/LICENSE.txt",
    "extension/dist/extension.js",
    "extension/bundled/tool/server.py",
}
# A path segment that must never appear (directories of the work tree, caches, tests).
FORBIDDEN_DIRS = {
    "node_modules",
    "__pycache__",
    "tests",
    "test",
    ".venv",
    ".e2e",
    ".git",
    "benchmarks",
    "src",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    ".ckpt_cache",
}
FORBIDDEN_FILES = ("*.pyc", "*.pyo", "*.map", "*.ts", "*.tsbuildinfo", "*.vsix", "RECORD")
# The extension today: about 11 MiB. Far above means something was swept in by mistake.
MAX_BYTES = 16 * 1024 * 1024


def required() -> list[str]:
    names = [
        "extension/package.json",
        "extension/LICENSE.txt",
        "extension/dist/extension.js",
        "extension/bundled/tool/server.py",
        COMMON + "ckpt_lsp/__init__.py",
        COMMON + "ckpt_lsp/data/hazards.toml",
        COMMON + "ckpt_lsp/data/scope.toml",
        COMMON + "pygls/__init__.py",
        COMMON + "lsprotocol/__init__.py",
        COMMON + "lsprotocol/types.py",
        COMMON + "astroid/__init__.py",
        COMMON + "pathspec/__init__.py",
    ]
    names += [f"{COMMON}ckpt_lsp/data/rules/{code}.md" for code in RULE_CODES]
    for tag in PYTHONS:
        names.append(f"{LIBS}cp{tag}/libcst/__init__.py")
        names.append(f"{LIBS}cp{tag}/libcst/native.cpython-{tag}-x86_64-linux-gnu.so")
    return names


def problems(names: list[str]) -> list[str]:
    """Everything wrong with a .vsix listing, one line each; empty when it is right."""
    listed = set(names)
    found = [f"missing {name}" for name in required() if name not in listed]
    for name in names:
        if name.endswith("/"):
            continue
        parts = name.split("/")
        if not name.startswith(LIBS) and name not in TOP_LEVEL:
            found.append(f"unexpected {name}")
        bad_dirs = FORBIDDEN_DIRS.intersection(parts[:-1])
        if bad_dirs:
            found.append(f"forbidden directory {sorted(bad_dirs)[0]}/ in {name}")
        if any(fnmatch.fnmatch(parts[-1], pattern) for pattern in FORBIDDEN_FILES):
            found.append(f"forbidden file {name}")
        if name.startswith(LIBS) and len(parts) > 4:
            folder = parts[3]
            if folder != "common" and folder not in {f"cp{tag}" for tag in PYTHONS}:
                found.append(f"unexpected bundle folder {folder} in {name}")
    return found


def newest_source_mtime() -> float:
    newest = 0.0
    for name in SOURCES:
        path = ROOT / name
        if not path.exists():
            continue
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            if "__pycache__" not in file.parts:
                newest = max(newest, file.stat().st_mtime)
    return newest


def newest_vsix() -> Path | None:
    found = sorted(ROOT.glob(PATTERN), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def the_vsix(e2e) -> Path:
    given = os.environ.get("CKPT_E2E_VSIX")
    if given:
        return Path(given).resolve()
    vsix = newest_vsix()
    if vsix is not None and vsix.stat().st_mtime >= newest_source_mtime():
        return vsix
    npm = shutil.which("npm")
    if npm is None or not (ROOT / "node_modules" / ".bin" / "vsce").exists():
        e2e.missing_tool(f"no fresh {PATTERN}, and npm or node_modules to build one (`npm ci`)")
    started = time.monotonic()
    proc = subprocess.run(
        [str(npm), "run", "package"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"npm run package exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    print(f"\nnpm run package: {time.monotonic() - started:.1f} s")
    vsix = newest_vsix()
    assert vsix is not None, f"npm run package made no {PATTERN}"
    return vsix


def test_the_listing_check_catches_what_does_not_belong() -> None:
    """The checker itself: a right listing passes, each kind of stray file is reported."""
    good = sorted(TOP_LEVEL - {"extension/changelog.md"}) + required()
    assert problems(good) == []
    strays = [
        "extension/client/src/extension.ts",
        "extension/node_modules/vscode-languageclient/lib/main.js",
        "extension/tests/e2e/fixtures/model.py",
        COMMON + "ckpt_lsp/__pycache__/cli.cpython-311.pyc",
        COMMON + "libcst/tests/test_x.py",
        "extension/dist/extension.js.map",
        "extension/.venv/bin/python",
        "extension/benchmarks/README.md",
        LIBS + "cp38/libcst/__init__.py",
    ]
    for stray in strays:
        assert problems([*good, stray]), stray
    page = f"{COMMON}ckpt_lsp/data/rules/CKPT005.md"
    assert problems([n for n in good if n != page]) == [f"missing {page}"]


@pytest.mark.e2e
def test_vsix_carries_the_extension_the_server_and_its_libraries_only(e2e) -> None:
    vsix = the_vsix(e2e)
    with zipfile.ZipFile(vsix) as archive:
        names = archive.namelist()
        bad = archive.testzip()
    assert bad is None, f"{vsix.name}: corrupt member {bad}"
    size = vsix.stat().st_size
    print(f"\n{vsix.name}: {size / 1024 / 1024:.2f} MiB, {len(names)} files")
    found = problems(names)
    assert not found, f"{vsix.name}:\n" + "\n".join(found[:40])
    assert size <= MAX_BYTES, f"{vsix.name} is {size} bytes, over {MAX_BYTES}"
