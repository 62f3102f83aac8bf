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


def test_instance_attributes_of_installed_modules_are_not_inferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """astroid infers every `self.x = ...` of a module it builds, loading the modules the
    values come from (torchmetrics -> torch: 5 s over the benchmark corpus); we read
    only names and bases, so the module named only in an attribute's value stays unread."""
    pkg = tmp_path / "site" / "attrlib_x"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "heavy.py").write_text("def make():\n    return 1\n")
    (pkg / "layers.py").write_text(
        textwrap.dedent(
            """\
            import torch
            from attrlib_x import heavy


            class Layer(torch.nn.Module):
                def __init__(self):
                    self.h = heavy.make()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    external = ExternalBases()
    found = external.model_base("attrlib_x.layers.Layer", lambda q: q == "torch.nn.Module" or None)
    assert found == "torch.nn.Module"
    cache = external._manager_instance()._manager.astroid_cache
    assert "attrlib_x.layers" in cache
    assert "attrlib_x.heavy" not in cache
