"""Bases from installed packages, read (never imported) from their source, within a budget."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text
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
    """astroid's builder infers every `self.x = ...` of a module it builds, loading the
    modules the values come from (torchmetrics -> torch: 5 s over the benchmark corpus);
    we read only names and bases, so the module named only in an attribute's value stays
    unread."""
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
    assert "attrlib_x.layers" in external._modules
    assert "attrlib_x.heavy" not in external._modules


def test_bindings_are_read_the_way_python_binds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read with `ast` instead of astroid's builder (the same answers on 2,489 class
    queries over 11 installed packages, 5.9x faster): an import binds before the
    fallback class in its `except ImportError`; a module's own top-level class wins over
    a later `from .m import Y` of itself; a class past a block the splitter joined over a
    misread quote is found; and `from .x import *` re-exports, which astroid's builder
    (without transforms) did not follow."""
    pkg = tmp_path / "site" / "bindlib_x"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .layers import *\n")
    (pkg / "layers.py").write_text(
        textwrap.dedent(
            '''\
            try:
                from torch.nn import Module as Base
            except ImportError:
                class Base:
                    pass


            class Viaimport(Base):
                pass


            class Own(Base):
                pass


            if __name__ == "__main__":
                from bindlib_x.layers import Own


            class Quoting(Base):
                def f(self):
                    """Quotes: ``\'\'\'``."""


            class Hidden(Base):
                pass


            class Closing(Base):
                def f(self):
                    """Again ``\'\'\'``."""
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    external = ExternalBases()

    def known(q: str) -> bool | None:
        return q == "torch.nn.Module" or None

    assert external.model_base("bindlib_x.Viaimport", known) == "torch.nn.Module"
    assert external.model_base("bindlib_x.layers.Own", known) == "torch.nn.Module"
    assert external.model_base("bindlib_x.Hidden", known) == "torch.nn.Module"
