"""column_keys: a frame's key held in a name names one column (`df[TARGET]`,
`df[self.target]`), so its `mean()` is a numpy scalar and its `tolist()` plain values.
VALID and INVALID, each refusal measured on torch 2.13."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import numpy as np
import pandas as pd
import torch

TARGET = "price"
FEATURES = "area"


def frame():
    return pd.DataFrame({"price": [1.0, 2.0, None], "area": [3.0, 4.0, 5.0]})


class Prep:
    def __init__(self, target=TARGET, label="area"):
        self.target = target
        self.label = label
        self.target_mean = 0.0
        self.n_missing = 0
        self.label_mean = 0.0
        self.values = []

    def fit(self, df):
        self.target_mean = df[self.target].mean()
        self.label_mean = df[self.label].mean()
        self.n_missing = df.isna().sum().sum()
        self.values = df[self.target].tolist()
        return self


"""

INVALID = [
    (
        "a column a configuration's field names, and a list of columns it may name",
        "from types import SimpleNamespace\n"
        "def save(p, cfg=SimpleNamespace(target='price', cols=['price', 'area'])):\n"
        "    df = frame()\n"
        '    torch.save({"m": df[cfg.target].mean(), "c": df[cfg.cols].mean()}, p)\n',
        [(4, "m"), (4, "c")],
    ),
    (
        "a module-level column name",
        'def save(p):\n    torch.save({"m": frame()[TARGET].mean()}, p)\n',
        [(2, "m")],
    ),
    (
        "an attribute set from a parameter's string default",
        'def save(p):\n    prep = Prep().fit(frame())\n    torch.save({"m": prep.target_mean}, p)\n',
        [(3, "m")],
    ),
    (
        "an attribute set from a string literal default",
        'def save(p):\n    prep = Prep().fit(frame())\n    torch.save({"m": prep.label_mean}, p)\n',
        [(3, "m")],
    ),
    (
        "the count of missing cells",
        'def save(p):\n    torch.save({"n": frame().isna().sum().sum()}, p)\n',
        [(2, "n")],
    ),
]

VALID = [
    (
        "a configuration's column as a list of Python numbers",
        "from types import SimpleNamespace\n"
        "def save(p, cfg=SimpleNamespace(target='area')):\n"
        '    torch.save({"v": frame()[cfg.target].tolist(), "n": len(frame()[cfg.target])}, p)\n',
    ),
    (
        "the mean as a Python float, the column as a list",
        "def save(p):\n"
        "    prep = Prep().fit(frame())\n"
        '    torch.save({"m": float(prep.target_mean), "v": prep.values}, p)\n',
    ),
    (
        "a module-level column as a list",
        'def save(p):\n    torch.save({"v": frame()[FEATURES].tolist()}, p)\n',
    ),
    (
        "the count as a Python int",
        'def save(p):\n    torch.save({"n": int(frame().isna().sum().sum())}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(weights_only_rows(HEADER, source), key=str) == sorted(expected, key=str), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER, source) == [], name
