"""CKPT010 of what a dict holds under a key when it spreads another (`{"epoch": e, **stats}`),
of the records appended to a local list (`log[-1]["loss"]`, `last = log[-1]`, `for s in log`),
of a dataclass field given a helper's dict (`best.params["dropout"]` of trials a search
appended), and of a frame's row picked by one label (`df.loc[df["loss"].idxmin()]["loss"]`).
VALID and INVALID."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch


def one_epoch(losses):
    return {"loss": np.mean(losses), "lr": 0.1}


@dataclass
class Trial:
    number: int
    params: dict


def suggest(rng):
    rng = np.random.default_rng(0)
    return {"lr": 0.1, "dropout": rng.choice([0.0, 0.1, 0.2])}


def suggest_floats(rng):
    rng = np.random.default_rng(0)
    return {"lr": 0.1, "dropout": float(rng.choice([0.0, 0.1, 0.2]))}


def run_trial(number, params):
    return Trial(number, params), None


def fill(d):
    d["dropout"] = 0.0


class PlainTrial:
    def __init__(self, number, params):
        self.number = number
        self.params = params


class CastTrial:
    def __init__(self, params):
        self.params = params

    def cast(self):
        for k in list(self.params):
            self.params[k] = float(self.params[k])


@dataclass
class PostTrial:
    params: dict

    def __post_init__(self):
        self.params = {k: float(v) for k, v in self.params.items()}


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
    (
        "a dataclass field given a helper's dict, through a helper and a list of trials",
        "def study(rng):\n"
        "    trials, models = [], []\n"
        "    for i in range(3):\n"
        "        trial, model = run_trial(i, suggest(rng))\n"
        "        trials.append(trial)\n"
        "        models.append(model)\n"
        "    return trials, models\n"
        "\n"
        "def save(p, rng):\n"
        "    trials, _ = study(rng)\n"
        "    values = [t.number for t in trials]\n"
        "    best = trials[-1]\n"
        "    for t in trials:\n"
        '        last = t.params["dropout"]\n'
        '    torch.save({"dropout": best.params["dropout"], "lr": best.params["lr"],\n'
        '                "last": last, "v": values}, p)\n',
        [(15, "dropout"), (16, "last")],
    ),
    (
        "a local dataclass given a helper's dict",
        "def save(p, rng):\n"
        "    params = suggest(rng)\n"
        "    trial = Trial(0, params)\n"
        '    torch.save({"dropout": trial.params["dropout"]}, p)\n',
        [(4, "dropout")],
    ),
    (
        "a list comprehension of records",
        "def save(p):\n"
        "    log = [one_epoch([x]) for x in range(3)]\n"
        '    accs = [{"i": i, "acc": np.mean([i])} for i in range(3)]\n'
        '    torch.save({"loss": log[-1]["loss"], "acc": accs[0]["acc"], "lr": log[0]["lr"]}, p)\n',
        [(4, "loss"), (4, "acc")],
    ),
    (
        "a plain class's attribute its __init__ sets from the dict",
        "def save(p, rng):\n"
        "    trial = PlainTrial(0, suggest(rng))\n"
        '    torch.save({"dropout": trial.params["dropout"], "n": trial.number}, p)\n',
        [(3, "dropout")],
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
        "a dataclass field given Python numbers, or changed after it was built",
        "def save(p, rng):\n"
        "    t1, _ = run_trial(0, suggest_floats(rng))\n"
        "    t2, _ = run_trial(1, suggest(rng))\n"
        '    t2.params["dropout"] = float(t2.params["dropout"])\n'
        "    t3, _ = run_trial(2, suggest(rng))\n"
        '    t3.params = {"dropout": 0.1}\n'
        "    t4, _ = run_trial(3, suggest(rng))\n"
        "    t4.params.update(dropout=0.2)\n"
        "    t5, _ = run_trial(4, suggest(rng))\n"
        "    fill(t5.params)\n"
        "    trials = []\n"
        "    for i in range(3):\n"
        "        t, _ = run_trial(i, suggest(rng))\n"
        '        t.params["dropout"] = 0.5\n'
        "        trials.append(t)\n"
        '    torch.save({"a": t1.params["dropout"], "b": t2.params["dropout"],\n'
        '                "c": t3.params["dropout"], "d": t4.params["dropout"],\n'
        '                "e": t5.params["dropout"], "f": trials[0].params["dropout"]}, p)\n',
    ),
    (
        "a comprehension's records of Python numbers, its own names shadowing a local",
        "def save(p):\n"
        "    acc = np.float64(1.0)\n"
        '    a = [{"acc": acc} for acc in [0.5, 0.6]]\n'
        '    b = [{"acc": float(np.mean([i]))} for i in range(3)]\n'
        '    torch.save({"a": a[0]["acc"], "b": b[-1]["acc"]}, p)\n',
    ),
    (
        "a field rebound in a loop",
        "def save(p, rng):\n"
        "    t, _ = run_trial(0, suggest(rng))\n"
        "    for i in range(2):\n"
        '        t.params = {"dropout": 0.1 * i}\n'
        '    torch.save({"dropout": t.params["dropout"]}, p)\n',
    ),
    (
        "a class that converts what it is given",
        "def save(p, rng):\n"
        "    a = CastTrial(suggest(rng))\n"
        "    a.cast()\n"
        "    b = PostTrial(suggest(rng))\n"
        '    torch.save({"a": a.params["dropout"], "b": b.params["dropout"]}, p)\n',
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
