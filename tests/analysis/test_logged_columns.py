"""CKPT010: a frame built from a project object's metrics log (`pd.DataFrame(trainer.log)`) has
numeric columns where every value the class logs under that key is a number, so a cell of one
(`df["loss"].iloc[-1]`) is a numpy scalar; a column of strings, or a log filled under keys not
written out, is not known. VALID and INVALID."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
from collections import defaultdict
import numpy as np
import pandas as pd
import torch


class Trainer:
    def __init__(self):
        self.log = defaultdict(list)
        self.history = []
        self.named = {"loss": [], "phase": []}

    def step(self, loss, acc):
        self.log["loss"].append(loss.item())
        self.log["acc"].append(float(acc))
        self.log["steps"].append(len(self.log["loss"]))
        self.log["phase"].append("warmup")
        self.history.append({"epoch": 1, "loss": loss.item(), "tag": "a"})
        self.named["loss"].append(np.mean([1.0]))
        self.named["phase"].append(str(acc))
        return self


class Loose:
    def __init__(self):
        self.log = defaultdict(list)

    def record(self, name, value):
        self.log[name].append(value)
        self.log["loss"].append(value.item())


class Extended:
    def __init__(self):
        self.log = {"loss": []}

    def record(self, values):
        self.log["loss"].append(1.0)
        self.log["loss"].extend(values)


"""

INVALID = [
    (
        "a cell of a column logged with .item()",
        "def save(p, x):\n"
        "    t = Trainer().step(x, x)\n"
        "    df = pd.DataFrame(t.log)\n"
        '    torch.save({"last": df["loss"].iloc[-1], "first": df["acc"].iloc[0]}, p)\n',
        [(4, "last"), (4, "first")],
    ),
    (
        "a column of lengths",
        "def save(p, x):\n"
        "    t = Trainer().step(x, x)\n"
        '    torch.save({"n": pd.DataFrame(t.log)["steps"].iloc[-1]}, p)\n',
        [(3, "n")],
    ),
    (
        "records appended as dict displays",
        "def save(p, x):\n"
        "    t = Trainer().step(x, x)\n"
        "    df = pd.DataFrame(t.history)\n"
        '    torch.save({"e": df["epoch"].iloc[-1], "l": df["loss"].iloc[-1]}, p)\n',
        [(4, "e"), (4, "l")],
    ),
    (
        "numpy values logged",
        "def save(p, x):\n"
        "    t = Trainer().step(x, x)\n"
        '    torch.save({"l": pd.DataFrame(t.named)["loss"].iloc[-1]}, p)\n',
        [(3, "l")],
    ),
]

