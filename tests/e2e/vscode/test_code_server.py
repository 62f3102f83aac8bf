"""The packaged ckpt-lsp extension in a real VS Code extension host (code-server + Chromium).

A driver extension (driver/) runs in the same extension host and does what a user would:
open the model, wait for our diagnostics, apply the preferred quick fix, save, and wait for
the diagnostics to clear. It writes what it saw to $CKPT_E2E_REPORT, which this test reads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
DRIVER_DIR = HERE / "driver"
REPORT_DEADLINE_S = 120
# The driver's own wait for each step; shorter than ours so it reports what timed out.
DRIVER_WAIT_MS = 60_000
CODE_SERVER_START_S = 60
# Sources whose change means a packaged extension is stale and must be rebuilt.
# The same list as in scripts/setup-e2e.sh, which builds it ahead of the tests.
EXTENSION_SOURCES = (
    "client/src",
    "server/ckpt_lsp",
    "docs/rules",
    "bundled/tool",
    "package.json",
    ".vscodeignore",
    "scripts/build-vsix.sh",
    "scripts/build-vsix-libs.py",
)
# Only the linux-x64 build runs here (VSIX_DIR may hold other platforms elsewhere).
OUR_VSIX = "ckpt-lsp-linux-x64-*.vsix"


def newest_mtime(root: Path, relative: tuple[str, ...]) -> float:
    newest = 0.0
    for name in relative:
        path = root / name
        if not path.exists():
            continue
        files = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
        for file in files:
            if "__pycache__" not in file.parts:
                newest = max(newest, file.stat().st_mtime)
    return newest


def run(argv: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a build step; on failure, fail the test with its output instead of a traceback."""
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"`{' '.join(argv)}` exited {proc.returncode}:\n{proc.stdout[-4000:]}")
    return proc.stdout


def our_vsix(root: Path) -> Path:
    """The ckpt-lsp .vsix at the repo root, rebuilt with `npm run package` when stale.

    CKPT_E2E_VSIX names another one to test instead (used as given, never rebuilt).
    """
    given = os.environ.get("CKPT_E2E_VSIX")
    if given:
        return Path(given).resolve()
    found = sorted(root.glob(OUR_VSIX), key=lambda p: p.stat().st_mtime)
    fresh = found and found[-1].stat().st_mtime >= newest_mtime(root, EXTENSION_SOURCES)
    if fresh and zipfile.is_zipfile(found[-1]):
        return found[-1]
    if not (root / "node_modules").is_dir():
        pytest.fail("node_modules is missing: run `npm ci` at the repo root first")
    npm = shutil.which("npm")
    assert npm is not None, "npm is not on PATH"
    started = time.monotonic()
    run([npm, "run", "package"], root, timeout=600)
    print(f"\nnpm run package: {time.monotonic() - started:.1f} s")
    found = sorted(root.glob(OUR_VSIX), key=lambda p: p.stat().st_mtime)
    assert found, f"`npm run package` made no {OUR_VSIX} at the repo root"
    return found[-1]


def driver_vsix(root: Path, out_dir: Path) -> Path:
    """Package the driver with vsce (the repo's, else a vsce 3 fetched by npx)."""
    work = out_dir / "driver-src"
    shutil.copytree(DRIVER_DIR, work)
    target = out_dir / "ckpt-lsp-e2e-driver.vsix"
    vsce = root / "node_modules" / ".bin" / "vsce"
    base = [str(vsce)] if vsce.exists() else ["npx", "--yes", "@vscode/vsce@3"]
    flags = ["--no-dependencies", "--allow-missing-repository", "--skip-license"]
    flags += ["--allow-star-activation", "-o", str(target)]
    run([*base, "package", *flags], work, timeout=180)
    return target


def bare_interpreter() -> str:
    """The Python the extension runs its bundled server with.

    The venv's base interpreter: the same version as the venv (so the bundle's compiled
    wheels fit) but without the venv's packages, so a server that starts proves the bundle
    carries everything it needs, as on a user's machine. CKPT_E2E_INTERPRETER overrides it.
    """
    given = os.environ.get("CKPT_E2E_INTERPRETER")
    if given:
        return given
    base = getattr(sys, "_base_executable", "") or sys.executable
    return base if Path(base).exists() else sys.executable


