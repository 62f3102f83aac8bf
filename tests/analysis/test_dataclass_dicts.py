"""CKPT010 of `dataclasses.asdict(x)` / `astuple(x)` of a project dataclass whose fields hold a
value the default load refuses (an Enum member, a `Path`, a numpy value), of a list
comprehension of them over a list of instances, and of numpy ufuncs and array methods
(`cm.diagonal() / np.maximum(cm.sum(axis=1), 1)`). VALID and INVALID."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import dataclasses
import enum
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch


class State(enum.Enum):
    RUNNING = "running"
    DONE = "done"


@dataclass
class Trial:
    number: int
    params: dict
    value: float = math.inf
    state: State = State.RUNNING


@dataclass
class Cfg:
    lr: float = 0.1
    name: str = "x"
    out: Optional[Path] = None
    steps: list = field(default_factory=list)


@dataclass
class Run:
    cfg: Cfg
    root: Path
    threshold: float = np.float32(0.5)


def study(n):
    trials = []
    for i in range(n):
        trials.append(Trial(i, {}))
    return trials, None


"""

INVALID = [
    (
        "asdict of an instance with an Enum field",
        'def save(p):\n    torch.save({"t": asdict(Trial(0, {}))}, p)\n',
        [(2, "t")],
    ),
    (
        "asdict over a list of instances a helper returns",
        "def save(p):\n"
        "    trials, _ = study(3)\n"
        "    values = [t.value for t in trials]\n"
        '    torch.save({"trials": [dataclasses.asdict(t) for t in trials], "v": values}, p)\n',
        [(4, "trials")],
    ),
    (
        "asdict with a Path field and a numpy default",
        'def save(p):\n    run = Run(Cfg(), Path("runs"))\n    torch.save({"run": asdict(run)}, p)\n',
        [(3, "run")],
    ),
    (
        "astuple",
        'def save(p):\n    torch.save({"t": dataclasses.astuple(Trial(0, {}))}, p)\n',
        [(2, "t")],
    ),
    (
        "numpy ufuncs and array methods",
        "def save(p, cm):\n"
        "    cm = np.asarray(cm)\n"
        "    per_class = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)\n"
        '    torch.save({"per_class": per_class, "mean": per_class.mean(),\n'
        '                "ratio": np.divide(1.0, 3.0), "diag": np.diag(cm)}, p)\n',
        [(4, "per_class"), (4, "mean"), (5, "ratio"), (5, "diag")],
    ),
    (
        "an asdict result kept in a local, saved whole and read by key",
        "def save(p):\n"
        "    d = asdict(Trial(0, {}))\n"
        '    torch.save({"d": d, "state": d["state"], "n": d["number"]}, p)\n',
        [(3, "d"), (3, "state")],
    ),
    (
        "asdict of a dataclass nesting one with an Enum field",
        "@dataclass\n"
        "class Study:\n"
        "    best: Trial\n"
        "    name: str = 'study'\n"
        "\n"
        "def save(p):\n"
        '    torch.save({"s": asdict(Study(Trial(0, {})))}, p)\n',
        [(7, "s")],
    ),
]

VALID = [
    (
        "asdict of numbers and strings",
        'def save(p):\n    torch.save({"cfg": asdict(Cfg(lr=0.2))}, p)\n',
    ),
    (
        "asdict of a nested dataclass of numbers, an Optional field left None",
        "@dataclass\n"
        "class Wrap:\n"
        "    cfg: Cfg\n"
        "    n: int = 0\n"
        "\n"
        "def save(p):\n"
        '    torch.save({"w": asdict(Wrap(Cfg())), "c": asdict(Cfg(out=None))}, p)\n',
    ),
    (
        "an Enum-annotated field given its member's value",
        'def save(p):\n    torch.save({"t": asdict(Trial(0, {}, state=State.DONE.value))}, p)\n',
    ),
    (
        "an asdict result whose refused fields are converted",
        "def save(p):\n"
        "    d = asdict(Trial(0, {}))\n"
        "    for k, v in d.items():\n"
        "        if isinstance(v, enum.Enum):\n"
        "            d[k] = v.value\n"
        "    e = asdict(Trial(1, {}))\n"
        '    e["state"] = e["state"].name\n'
        '    torch.save({"d": d, "e": e}, p)\n',
    ),
    (
        "an asdict result stored, then its field converted in place",
        "def save(p):\n"
        '    meta = {"n": 1}\n'
        '    meta["trial"] = asdict(Trial(0, {}))\n'
        '    meta["trial"]["state"] = meta["trial"]["state"].value\n'
        "    torch.save(meta, p)\n",
    ),
    (
        "numpy values made Python ones",
        "def save(p, cm):\n"
        "    cm = np.asarray(cm)\n"
        "    per_class = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)\n"
        '    torch.save({"per_class": per_class.tolist(), "mean": float(per_class.mean()),\n'
        '                "close": np.allclose(1.0, 1.0)}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert weights_only_rows(HEADER, source) == expected, name


@pytest.mark.parametrize(("name", "source"), VALID, ids=[c[0] for c in VALID])
def test_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER, source) == [], name
