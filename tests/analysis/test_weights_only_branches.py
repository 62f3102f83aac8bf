"""CKPT010 through `if`/`else` arms: an arm that binds a literal may be the only one that
runs, so a name one arm binds to a literal and the other to a numpy scalar is not known to
be refused; a literal bound before the `if` (a starting value) still is. And `total += n` in
a loop over a numpy array: the sum is a numpy scalar; `for b in range(n)`: b is an int. And
a name that may hold two refusals reports the same one in every process. VALID and INVALID."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ckpt_lsp.findings import Finding
from support.ckpt010 import weights_only_findings, weights_only_rows

SERVER = str(Path(__file__).resolve().parents[2] / "server")
HEADER = """\
import argparse, dataclasses, enum, os
import numpy as np
import torch
"""


def _wo(source: str) -> list[Finding]:
    return weights_only_findings(HEADER, source)


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


INVALID = [
    (
        "a starting literal a branch overwrites with numpy",
        "def save(p, losses):\n"
        "    best = 0.0\n"
        "    if len(losses):\n"
        "        best = np.mean(np.asarray(losses))\n"
        '    torch.save({"best": best}, p)\n',
        [(5, "best")],
    ),
    (
        "both arms numpy",
        "def save(p, fp16):\n"
        "    if fp16:\n"
        "        scale = np.float32(2 ** 16)\n"
        "    else:\n"
        "        scale = np.float32(1.0)\n"
        '    torch.save({"scale": scale}, p)\n',
        [(6, "scale")],
    ),
    (
        "a sum of a numpy array's items in a loop",
        "def save(p, sizes):\n"
        "    budget = np.array(sizes) * 4\n"
        "    total = 0\n"
        "    for n in budget:\n"
        "        total += n\n"
        '    torch.save({"total": total}, p)\n',
        [(6, "total")],
    ),
    (
        "a float accumulator of numpy means",
        "def save(p, parts):\n"
        "    ece = 0.0\n"
        "    for part in parts:\n"
        "        ece += np.mean(np.asarray(part))\n"
        '    torch.save({"ece": ece}, p)\n',
        [(5, "ece")],
    ),
    (
        "a numpy array compared with a range index",
        "def save(p, scores, bins=5):\n"
        "    idx = np.clip(np.arange(10) - 1, 0, bins - 1)\n"
        "    ece = 0.0\n"
        "    for b in range(bins):\n"
        "        m = idx == b\n"
        "        ece += m.mean()\n"
        '    torch.save({"ece": ece}, p)\n',
        [(7, "ece")],
    ),
]

VALID = [
    (
        "one arm binds a literal, the other numpy: the literal arm may be the one that runs",
        "def save(p, fp16):\n"
        "    if fp16:\n"
        "        scale = 1.0\n"
        "    else:\n"
        "        scale = np.float32(2 ** 16)\n"
        '    torch.save({"scale": scale}, p)\n',
    ),
    (
        "the literal in the else arm, then the value stored by key",
        "def save(p, args):\n"
        "    ckpt = {}\n"
        "    if args.amp:\n"
        "        loss_scale = np.float32(2 ** 16)\n"
        "    else:\n"
        "        loss_scale = 1.0\n"
        '    ckpt["loss_scale"] = loss_scale\n'
        "    torch.save(ckpt, p)\n",
    ),
    (
        "a counter of items",
        "def save(p, sizes):\n"
        "    count = 0\n"
        "    for n in np.array(sizes):\n"
        "        count += 1\n"
        '    torch.save({"count": count}, p)\n',
    ),
    (
        "a sum of Python numbers",
        "def save(p, sizes):\n"
        "    total = 0\n"
        "    for n in np.array(sizes):\n"
        "        total += int(n)\n"
        '    torch.save({"total": total}, p)\n',
    ),
    (
        "a range index saved as it is",
        "def save(p, n):\n"
        "    last = 0\n"
        "    for i in range(n):\n"
        "        last = i\n"
        '    torch.save({"last": last}, p)\n',
    ),
    (
        "a project function named range",
        "def range(n):\n"
        "    return np.arange(n)\n"
        "def save(p, n):\n"
        "    for i in range(n):\n"
        "        x = i\n"
        '    torch.save({"n": n}, p)\n',
    ),
]


def test_a_python_number_plus_a_numpy_scalar_is_a_numpy_scalar() -> None:
    """The runtime fact `total += n` rests on (the default load refuses numpy scalars)."""
    assert isinstance(0 + np.array([4])[0], np.integer)
    assert isinstance(0.0 + np.mean(np.ones(2)), np.floating)


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name


DEQUE_OR_ITEMS = """\
from collections import deque
import numpy as np
import torch


def collect(n):
    out = deque(maxlen=10)
    running = np.zeros(n)
    for i in np.flatnonzero(running):
        out.append(running[i])
    return out


def save(p):
    torch.save({"h": list(collect(3))}, p)
"""


def test_two_refusals_report_the_same_one_in_every_process(tmp_path: Path) -> None:
    """A frozenset's order follows string hashes: each seed once, the same findings."""
    (tmp_path / "m.py").write_text(DEQUE_OR_ITEMS)
    seen = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": SERVER}
        run = [sys.executable, "-m", "ckpt_lsp", "--check", "m.py", "--no-cache"]
        out = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True)
        seen.add(out.stdout)
    assert len(seen) == 1
