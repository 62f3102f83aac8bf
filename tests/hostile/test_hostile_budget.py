"""The per-file time budget: a slow file is skipped with one line, fast, and the run, the
index and the server go on with the others."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ckpt_lsp.analysis.analyzer import Analyzer
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.budget import BUDGET_ENV, DEFAULT_FILE_BUDGET_S, file_budget_s
from ckpt_lsp.config import Config
from hostile_inputs import MODEL
from hostile_rpc import RawServer
from test_hostile_files import run_cli


def slow_module(classes: int = 2500) -> str:
    """A module that takes well over a second to analyze (thousands of model classes)."""
    body = "".join(
        f"class M{i}(nn.Module):\n    def __init__(self):\n        self.l{i} = threading.Lock()\n\n\n"
        for i in range(classes)
    )
    return MODEL + "\n\n" + body


def test_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    assert file_budget_s() == DEFAULT_FILE_BUDGET_S
    monkeypatch.setenv(BUDGET_ENV, "2.5")
    assert file_budget_s() == 2.5
    monkeypatch.setenv(BUDGET_ENV, "soon")
    assert file_budget_s() == DEFAULT_FILE_BUDGET_S
    monkeypatch.setenv(BUDGET_ENV, "-1")
    assert file_budget_s() == 0.0


def test_a_slow_file_is_skipped_and_the_index_stays_usable(tmp_path: Path) -> None:
    index = ProjectIndex(tmp_path)
    analyzer = Analyzer(Config(root=tmp_path), index)
    slow, good = str(tmp_path / "slow.py"), str(tmp_path / "good.py")
    index.add_source(good, MODEL)
    started = time.monotonic()
    result = analyzer.analyze(slow, slow_module(), budget_s=0.3)
    assert time.monotonic() - started < 2.0
    assert result.error is not None and result.findings == []
    assert result.error.message.startswith("skipped: too slow")
    assert "\n" not in result.error.message
    again = analyzer.analyze(good, MODEL, budget_s=5)
    assert [f.attribute for f in again.findings] == ["lock"]
    assert all(facts is not None for facts in index.all_facts())
    # and the slow file, given the time, is analyzed in full
    assert len(analyzer.analyze(slow, slow_module(200)).findings) == 201


def test_the_cli_applies_the_budget(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(slow_module(6000))
    (tmp_path / "good.py").write_text(MODEL)
    started = time.monotonic()
    proc = run_cli("--check", "--no-cache", ".", cwd=tmp_path, env={BUDGET_ENV: "0.05"})
    assert time.monotonic() - started < 15
    assert proc.returncode == 2
    assert "slow.py: skipped: too slow" in proc.stderr
    assert "good.py:8:9: CKPT005" in proc.stdout


def test_the_server_applies_the_budget(tmp_path: Path) -> None:
    server = RawServer(tmp_path, env={BUDGET_ENV: "0.05"})
    try:
        server.initialize(tmp_path)
        slow_uri = server.open(tmp_path / "slow.py", slow_module(6000))
        uri = server.open(tmp_path / "model.py", MODEL)
        started = time.monotonic()
        assert server.published(slow_uri, version=1, timeout=30)["diagnostics"] == []
        assert len(server.published(uri, version=1)["diagnostics"]) == 1
        assert time.monotonic() - started < 15
        server.wait_for(
            lambda m: (
                m.get("method") == "window/logMessage" and "too slow" in m["params"]["message"]
            ),
            what="a log line",
        )
        assert server.shutdown_and_exit() == 0
    finally:
        server.close()
