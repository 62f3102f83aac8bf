"""CKPT010 through what the call that built a project object gives its `__init__`
(analysis/constructor_args.py): `self.grid = grid` of a `grid=GridSpec()` default, a local
config the helper passes, a numpy keyword, a frame a method reads. An argument that loads
(a float, `.item()`, a str) is what the attribute holds even when the default is refused, and
an attribute set again before the save holds the new value. VALID and INVALID."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_rows

HEADER = """\
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch


@dataclass(frozen=True)
class Grid:
    nx: int = 32


class Runner:
    def __init__(self, grid=Grid(), scale=np.float64(1.0), out=Path("runs"), cfg=None):
        self.grid = grid
        self.scale = scale
        self.out = out
        self.cfg = cfg or Grid()

    def fit(self):
        self.loss = 1.0
        return self


COLUMNS = ["click", "price"]


class Rates:
    def __init__(self, df, lr=0.1):
        self.df = df
        self.lr = lr

    def fit(self):
        self.rate = self.df["click"].mean()




class Child(Runner):
    def __init__(self, grid, extra=2.0):
        super().__init__(grid)
        self.extra = extra

    def fit(self, x):
        self.total = self.extra * np.mean(x)


class Plain(Runner):
    pass


class Replacing(Runner):
    def __init__(self, grid):
        super().__init__(grid, scale=1.0)
        self.grid = str(grid)


"""


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


INVALID = [
    (
        "a helper's own `cfg=None` passed on, left out by its caller: the default config",
        "def trained(cfg=None):\n    return Runner(cfg=cfg), 1\n"
        'def save(p):\n    runner, _ = trained()\n    torch.save({"cfg": runner.cfg}, p)\n',
        [(5, "cfg")],
    ),
    (
        "a dataclass default, the object built in a helper",
        "def _trained():\n"
        "    r = Runner()\n"
        "    r.fit()\n"
        "    return r\n"
        "def save(p):\n"
        "    r = _trained()\n"
        '    torch.save({"grid": r.grid, "out": r.out}, p)\n',
        [(7, "grid"), (7, "out")],
    ),
    (
        "a local the helper passes",
        "def _trained():\n"
        "    g = Grid(nx=8)\n"
        "    r = Runner(g, 2.0)\n"
        "    return r, g\n"
        "def save(p):\n"
        "    r, g = _trained()\n"
        '    torch.save({"grid": r.grid}, p)\n',
        [(7, "grid")],
    ),
    (
        "a `None` default left for `cfg or Grid()`, and a numpy keyword",
        "def save(p, x):\n"
        "    r = Runner(scale=np.mean(x))\n"
        '    torch.save({"cfg": r.cfg, "scale": r.scale}, p)\n',
        [(3, "cfg"), (3, "scale")],
    ),
    (
        "built and fitted in one chain",
        "def save(p):\n    r = Runner(out=Path('x')).fit()\n    torch.save({\"out\": r.out}, p)\n",
        [(3, "out")],
    ),
    (
        "a method reads the frame the constructor received",
        "def _run(seed=0):\n"
        '    df = pd.DataFrame({"click": [0, 1], "price": [1.5, 2.5]})\n'
        "    r = Rates(df)\n"
        "    r.fit()\n"
        "    return r\n"
        "def save(p):\n"
        "    r = _run()\n"
        '    torch.save({"rate": r.rate, "top": r.df["price"].max()}, p)\n',
        [(8, "rate"), (8, "top")],
    ),
    (
        "a frame's columns named by a module-level list, a number column's most frequent value",
        "def save(p):\n"
        '    df = pd.DataFrame({"click": [0, 1], "site": ["a", "b"]})\n'
        "    r = Rates(df)\n"
        '    torch.save({"n": r.df[COLUMNS].nunique(), "top": r.df["click"].value_counts().idxmax()}, p)\n',
        [(4, "n"), (4, "top")],
    ),
    (
        "a subclass passes its parameter to `super().__init__`, or inherits `__init__`; a "
        "number parameter times a numpy value",
        "def save(p, x):\n"
        "    c = Child(Grid(nx=4))\n"
        "    c.fit(x)\n"
        "    q = Plain(Grid())\n"
        '    torch.save({"g": c.grid, "s": c.scale, "t": c.total, "q": q.grid}, p)\n',
        [(5, "g"), (5, "s"), (5, "t"), (5, "q")],
    ),
]

VALID = [
    (
        "a helper's own `cfg=None` passed on, given a plain value by its caller",
        "def trained(cfg=None):\n    return Runner(cfg=cfg), 1\n"
        'def save(p):\n    runner, _ = trained({"nx": 8})\n    torch.save({"cfg": runner.cfg}, p)\n',
    ),
    (
        "a float passed where the default is numpy",
        "def save(p, x):\n"
        "    r = Runner(scale=float(np.mean(x)))\n"
        '    torch.save({"scale": r.scale}, p)\n',
    ),
    (
        "`.item()` and a str passed",
        "def save(p, x):\n"
        '    r = Runner(Grid(), torch.ones(1).sum().item(), "runs", cfg={"nx": 3})\n'
        '    torch.save({"scale": r.scale, "out": r.out, "cfg": r.cfg}, p)\n',
    ),
    (
        "set again to a loadable value before the save",
        "def save(p):\n"
        "    r = Runner()\n"
        "    r.out = str(r.out)\n"
        "    r.scale = 1.0\n"
        '    torch.save({"scale": r.scale, "out": r.out}, p)\n',
    ),
    (
        "one construction of two passes a loadable value",
        "def save(p, fast):\n"
        "    if fast:\n"
        "        r = Runner(scale=np.float64(2.0))\n"
        "    else:\n"
        "        r = Runner(scale=2.0)\n"
        '    torch.save({"scale": r.scale}, p)\n',
    ),
    (
        "a learning rate passed as a float",
        'def save(p):\n    r = Rates(None, lr=0.5)\n    torch.save({"lr": r.lr}, p)\n',
    ),
    (
        "a str column's most frequent value, one column's count (a local shadows the list)",
        "def save(p):\n"
        '    df = pd.DataFrame({"click": [0, 1], "site": ["a", "b"]})\n'
        "    r = Rates(df)\n"
        '    COLUMNS = "click"\n'
        '    torch.save({"top": r.df["site"].value_counts().idxmax(), "n": r.df["click"].nunique(),'
        ' "i": r.df["click"].idxmax(), "m": r.df[COLUMNS].nunique()}, p)\n',
    ),
    (
        "a subclass passes a float to `super().__init__` and stores a str over the default",
        "def save(p):\n"
        "    c = Replacing(Grid())\n"
        '    torch.save({"g": c.grid, "s": c.scale, "e": Child(Grid(), 2.0).extra}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert _rows(source) == [], name
