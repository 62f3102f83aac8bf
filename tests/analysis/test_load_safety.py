"""What a value is for the default torch.load: judged from what the code says."""

from __future__ import annotations

import ast

import pytest
from ckpt_lsp.analysis.facts import module_facts
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.analysis.load_safety import (
    LoadSafety,
    refusal_of_annotation,
    refusal_of_expression,
)
from ckpt_lsp.analysis.local_flow import LocalFlow

HEADER = """\
import argparse, uuid, collections
import numpy as np
from pathlib import Path
from omegaconf import OmegaConf, DictConfig
import torch
from torch import nn
from enum import Enum
from dataclasses import dataclass
from typing import Optional, TypedDict, Union
class Mode(Enum):
    TRAIN = 1
@dataclass
class Cfg:
    lr: float = 0.1
class Plain(TypedDict):
    a: int
class Net(nn.Module):
    pass
class Run:
    pass
def get_args():
    p = argparse.ArgumentParser()
    return p.parse_args()
def build() -> nn.Module:
    return make()
"""

CASES = [
    # (expression, kind or None, fix)
    ("np.mean([1.0])", "numpy-scalar", "item"),
    ("np.mean(a, axis=0)", "numpy-scalar", ""),
    ("np.float64(1)", "numpy-scalar", "item"),
    ("np.array(['a'])", "numpy-array", ""),
    ("np.random.rand()", None, ""),
    ("np.random.get_state()", "numpy-rng-state", ""),
    ("np.zeros(3).mean()", "numpy-scalar", "item"),
    ("np.zeros(3).mean().item()", None, ""),
    ("np.zeros(3).tolist()", None, ""),
    ("t.detach().cpu().numpy()", "numpy-array", ""),
    ("get_args()", "namespace", "vars"),
    ("argparse.ArgumentParser()", None, ""),  # torch.save itself fails: not this rule
    ("OmegaConf.create({})", "omegaconf", "to_container"),
    ("OmegaConf.to_container(cfg)", None, ""),
    ("Path('a') / 'b'", "path", "str"),
    ("Path.cwd().parent", "path", "str"),
    ("str(Path('a'))", None, ""),
    ("collections.defaultdict(list)", "defaultdict", ""),
    ("collections.OrderedDict()", None, ""),
    ("collections.Counter()", None, ""),
    ("uuid.uuid4()", "uuid", "str"),
    ("torch.__version__", "torch-version", "str"),
    ("nn.Linear(2, 2)", "module", "state_dict"),
    ("nn.Parameter(x)", None, ""),
    ("Net().to('cpu')", "module", "state_dict"),
    ("Net().state_dict()", None, ""),
    ("build()", "module", "state_dict"),
    ("torch.optim.Adam(p)", "optimizer", "state_dict"),
    ("torch.optim.lr_scheduler.StepLR(o, 1)", "scheduler", "state_dict"),
    ("torch.amp.GradScaler()", "grad-scaler", "state_dict"),
    ("Mode.TRAIN", "enum-member", ""),
    ("Mode.TRAIN.value", None, ""),
    ("Cfg()", "dataclass", ""),
    ("Plain(a=1)", None, ""),
    ("Run()", "object", ""),
    ("[np.float64(1), 2]", "numpy-scalar", ""),
    ("{'a': 1}", None, ""),
    ("unknown_call()", None, ""),
    ("x", None, ""),
]


def _facts(extra: str = ""):  # type: ignore[no-untyped-def]
    return module_facts("m.py", "m", HEADER + extra)


@pytest.mark.parametrize(("source", "kind", "fix"), CASES, ids=[c[0] for c in CASES])
def test_expression(source: str, kind: str | None, fix: str) -> None:
    found = refusal_of_expression(ast.parse(source, mode="eval").body, _facts())
    assert (found.kind if found else None) == kind
    if found is not None:
        assert found.fix == fix


ANNOTATIONS = [
    ("Path", "path"),
    ("Optional[Path]", "path"),
    ("Path | None", "path"),
    ("Union[str, Path]", None),
    ("np.ndarray", "numpy-array"),
    ("DictConfig", "omegaconf"),
    ("nn.Module", "module"),
    ("Net", "module"),
    ("argparse.Namespace", "namespace"),
    ("'Path'", "path"),
    ("int", None),
    ("dict", None),
    ("list[Path]", None),
]


@pytest.mark.parametrize(("source", "kind"), ANNOTATIONS, ids=[a[0] for a in ANNOTATIONS])
def test_annotation(source: str, kind: str | None) -> None:
    found = refusal_of_annotation(ast.parse(source, mode="eval").body, _facts())
    assert (found.kind if found else None) == kind


def _judge_last(body: str) -> tuple[str | None, str]:
    facts = _facts(body)
    func = facts.functions["f"]
    flow = LocalFlow(LoadSafety(facts)).run(func)
    last = func.body[-1]
    assert isinstance(last, ast.Return) and last.value is not None
    found = flow.judge(last.value, last)
    return (found.kind if found else None), (found.fix if found else "")


FLOWS = [
    ("def f():\n    x = np.mean(a)\n    return x\n", ("numpy-scalar", "item")),
    ("def f():\n    x = np.mean(a)\n    x = float(x)\n    return x\n", (None, "")),
    (
        "def f():\n    best = 0.0\n    for a in b:\n        acc = np.mean(a)\n"
        "        if acc > best:\n            best = acc\n    return best\n",
        ("numpy-scalar", ""),
    ),
    (
        "def f():\n    if c:\n        x = np.mean(a)\n    else:\n        x = g()\n    return x\n",
        (None, ""),
    ),
    ("def f(out: Path):\n    return out\n", ("path", "str")),
    ("def f(out):\n    return out\n", (None, "")),
    (
        "def f():\n    p = argparse.ArgumentParser()\n    args = p.parse_args()\n    return args\n",
        ("namespace", "vars"),
    ),
    ("def f():\n    for x in np.zeros(3):\n        pass\n    return x\n", (None, "")),
]


@pytest.mark.parametrize(("body", "expected"), FLOWS)
def test_flow(body: str, expected: tuple[str | None, str]) -> None:
    assert _judge_last(body) == expected


def test_project_classes_through_the_index(tmp_path) -> None:  # type: ignore[no-untyped-def]
    index = ProjectIndex(tmp_path)
    index.add_source(
        tmp_path / "models.py",
        "from enum import Enum\nfrom torch import nn\n"
        "class Kind(Enum):\n    A = 1\nclass Net(nn.Module):\n    pass\n"
        "from pathlib import Path\ndef cfg_path():\n    return Path('x')\n",
    )
    facts = index.add_source(tmp_path / "train.py", "from models import Kind, Net, cfg_path\n")
    judge = LoadSafety(facts, index)
    kinds = [
        (found.kind if found else None)
        for found in (
            judge.of_expression(ast.parse(src, mode="eval").body)
            for src in ("Kind.A", "Net()", "cfg_path()", "Kind.B")
        )
    ]
    assert kinds == ["enum-member", "module", "path", None]