def write_settings(user_data: Path, interpreter: str, extra: dict[str, Any] | None = None) -> None:
    settings: dict[str, Any] = {
        "security.workspace.trust.enabled": False,
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
        "extensions.autoUpdate": False,
        "extensions.autoCheckUpdates": False,
        "extensions.ignoreRecommendations": True,
        "workbench.enableExperiments": False,
        "workbench.startupEditor": "none",
        "files.autoSave": "off",
        "ckpt-lsp.interpreter": [interpreter],
        "ckpt-lsp.importStrategy": "useBundled",
        # the LSP messages go to the extension's log, which a failure message shows
        "ckpt-lsp.trace.server": os.environ.get("CKPT_E2E_TRACE", "off"),
    }
    settings.update(extra or {})
    (user_data / "User").mkdir(parents=True, exist_ok=True)
    (user_data / "User" / "settings.json").write_text(json.dumps(settings, indent=2))


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def extension_host_logs(user_data: Path, limit: int = 6000) -> str:
    """The extension host's and our output channel's logs, for failure messages."""
    chunks = []
    for log in sorted((user_data / "logs").rglob("*.log")):
        name = log.name.lower()
        if "exthost" in name or "ckpt" in name or "remoteagent" in name:
            text = log.read_text(encoding="utf-8", errors="replace")
            chunks.append(f"--- {log.relative_to(user_data)}\n{text[-2000:]}")
    return "\n".join(chunks)[-limit:] or "<no extension host logs>"


