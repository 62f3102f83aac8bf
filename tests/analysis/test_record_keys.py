"""CKPT010 of what a dict holds under a key when it spreads another (`{"epoch": e, **stats}`),
of the records appended to a local list (`log[-1]["loss"]`, `last = log[-1]`, `for s in log`),
and of a frame's row picked by one label (`df.loc[df["loss"].idxmin()]["loss"]`). VALID and
INVALID."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import numpy as np
import pandas as pd
import torch


def one_epoch(losses):
    return {"loss": np.mean(losses), "lr": 0.1}


"""

INVALID = [
    (
        "a spread of a helper's dict",
        "def save(p):\n"
        "    stats = one_epoch([1.0])\n"
        '    row = {"epoch": 1, **stats}\n'
        '    torch.save({"loss": row["loss"]}, p)\n',
        [(4, "loss")],
    ),
    (
        "the last record of a log, through a helper's tuple",
        "def train():\n"
        "    log = []\n"
        "    for epoch in range(3):\n"
        "        stats = one_epoch([1.0])\n"
        '        log.append({"epoch": epoch, **stats})\n'
        "    return None, log\n"
        "\n"
        "def save(p):\n"
        "    _, log = train()\n"
        "    last = log[-1]\n"
        '    torch.save({"loss": last["loss"], "lr": last["lr"]}, p)\n',
        [(11, "loss")],
    ),
    (
        "a record read by index and key",
        "def save(p):\n"
        "    log = []\n"
        "    for i in range(3):\n"
        '        log.append({"i": i, "acc": np.mean([0.5])})\n'
        '    torch.save({"acc": log[0]["acc"], "i": log[-1]["i"]}, p)\n',
        [(5, "acc")],
    ),
    (
        "a record saved whole",
        "def save(p):\n"
        "    log = []\n"
        "    for i in range(3):\n"
        "        log.append(one_epoch([1.0]))\n"
        '    torch.save({"last": log[-1]}, p)\n',
        [(5, "last")],
    ),
    (
        "the records of a loop",
        "def save(p):\n"
        "    log = []\n"
        "    for i in range(3):\n"
        "        log.append(one_epoch([1.0]))\n"
        "    best = None\n"
        "    for s in log:\n"
        '        best = s["loss"]\n'
        '    torch.save({"best": best}, p)\n',
        [(8, "best")],
    ),
    (
        "a frame's row at its minimum",
        "def save(p):\n"
        "    rows = []\n"
        "    for i in range(3):\n"
        '        rows.append({"epoch": i, "loss": float(i), "name": "x"})\n'
        "    df = pd.DataFrame(rows)\n"
        '    best = df.loc[df["loss"].idxmin()]\n'
        '    torch.save({"loss": best["loss"], "epoch": best.epoch, "first": df.loc[0]["loss"]}, p)\n',
        [(7, "loss"), (7, "epoch"), (7, "first")],
    ),
]

VALID = [
    (
        "records of Python numbers",
        "def save(p):\n"
        "    log = []\n"
        "    for i in range(3):\n"
        '        log.append({"i": i, "loss": float(np.mean([1.0]))})\n'
        '    torch.save({"loss": log[-1]["loss"], "last": log[-1]}, p)\n',
    ),
    (
        "a key the display writes again after the spread",
        "def save(p):\n"
        "    stats = one_epoch([1.0])\n"
        '    row = {**stats, "loss": float(stats["loss"])}\n'
        '    torch.save({"loss": row["loss"]}, p)\n',
    ),
    (
        "a key a later spread may replace",
        "def save(p, other):\n"
        '    row = {"loss": np.mean([1.0]), **other}\n'
        '    torch.save({"loss": row["loss"]}, p)\n',
    ),
    (
        "a list that held another record first",
        "def save(p):\n"
        '    log = [{"loss": 1.0}]\n'
        '    log.append({"loss": np.mean([1.0])})\n'
        '    torch.save({"loss": log[0]["loss"]}, p)\n',
    ),
    (
        "records that differ by branch",
        "def save(p, flag):\n"
        "    log = []\n"
        "    if flag:\n"
        '        log.append({"loss": np.mean([1.0])})\n'
        "    else:\n"
        '        log.append({"loss": 1.0})\n'
        '    torch.save({"loss": log[-1]["loss"]}, p)\n',
    ),
    (
        "a record converted after it was read",
        "def save(p):\n"
        "    log = []\n"
        "    log.append(one_epoch([1.0]))\n"
        "    last = log[-1]\n"
        '    last["loss"] = float(last["loss"])\n'
        '    torch.save({"loss": last["loss"]}, p)\n',
    ),
    (
        "a row's string cell, converted cells, a frame of labels",
        "def save(p):\n"
        "    rows = []\n"
        "    for i in range(3):\n"
        '        rows.append({"epoch": i, "loss": float(i), "name": "x"})\n'
        "    df = pd.DataFrame(rows)\n"
        '    best = df.loc[df["loss"].idxmin()]\n'
        '    picked = df.loc[df["loss"] > 1]\n'
        '    torch.save({"name": best["name"], "epoch": int(best["epoch"]),\n'
        '                "rows": picked["loss"].tolist()}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert weights_only_rows(HEADER, source) == expected, name


@pytest.mark.parametrize(("name", "source"), VALID, ids=[c[0] for c in VALID])
def test_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER, source) == [], name
