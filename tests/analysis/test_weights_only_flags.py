"""CKPT010 of what `__init__` stores under a test of a flag parameter (`self.ema =
AveragedModel(m) if use_ema else None`, `if use_ema: ...`): the call that built the object
(or the default it left) decides which arm ran, when it gives the flag as `True` or `False`.
VALID and INVALID."""

from __future__ import annotations

import pytest
from ckpt_lsp.findings import Finding
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


class Trainer:
    def __init__(self, out_dir="runs", use_ema=True, keep_probs=False):
        self.model = nn.Linear(2, 2)
        self.ema = AveragedModel(self.model) if use_ema else None
        self.probs = np.zeros(3) if keep_probs else None
        if use_ema:
            self.shadow = AveragedModel(self.model)
        else:
            self.shadow = None
"""


KEPT = (
    "class Kept:\n    def __init__(self, use_ema=True, amp=False):\n"
    "        self.use_ema = use_ema\n        self.model = nn.Linear(2, 2)\n"
    "        self.ema = AveragedModel(self.model) if self.use_ema else None\n"
    "        if not amp:\n            self.probs = np.zeros(3)\n"
    "        else:\n            self.probs = None\n"
)


def _wo(source: str) -> list[Finding]:
    return weights_only_findings(HEADER, source)


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


INVALID = [
    (
        "the arm a flag left at its default True takes",
        "def save(path):\n    t = Trainer(out_dir=path)\n"
        '    torch.save({"ema": t.ema, "shadow": t.shadow, "probs": t.probs}, path)\n',
        [(3, "ema"), (3, "shadow")],
    ),
    (
        "the arm a flag passed as True takes",
        "def save(path):\n    t = Trainer(keep_probs=True)\n"
        '    torch.save({"probs": t.probs}, path)\n',
        [(3, "probs")],
    ),
    (
        "a flag kept in an attribute first, and a negated test",
        KEPT + "def save(path):\n    k = Kept()\n"
        '    torch.save({"ema": k.ema, "probs": k.probs}, path)\n',
        [(12, "ema"), (12, "probs")],
    ),
]

VALID = [
    (
        "a flag passed as False",
        "def save(path):\n    t = Trainer(path, False)\n"
        '    torch.save({"ema": t.ema, "shadow": t.shadow}, path)\n',
    ),
    (
        "a flag the caller's own parameter gives",
        "def save(path, ema):\n    t = Trainer(use_ema=ema, keep_probs=ema)\n"
        '    torch.save({"ema": t.ema, "shadow": t.shadow, "probs": t.probs}, path)\n',
    ),
    (
        "flags kept in an attribute, passed so that no refused value is stored",
        KEPT + "def save(path):\n    k = Kept(use_ema=False, amp=True)\n"
        '    torch.save({"ema": k.ema, "probs": k.probs}, path)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name
