"""CKPT010 of metric bookkeeping: per-class scikit-learn scores and curves (arrays), loop
names bound to number literals, best-so-far dicts a loop rebinds or updates, and pandas
aggregates grouped or indexed by a column of numbers (their labels are numpy numbers).
Every refusal is measured in tests/test_weights_only_truth.py. VALID and INVALID."""

from __future__ import annotations

import pytest
from ckpt_lsp.findings import Finding
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import numpy as np
import pandas as pd
import torch
from sklearn.metrics import jaccard_score, r2_score, roc_curve, fbeta_score
"""


def _wo(source: str) -> list[Finding]:
    return weights_only_findings(HEADER, source)


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


ROWS = (
    "def frame():\n    rows = []\n    for k in range(3):\n"
    '        for c in ("a", "b"):\n'
    '            rows.append({"fold": k, "cls": c, "dice": np.random.rand()})\n'
    "    return pd.DataFrame(rows)\n"
)

INVALID = [
    (
        "per-class and per-output scores are arrays",
        "def save(path, y, p):\n"
        "    torch.save({\n"
        '        "iou": jaccard_score(y, p, average=None, labels=[0, 1]),\n'
        '        "f2": fbeta_score(y, p, beta=2.0, average=None),\n'
        '        "r2": r2_score(y, p, multioutput="raw_values"),\n'
        "    }, path)\n",
        [(3, "iou"), (4, "f2"), (5, "r2")],
    ),
    (
        "the arrays a curve unpacks into",
        "def save(path, y, s):\n    fpr, tpr, thr = roc_curve(y, s)\n"
        '    torch.save({"fpr": fpr, "thr": thr}, path)\n',
        [(3, "fpr"), (3, "thr")],
    ),
    (
        "a numpy scalar times a loop name bound to number literals",
        "def save(path):\n    arr = np.ones(3)\n    out = {}\n"
        '    for scale in [0.9, 1.0]:\n        out["a"] = arr.mean() * scale\n'
        '    for i, s in enumerate((0.5, 2)):\n        out["b"] = arr.mean() * s\n'
        "    torch.save(out, path)\n",
        [(5, "a"), (7, "b")],
    ),
    (
        "a best-so-far dict a loop rebinds under an if",
        "def save(path):\n    iou = jaccard_score([0, 1], [0, 1], average=None)\n"
        '    best = {"miou": -1.0, "epoch": -1}\n'
        "    for epoch in range(3):\n        miou = iou.mean()\n"
        '        if miou > best["miou"]:\n            best = {"miou": miou, "epoch": epoch}\n'
        '    torch.save(dict(best_miou=best["miou"], best_epoch=best["epoch"]), path)\n',
        [(8, "best_miou")],
    ),
    (
        "a best-so-far dict a loop updates by key under an if",
        "def save(path):\n    arr = np.ones(3)\n"
        '    best = {"loss": 1e9}\n'
        "    for epoch in range(3):\n        loss = arr.mean()\n"
        '        if loss < best["loss"]:\n            best["loss"] = loss\n'
        '    torch.save({"best": best["loss"]}, path)\n',
        [(8, "best")],
    ),
    (
        "the label of an aggregate grouped or indexed by a column of numbers",
        ROWS + "def save(path):\n    df = frame()\n    torch.save({\n"
        '        "best_fold": df.groupby("fold")["dice"].mean().idxmax(),\n'
        '        "worst_fold": df.groupby(["fold", "cls"]).mean()["dice"].idxmin(),\n'
        '        "by_fold": df.groupby("fold")["dice"].mean(),\n'
        '        "top": df.groupby("fold")["dice"].max().sort_values().idxmax(),\n'
        '        "indexed": df.set_index("fold")["dice"].idxmax(),\n'
        '        "pos": df["dice"].argmax(),\n'
        "    }, path)\n",
        [
            (10, "best_fold"),
            (11, "worst_fold"),
            (12, "by_fold"),
            (13, "top"),
            (14, "indexed"),
            (15, "pos"),
        ],
    ),
    (
        "a label of the index of such an aggregate, of counts of numbers, the index whole",
        "def save(path):\n"
        '    df = pd.DataFrame({"k": [1, 2, 1], "s": ["a", "b", "a"], "v": [1.5, 2.5, 0.5]})\n'
        "    torch.save({\n"
        '        "first": df.set_index("k").index[0],\n'
        '        "last": df.groupby("k")["v"].mean().index[-1],\n'
        '        "top": df.groupby("k")["v"].mean().index.max(),\n'
        '        "mode": df["k"].value_counts().index[0],\n'
        '        "labels": df.groupby("k")["v"].mean().index,\n'
        "    }, path)\n",
        [(4, "first"), (5, "last"), (6, "top"), (7, "mode"), (8, "labels")],
    ),
    (
        "per-class precision, recall, F-score and support unpacked (averaged: floats, None)",
        "from sklearn.metrics import precision_recall_fscore_support as prfs\n"
        "def save(path, y, p):\n    prec, rec, f1, sup = prfs(y, p, average=None)\n"
        '    mp, mr, mf, _ = prfs(y, p, average="macro")\n'
        '    torch.save({"prec": prec, "sup": sup, "mp": mp, "mf": mf}, path)\n',
        [(5, "prec"), (5, "sup")],
    ),
    (
        "a best-so-far dict a loop updates under an if, by keyword or display",
        "def save(path):\n    arr = np.ones(3)\n"
        '    best = {"miou": -1.0, "epoch": -1}\n    last = {"loss": 1e9}\n'
        "    for epoch in range(3):\n        m = arr.mean()\n"
        '        if m > best["miou"]:\n            best.update(miou=m, epoch=epoch)\n'
        '            last.update({"loss": m})\n'
        '    torch.save({"a": best["miou"], "e": best["epoch"], "b": last["loss"]}, path)\n',
        [(10, "a"), (10, "b")],
    ),
]

VALID = [
    (
        "averaged scores are Python floats",
        "def save(path, y, p):\n"
        '    torch.save({"iou": jaccard_score(y, p, average="macro"), "r2": r2_score(y, p),\n'
        '                "ious": [float(v) for v in jaccard_score(y, p, average=None)]}, path)\n',
    ),
    (
        "a loop name of a display that is not all numbers, times a numpy scalar is unknown",
        "def save(path, t):\n    arr = np.ones(3)\n    out = {}\n"
        '    for scale in [t, 1.0]:\n        out["a"] = arr.mean() * scale\n'
        "    torch.save(out, path)\n",
    ),
    (
        "a best-so-far dict of Python floats",
        "def save(path):\n"
        '    best = {"miou": -1.0}\n'
        "    for epoch in range(3):\n        miou = float(np.ones(3).mean())\n"
        '        if miou > best["miou"]:\n            best = {"miou": miou}\n'
        '    torch.save({"best": best["miou"]}, path)\n',
    ),
    (
        "labels of a string column, of the default index, or of groups kept as columns",
        ROWS + "def save(path):\n    df = frame()\n    torch.save({\n"
        '        "best_cls": df.groupby("cls")["dice"].mean().idxmax(),\n'
        '        "best_row": df["dice"].idxmax(),\n'
        '        "flat": df.groupby("fold", as_index=False)["dice"].mean()["dice"].idxmax(),\n'
        '        "reset": df.groupby("fold")["dice"].mean().reset_index()["dice"].idxmax(),\n'
        '        "means": df.groupby("fold")["dice"].mean().tolist(),\n'
        '        "by_cls": df.set_index("cls")["dice"].idxmin(),\n'
        "    }, path)\n",
    ),
    (
        "such an index as a list, a default index's label, a string index's label",
        "def save(path):\n"
        '    df = pd.DataFrame({"k": [1, 2, 1], "s": ["a", "b", "a"], "v": [1.5, 2.5, 0.5]})\n'
        "    torch.save({\n"
        '        "labels": df.groupby("k")["v"].mean().index.tolist(),\n'
        '        "listed": list(df.groupby("k")["v"].mean().index),\n'
        '        "row": df.index[0],\n'
        '        "name": df.groupby("s")["v"].mean().index[0],\n'
        "    }, path)\n",
    ),
    (
        "a dict updated with Python numbers; an object's own update",
        "class Meter:\n    def update(self, **kw):\n        self.kw = kw\n"
        "def save(path):\n    arr = np.ones(3)\n"
        '    best = {"miou": np.float64(0.0)}\n    meter = Meter()\n'
        "    best.update(miou=float(arr.mean()))\n    meter.update(v=arr.mean())\n"
        '    torch.save({"a": best["miou"], "m": meter.kw}, path)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name
