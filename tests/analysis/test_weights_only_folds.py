"""CKPT010 of cross-validation folds kept in a list (`folds = list(kf.split(X))`, also
returned by a helper with the splitter): the list, one fold (`folds[k]`), the arrays it
unpacks into and the loop names over it are refused; and `enumerate`'s count is a Python int
(a record column of it holds numbers). VALID and INVALID."""

from __future__ import annotations

import pytest
from ckpt_lsp.findings import Finding
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import KFold, StratifiedKFold

NAMES = ["a", "b", "c", "d", "e", "f"]


def build_folds(n_splits=3):
    kf = KFold(n_splits=n_splits, shuffle=True, random_state=0)
    return kf, list(kf.split(np.arange(6)))
"""


def _wo(source: str) -> list[Finding]:
    return weights_only_findings(HEADER, source)


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


INVALID = [
    (
        "a fold of a helper's folds, unpacked; the list and one fold whole",
        "def save(path):\n    kf, folds = build_folds()\n    fold = 0\n"
        "    train_idx, val_idx = folds[fold]\n"
        '    torch.save({"val": val_idx, "one": folds[0], "all": folds}, path)\n',
        [(5, "val"), (5, "one"), (5, "all")],
    ),
    (
        "loop names over a local list of folds, also under enumerate",
        "def save(path, X, y):\n    folds = tuple(StratifiedKFold(2).split(X, y))\n"
        "    for tr, va in folds:\n"
        '        torch.save({"va": va}, path)\n'
        "    for k, (tr, va) in enumerate(folds):\n"
        '        torch.save({"k": k, "tr": tr, "first": va[0]}, path)\n',
        [(4, "va"), (6, "tr"), (6, "first")],
    ),
    (
        "a label grouped by a record column of enumerate's count",
        "def save(path):\n    _, folds = build_folds()\n    rows = []\n"
        "    for k, (_, va) in enumerate(folds):\n"
        '        rows.append({"fold": k, "dice": float(len(va))})\n'
        "    df = pd.DataFrame(rows)\n"
        '    torch.save({"best": df.groupby("fold")["dice"].mean().idxmax()}, path)\n',
        [(7, "best")],
    ),
]

VALID = [
    (
        "folds as lists, counted, or read for names",
        "def save(path):\n    kf, folds = build_folds()\n    train_idx, val_idx = folds[0]\n"
        '    torch.save({"folds": [(tr.tolist(), va.tolist()) for tr, va in folds],\n'
        '                "n": len(folds), "k": kf.get_n_splits(),\n'
        '                "names": [NAMES[i] for i in val_idx], "val": val_idx.tolist()}, path)\n',
    ),
    (
        "a project object's split is not a splitter's",
        "class Data:\n    def split(self, n):\n        return [(1, 2)]\n"
        "def save(path):\n    parts = list(Data().split(2))\n    a, b = parts[0]\n"
        '    torch.save({"a": a, "parts": parts}, path)\n',
    ),
    (
        "enumerate's count and the items of a list of strings",
        "def save(path):\n    out = {}\n    for i, name in enumerate(NAMES):\n"
        "        out[name] = i\n    torch.save(out, path)\n",
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name
