"""Bases from installed packages, read (never imported) with astroid, within a budget."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest
from ckpt_lsp.analysis.engine import analyze_text
from ckpt_lsp.analysis.external import ExternalBases

MODEL = """\
import threading
from graphlib_x.nn import MessagePassing


class Conv(MessagePassing):
    def __init__(self):
        self.lock = threading.Lock()
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake installed package whose import would leave a marker file behind."""
    marker = tmp_path / "IMPORTED"
    pkg = tmp_path / "site" / "graphlib_x"
    (pkg / "nn").mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (pkg / "nn" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nfrom .conv import MessagePassing\n"
    )
    (pkg / "nn" / "conv.py").write_text(
        textwrap.dedent(
            f"""\
            open({str(marker)!r}, 'w').close()
            import torch


            class Base(torch.nn.Module):
                pass


            class MessagePassing(Base):
                pass


            class Plain:
                pass
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return marker


def test_installed_base_deriving_from_nn_module_is_in_scope(installed: Path) -> None:
    found = analyze_text(MODEL)
    assert [(f.code, f.attribute) for f in found] == [("CKPT005", "lock")]
    assert found[0].bases == ("torch.nn.Module",)
    assert not installed.exists(), "the analyzed package was imported"
    assert "graphlib_x" not in sys.modules


def test_installed_plain_base_is_not_in_scope(installed: Path) -> None:
    assert (
        analyze_text(
            MODEL.replace("MessagePassing", "Plain").replace(".nn import", ".nn.conv import")
        )
        == []
    )


def test_known_packages_are_never_parsed() -> None:
    external = ExternalBases()
    started = time.perf_counter()
    assert external.model_base("torch.autograd.Function", lambda q: None) is None
    assert external.model_base("collections.OrderedDict", lambda q: None) is None
    assert time.perf_counter() - started < 0.05


def test_budget_is_respected(installed: Path) -> None:
    external = ExternalBases(total_s=0.0)
    assert external.model_base("graphlib_x.nn.MessagePassing", lambda q: None) is None
