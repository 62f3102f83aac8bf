"""ckpt-lsp in a real Neovim (Debian's 0.7.2, headless): diagnostics, quickfix, clear."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

INIT_LUA = Path(__file__).resolve().parent / "init.lua"
DEADLINE_S = 90
WAIT_MS = 30000


@pytest.mark.e2e
@pytest.mark.usefixtures("timed")
def test_neovim_diagnoses_fixes_and_clears(e2e: Any, workspace: Any, tmp_path: Path) -> None:
    nvim = shutil.which("nvim")
    if nvim is None:
        e2e.missing_tool("nvim (Neovim)")

    report_path = tmp_path / "nvim-report.json"
    log_path = tmp_path / "nvim.log"
    env = e2e.server_env()
    env.update(
        CKPT_E2E_PYTHON=e2e.server_python(),
        CKPT_E2E_ROOT=str(workspace.folder),
        CKPT_E2E_REPORT=str(report_path),
        CKPT_E2E_CODE="CKPT005",
        CKPT_E2E_TIMEOUT_MS=str(WAIT_MS),
        # Neovim's own state (shada, swap, lsp.log) goes to the temp folder.
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    argv = [nvim, "--headless", "-n", "-i", "NONE", "--noplugin", "-u", str(INIT_LUA)]
    argv.append(workspace.model.name)

    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=workspace.folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            pass
        finally:
            e2e.kill_group(proc)
    print(f"\nneovim run: {time.monotonic() - started:.1f} s")

    assert report_path.exists(), f"Neovim wrote no report; its output:\n{e2e.tail(log_path)}"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    lsp_log = e2e.tail(Path(report["lsp_log"]))
    assert report["errors"] == [], f"{report['errors']}\nsteps: {report['steps']}\n{lsp_log}"

    first = report["publishes"][0]
    assert first["uri"].endswith("/" + workspace.model.name)
    ours = [d for d in first["diagnostics"] if d.get("source") == "ckpt-lsp"]
    locks = [d for d in ours if d.get("code") == "CKPT005"]
    assert locks, f"no CKPT005 from ckpt-lsp in {first['diagnostics']}"
    assert locks[0]["range"]["start"]["line"] + 1 == e2e.lock_line
    assert "lock" in locks[0]["message"]

    action = report["chosen_action"]
    assert action["kind"].startswith("quickfix")
    assert report["applied"] is True
    e2e.assert_fixed_source(workspace.model_text())
    assert report["final_text"].strip() == workspace.model_text().strip()

    assert report["cleared"] is True
    assert report["publishes"][-1]["diagnostics"] == []
    # The server shut down cleanly when Neovim stopped it.
    assert report.get("server_exit", {}).get("code") == 0, report.get("server_exit")
