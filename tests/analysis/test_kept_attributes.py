"""CKPT010 of an attribute `__init__` sets from a refused argument and methods store again
from itself (`self.dt = self.dt * factor`): refused whatever methods ran
(analysis/kept_attributes.py). A method that stores a loadable value, a literal, or hands
`self` to a helper makes it unknown. VALID and INVALID."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_rows

HEADER = """\
import numpy as np
import torch


class Ctrl:
    def __init__(self, dt0=1e-3):
        self.dt = dt0
        self.history = []

    def propose(self, err):
        factor = np.clip(0.9 / err, 0.2, 5.0)
        self.history.append(self.dt)
        self.dt = self.dt * factor


class Resetting(Ctrl):
    def reset(self):
        self.dt = 1e-3


class Converting(Ctrl):
    def propose(self, err):
        self.dt = float(self.dt * 0.5)


def tune(c):
    c.dt = 0.1


class Handing(Ctrl):
    def retune(self):
        tune(self)


"""


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


INVALID = [
    (
        "a numpy step built and never stepped",
        "def save(p, dx):\n"
        "    c = Ctrl(dt0=0.2 * np.float64(dx) ** 2)\n"
        '    torch.save({"dt": c.dt}, p)\n',
        [(3, "dt")],
    ),
    (
        "stepped: the product stays numpy, the history holds it",
        "def save(p, x):\n"
        "    c = Ctrl(np.mean(x))\n"
        "    c.propose(0.5)\n"
        '    torch.save({"dt": c.dt, "h": c.history, "m": min(c.history)}, p)\n',
        [(4, "dt"), (4, "h"), (4, "m")],
    ),
    (
        "a helper trains an object whose method keeps a stepped controller from another helper "
        "that measured the grid with a method",
        "class Grid:\n"
        "    def coords(self):\n"
        "        return np.linspace(0.0, 1.0, 8)\n"
        "def solve(grid, nu=0.01):\n"
        "    x = grid.coords()\n"
        "    dx = x[1] - x[0]\n"
        "    ctrl = Ctrl(dt0=0.2 * dx ** 2 / nu)\n"
        "    while ctrl.dt < 1.0:\n"
        "        ctrl.propose(0.5)\n"
        "    return np.ones(3), dx, ctrl\n"
        "class Owner:\n"
        "    def __init__(self, grid=Grid()):\n"
        "        self.grid = grid\n"
        "    def prepare(self):\n"
        "        u, self.dx, self.ctrl = solve(self.grid)\n"
        "def _trained():\n"
        "    o = Owner()\n"
        "    o.prepare()\n"
        "    return o\n"
        "def save(p):\n"
        "    o = _trained()\n"
        "    c = o.ctrl\n"
        '    torch.save({"dx": o.dx, "dt": c.dt, "h": c.history, "m": min(c.history),'
        ' "f": [float(d) for d in c.history]}, p)\n',
        [(23, "dx"), (23, "dt"), (23, "h"), (23, "m")],
    ),
]

VALID = [
    (
        "a Python float passed: the product of a float and a numpy factor is numpy, yet the "
        "step before any call is a float",
        'def save(p):\n    c = Ctrl(0.01)\n    torch.save({"dt": c.dt}, p)\n',
    ),
    (
        "a method sets a literal again",
        'def save(p, x):\n    c = Resetting(np.mean(x))\n    torch.save({"dt": c.dt}, p)\n',
    ),
    (
        "a method stores a float",
        'def save(p, x):\n    c = Converting(np.mean(x))\n    torch.save({"dt": c.dt}, p)\n',
    ),
    (
        "a method hands the object to a helper",
        'def save(p, x):\n    c = Handing(np.mean(x))\n    torch.save({"dt": c.dt}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert _rows(source) == [], name