VALID = [
    (
        "a column of strings",
        "def save(p, x):\n"
        "    t = Trainer().step(x, x)\n"
        "    df = pd.DataFrame(t.log)\n"
        '    torch.save({"phase": df["phase"].iloc[-1], "tag": pd.DataFrame(t.history)["tag"].iloc[0]}, p)\n',
    ),
    (
        "a column of str(...) values",
        "def save(p, x):\n"
        "    t = Trainer().step(x, x)\n"
        '    torch.save({"ph": pd.DataFrame(t.named)["phase"].iloc[-1]}, p)\n',
    ),
    (
        "a cell made a Python number",
        "def save(p, x):\n"
        "    t = Trainer().step(x, x)\n"
        "    df = pd.DataFrame(t.log)\n"
        '    torch.save({"last": float(df["loss"].iloc[-1]), "all": df["loss"].tolist()}, p)\n',
    ),
    (
        "a log filled under keys not written out",
        "def save(p, x):\n"
        "    t = Loose()\n"
        '    t.record("loss", x)\n'
        '    torch.save({"l": pd.DataFrame(t.log)["loss"].iloc[-1]}, p)\n',
    ),
    (
        "a log extended with anything",
        "def save(p, x):\n"
        "    t = Extended()\n"
        '    torch.save({"l": pd.DataFrame(t.log)["loss"].iloc[-1]}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(weights_only_rows(HEADER, source), key=str) == sorted(expected, key=str), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER, source) == [], name


LOCAL = """\
def run(steps):
    history = defaultdict(list)
    for _ in range(steps):
        history["loss"].append(torch.ones(1).item())
        history["tag"].append("x")
    return pd.DataFrame(history)


"""

LOCAL_INVALID = [
    (
        "a local log of numbers",
        "def save(p):\n"
        "    history = defaultdict(list)\n"
        "    for i in range(3):\n"
        '        history["loss"].append(torch.ones(1).item())\n'
        "    df = pd.DataFrame(history)\n"
        '    torch.save({"l": df["loss"].iloc[-1]}, p)\n',
        [(6, "l")],
    ),
    (
        "local records of numbers",
        "def save(p):\n"
        "    rows = []\n"
        "    for i in range(3):\n"
        '        rows.append({"step": i + 1, "loss": float(i)})\n'
        "    df = pd.DataFrame(rows)\n"
        '    torch.save({"l": df["loss"].iloc[-1]}, p)\n',
        [(6, "l")],
    ),
    (
        "a helper's frame of its local log",
        'def save(p):\n    log = run(3)\n    torch.save({"l": log["loss"].iloc[-1]}, p)\n',
        [(3, "l")],
    ),
]

LOCAL_VALID = [
    (
        "a local log of strings",
        "def save(p):\n"
        '    rows = [{"name": "a"}]\n'
        "    df = pd.DataFrame(rows)\n"
        '    torch.save({"n": df["name"].iloc[-1]}, p)\n',
    ),
    (
        "a helper's column of strings",
        'def save(p):\n    log = run(3)\n    torch.save({"t": log["tag"].iloc[-1]}, p)\n',
    ),
    (
        "a log handed in may hold anything",
        "def save(p, history):\n"
        '    history["loss"].append(1.0)\n'
        "    df = pd.DataFrame(history)\n"
        '    torch.save({"l": df["loss"].iloc[-1]}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), LOCAL_INVALID)
def test_local_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    found = weights_only_rows(HEADER + LOCAL, source)
    assert sorted(found, key=str) == sorted(expected, key=str), name


@pytest.mark.parametrize(("name", "source"), LOCAL_VALID)
def test_local_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER + LOCAL, source) == [], name


CELLS = """\
def frame():
    return pd.DataFrame({"loss": [0.5, 0.4], "name": ["a", "b"]})


"""

CELLS_INVALID = [
    (
        "cells of a column of numbers, every way pandas reads one",
        "def save(p):\n"
        "    df = frame()\n"
        '    torch.save({"a": df.at[0, "loss"], "b": df.loc[1, "loss"],\n'
        '                "c": df.iloc[-1]["loss"], "d": df.iloc[-1].loss,\n'
        '                "e": df.loss.iloc[-1], "f": df["loss"].iat[-1]}, p)\n',
        [(3, "a"), (3, "b"), (4, "c"), (4, "d"), (5, "e"), (5, "f")],
    ),
]

CELLS_VALID = [
    (
        "cells of a column of strings, and numbers made Python's",
        "def save(p):\n"
        "    df = frame()\n"
        '    torch.save({"a": df.at[0, "name"], "b": df.loc[1, "name"],\n'
        '                "c": df.iloc[-1]["name"], "d": df.iloc[-1].name,\n'
        '                "e": df.loss.tolist(), "f": df.iloc[-1]["loss"].item(),\n'
        '                "g": float(df.at[0, "loss"])}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), CELLS_INVALID)
def test_cells_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    found = weights_only_rows(HEADER + CELLS, source)
    assert sorted(found, key=str) == sorted(expected, key=str), name


@pytest.mark.parametrize(("name", "source"), CELLS_VALID)
def test_cells_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER + CELLS, source) == [], name
