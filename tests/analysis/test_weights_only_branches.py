"""CKPT010 through `if`/`else` arms: an arm that binds a literal may be the only one that
runs, so a name one arm binds to a literal and the other to a numpy scalar is not known to
be refused; a literal bound before the `if` (a starting value) still is. VALID and INVALID."""

from __future__ import annotations

import textwrap

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text
from ckpt_lsp.findings import Finding

HEADER = """\
import argparse, dataclasses, enum, os
import numpy as np
import torch
"""


def _wo(source: str) -> list[Finding]:
    text = HEADER + textwrap.dedent(source)
    return [f for f in analyze_text(text) if f.code == "CKPT010"]


def _rows(source: str) -> list[tuple[int, str | None]]:
    offset = HEADER.count("\n")
    return [(f.location.row - offset, f.attribute) for f in _wo(source)]


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
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name