def drive_code_server(
    e2e: Any,
    folder: Path,
    tmp_path: Path,
    driver_env: dict[str, str],
    settings: dict[str, Any] | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """Install our .vsix and the driver in code-server, open `folder` in headless Chromium,
    and return the driver's report (driven by `driver_env`) with logs for failure messages."""
    root: Path = e2e.root
    code_server = root / ".e2e" / "code-server" / "bin" / "code-server"
    if not code_server.exists():
        e2e.missing_tool(f"code-server ({code_server.relative_to(root)})")
    chromium = shutil.which("chromium")
    if chromium is None:
        e2e.missing_tool("chromium")

    ours = our_vsix(root)
    driver = driver_vsix(root, tmp_path)
    extensions = tmp_path / "extensions"
    user_data = tmp_path / "user-data"
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ)
    env.update(
        # code-server's own config and state go to the temp folder, not ~/.config.
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CACHE_HOME=str(home / "cache"),
    )
    common = [
        str(code_server),
        "--config",
        str(tmp_path / "code-server.yaml"),
        "--extensions-dir",
        str(extensions),
        "--user-data-dir",
        str(user_data),
    ]
    started = time.monotonic()
    run(
        [*common, "--install-extension", str(ours), "--install-extension", str(driver)],
        root,
        180,
        env,
    )
    installed = run([*common, "--list-extensions", "--show-versions"], root, 60, env)
    assert "ckpt-lsp.ckpt-lsp@" in installed, installed
    assert "ckpt-lsp-tests.ckpt-lsp-e2e-driver@" in installed, installed
    print(f"\ninstall extensions: {time.monotonic() - started:.1f} s")

    write_settings(user_data, bare_interpreter(), settings)
    report_path = tmp_path / "vscode-report.json"
    env.update(driver_env, CKPT_E2E_REPORT=str(report_path))
    env.setdefault("CKPT_E2E_TIMEOUT_MS", str(DRIVER_WAIT_MS))
    port = e2e.free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = tmp_path / "code-server.log"
    browser_log = tmp_path / "chromium.log"
    argv = [
        *common,
        "--auth",
        "none",
        "--bind-addr",
        f"127.0.0.1:{port}",
        "--disable-telemetry",
        "--disable-update-check",
        "--disable-workspace-trust",
        str(folder),
    ]
    procs: list[subprocess.Popen[bytes]] = []
    report: dict[str, Any] | None = None
    started = time.monotonic()
    with server_log.open("wb") as slog, browser_log.open("wb") as blog:
        try:
            procs.append(
                subprocess.Popen(
                    argv,
                    cwd=folder,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=slog,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            up = e2e.wait_for(lambda: healthy(url), time.monotonic() + CODE_SERVER_START_S)
            assert up, f"code-server did not answer on {url}:\n{e2e.tail(server_log)}"
            # The extension host starts only once a browser opens the workbench.
            browser = [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'chromium-profile'}",
                f"{url}/?folder={folder}",
            ]
            procs.append(
                subprocess.Popen(
                    browser,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=blog,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

            def report_done() -> bool:
                nonlocal report
                report = read_report(report_path)
                return bool(report and report.get("done"))

            e2e.wait_for(report_done, time.monotonic() + REPORT_DEADLINE_S, interval=0.5)
        finally:
            for proc in reversed(procs):
                e2e.kill_group(proc)
    print(f"code-server + chromium run: {time.monotonic() - started:.1f} s")

    context = (
        f"report: {json.dumps(report, indent=2)}\n"
        f"code-server log:\n{e2e.tail(server_log, 2000)}\n"
        f"extension host logs:\n{extension_host_logs(user_data)}"
    )
    return report, context


@pytest.mark.e2e
# A stale .vsix is rebuilt first (about 60 s), then up to 120 s for the driver's report.
@pytest.mark.timeout(600)
@pytest.mark.usefixtures("timed")
def test_code_server_diagnoses_fixes_and_clears(e2e: Any, workspace: Any, tmp_path: Path) -> None:
    driver_env = {"CKPT_E2E_MODEL": str(workspace.model), "CKPT_E2E_CODE": "CKPT005"}
    report, context = drive_code_server(e2e, workspace.folder, tmp_path, driver_env)
    assert report is not None, f"the driver wrote no report\n{context}"
    assert report.get("done"), f"the driver did not finish in {REPORT_DEADLINE_S} s\n{context}"
    assert report["errors"] == [], context
    assert report["our_extension_found"] and report["our_extension_active"], context

    lines = [e2e.lock_line - 1]
    found = [
        d
        for d in report["diagnostics"]
        if d["source"] == "ckpt-lsp"
        and d["code"] == "CKPT005"
        and d["range"]["start"]["line"] in lines
    ]
    assert found, f"no CKPT005 from ckpt-lsp on line {e2e.lock_line}\n{context}"
    assert "lock" in found[0]["message"]

    assert report["chosen"]["kind"].startswith("quickfix"), context
    assert report["applied"] is True and report["saved"] is True, context
    text = workspace.model_text()
    e2e.assert_fixed_source(text)
    assert report["final_text"] == text

    assert report["cleared"] is True, context
    assert [d for d in report["diagnostics_after"] if d["source"] == "ckpt-lsp"] == []


NOTEBOOK_CELLS = [
    ("code", "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass"),
    ("markdown", "The model keeps its log open."),
    (
        "code",
        "%matplotlib inline\nclass Model(Base):\n    def __init__(self, path):\n"
        '        super().__init__()\n        self.log = open(path, "a")',
    ),
]


def write_notebook(path: Path) -> None:
    """An nbformat 4 notebook as Jupyter writes it (sources as lists of lines)."""
    cells = []
    for kind, text in NOTEBOOK_CELLS:
        cell: dict[str, Any] = {"cell_type": kind, "metadata": {}, "source": text.splitlines(True)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook, indent=1) + "\n", encoding="utf-8")


@pytest.mark.e2e
@pytest.mark.timeout(600)
@pytest.mark.usefixtures("timed")
def test_code_server_notebook_cell_diagnostic_and_quick_fix(e2e: Any, tmp_path: Path) -> None:
    """A real .ipynb in VS Code's notebook editor: the model in cell 3 derives from the base
    in cell 1, so its open file is a finding on cell 3; the quick fix edits cell 3 only.
    Then the cell is put back and an explicit save runs notebook.codeActionsOnSave."""
    folder = tmp_path / "workspace"
    folder.mkdir()
    notebook = folder / "train.ipynb"
    write_notebook(notebook)
    driver_env = {"CKPT_E2E_NOTEBOOK": str(notebook), "CKPT_E2E_CODE": "CKPT001"}
    driver_env.update(CKPT_E2E_CELL="2", CKPT_E2E_FIX_ON_SAVE="1")
    on_save = {"notebook.codeActionsOnSave": {"notebook.source.fixAll.ckpt-lsp": "explicit"}}
    report, context = drive_code_server(e2e, folder, tmp_path, driver_env, on_save)
    assert report is not None, f"the driver wrote no report\n{context}"
    assert report.get("done"), f"the driver did not finish in {REPORT_DEADLINE_S} s\n{context}"
    assert report["errors"] == [], context
    assert report["notebook_type"] == "jupyter-notebook", context
    assert report["our_extension_found"] and report["our_extension_active"], context
    target = report["target"]
    assert target["code"] == "CKPT001" and target["range"]["start"]["line"] == 4, context
    assert all(diagnostics == [] for diagnostics in report["other_cells"]), context
    assert report["applied"] is True, context
    assert report["changed_cells"] == [False, False, True], context
    assert report["saved"] is True and report["cleared"] is True, context
    cell = report["final_text"]
    assert cell.startswith("%matplotlib inline\n") and "def __getstate__" in cell, context
    # notebook.codeActionsOnSave with the notebook-wide fix-all fixed the reverted cell
    assert report["fixed_on_save"] is True, context
    assert report["on_save_text"].startswith("%matplotlib inline\n"), context
    saved = json.loads(notebook.read_text(encoding="utf-8"))
    assert "def __getstate__" in "".join(saved["cells"][2]["source"])
    assert "".join(saved["cells"][0]["source"]) == NOTEBOOK_CELLS[0][1]
