"""CKPT010 through a project class's property: `meter.median` is what its getter returns."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_rows

HEADER = """\
import functools
import numpy as np
import torch

class Meter:
    def __init__(self):
        self.values = []

    @property
    def median(self):
        return np.median(self.values)

    @functools.cached_property
    def peak(self):
        return np.max(self.values)

    @property
    def avg(self):
        return sum(self.values) / len(self.values) if self.values else 0.0

    @property
    def count(self):
        return len(self.values)

    @property
    def either(self):
        if self.values:
            return np.median(self.values)
        return None

class Holder:
    def __init__(self):
        self.meter = Meter()

    def step(self, loss):
        self.meter.update(loss)  # the meter's own update, no dict's

class Meter2(Meter):
    def update(self, v):
        self.values.append(v)

class Holder2:
    def __init__(self):
        self.meter = Meter2()
        self.best = None

    def step(self, loss):
        self.meter.update(loss)
"""

INVALID = [
    (
        "a property's numpy scalar",
        'def go(p):\n    m = Meter()\n    torch.save({"m": m.median}, p)\n',
        [(3, "m")],
    ),
    (
        "a cached property",
        'def go(p):\n    m = Meter()\n    torch.save({"m": m.peak}, p)\n',
        [(3, "m")],
    ),
    (
        "a property of an object held in an attribute",
        'def go(p):\n    h = Holder()\n    torch.save({"m": h.meter.median}, p)\n',
        [(3, "m")],
    ),
    (
        "after a method that calls the held object's own update",
        'def go(p):\n    h = Holder2()\n    h.step(1.0)\n    torch.save({"m": h.meter.median}, p)\n',
        [(4, "m")],
    ),
]

VALID = [
    ("a float property", 'def go(p):\n    m = Meter()\n    torch.save({"m": m.avg}, p)\n'),
    ("an int property", 'def go(p):\n    m = Meter()\n    torch.save({"m": m.count}, p)\n'),
    (
        "a property that may be None",
        'def go(p):\n    m = Meter()\n    torch.save({"m": m.either}, p)\n',
    ),
    (
        "the item of a property",
        'def go(p):\n    m = Meter()\n    torch.save({"m": m.median.item()}, p)\n',
    ),
    (
        "an attribute set to None stays unknown after the held object's update",
        "def go(p):\n"
        "    h = Holder2()\n"
        "    h.step(1.0)\n"
        '    torch.save({"m": h.best, "n": h.meter.avg}, p)\n',
    ),
]


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


@pytest.mark.parametrize(("name", "source", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert _rows(source) == expected


@pytest.mark.parametrize(("name", "source"), VALID, ids=[c[0] for c in VALID])
def test_valid(name: str, source: str) -> None:
    assert _rows(source) == []
