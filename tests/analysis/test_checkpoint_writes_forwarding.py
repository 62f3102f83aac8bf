"""CKPT010 through savers that hand their own `*args, **kwargs` to torch.save (the torchvision
references' `utils.save_on_master`), whether a module or a class of staticmethods holds them."""

from __future__ import annotations

from pathlib import Path

import pytest
from ckpt_lsp.config import Config
from ckpt_lsp.runner import run_check
from support.ckpt010 import weights_only_rows

CLASS_UTILS = """\
import argparse
import numpy as np
import torch

class utils:
    @staticmethod
    def is_main_process():
        return True

    @staticmethod
    def save_on_master(*args, **kwargs):
        if utils.is_main_process():
            torch.save(*args, **kwargs)
"""

INVALID = [
    (
        "namespace through a class staticmethod",
        "def go(p):\n"
        "    args = argparse.ArgumentParser().parse_args([])\n"
        '    utils.save_on_master({"args": args}, p)\n',
        [(3, "args")],
    ),
    (
        "numpy scalar, keyword obj",
        'def go(p):\n    utils.save_on_master(obj={"m": np.mean([1.0])}, f=p)\n',
        [(2, "m")],
    ),
    (
        "local dict filled then written",
        'def go(p):\n    ck = {}\n    ck["m"] = np.float64(1.0)\n    utils.save_on_master(ck, p)\n',
        [(3, "m")],
    ),
    (
        "a writer method named for the act, given keywords and the caller's dict spread",
        "class CheckpointIO:\n"
        '    def base_state(self, step):\n        return {"step": step}\n'
        "    def write(self, step, path, **extra):\n"
        "        state = self.base_state(step)\n        state.update(extra)\n"
        "        torch.save(state, path)\n"
        "def go(p):\n    io = CheckpointIO()\n"
        "    io.write(3, p, lo=np.float64(1.0))\n"
        "    extra = dict(args=argparse.Namespace(a=1), ok=1)\n"
        "    io.write(4, p, **extra)\n",
        [(10, "lo"), (11, "args")],
    ),
]

VALID = [
    ("tensors only", 'def go(p):\n    utils.save_on_master({"w": torch.zeros(2)}, p)\n'),
    (
        "forwarder to json, not torch.save",
        "import json\n"
        "class io:\n"
        "    @staticmethod\n"
        "    def save_json(*args, **kwargs):\n"
        "        json.dump(*args, **kwargs)\n"
        'def go(f):\n    io.save_json({"m": np.mean([1.0])}, f)\n',
    ),
    (
        "star arguments not first: the object is not the caller's first",
        "class io:\n"
        "    @staticmethod\n"
        "    def save_all(*args):\n"
        "        torch.save({}, *args)\n"
        'def go(p):\n    io.save_all(p, {"m": np.mean([1.0])})\n',
    ),
    (
        "a plain method of a class called on the class is not a saver",
        "class io:\n"
        "    def save_it(self, *args):\n"
        "        torch.save(*args)\n"
        'def go(p):\n    io.save_it({"m": np.mean([1.0])}, p)\n',
    ),
    ("the caller's own star arguments", "def go(*a):\n    utils.save_on_master(*a)\n"),
    (
        "a writer method given plain keywords and a plain spread",
        "class CheckpointIO:\n"
        '    def base_state(self, step):\n        return {"step": step}\n'
        "    def write(self, step, path, **extra):\n"
        "        state = self.base_state(step)\n        state.update(extra)\n"
        "        torch.save(state, path)\n"
        "def go(p):\n    io = CheckpointIO()\n"
        '    extra = {"lr": 0.1, "tag": "a"}\n'
        "    io.write(4, p, best=float(np.float64(1.0)), **extra)\n",
    ),
    (
        "a method named write of a class that writes JSON, not a checkpoint",
        "import json\n"
        "class Log:\n"
        "    def write(self, path, **extra):\n"
        "        with open(path, 'w') as f:\n            json.dump(extra, f, default=str)\n"
        "def go(p):\n    Log().write(p, lo=np.float64(1.0))\n",
    ),
]


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(CLASS_UTILS, source)


@pytest.mark.parametrize(("name", "source", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert _rows(source) == expected


@pytest.mark.parametrize(("name", "source"), VALID, ids=[c[0] for c in VALID])
def test_valid(name: str, source: str) -> None:
    assert _rows(source) == []


def test_a_utils_module_forwarding_its_arguments(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "utils.py").write_text(
        "import torch\n\ndef save_on_master(*args, **kwargs):\n    torch.save(*args, **kwargs)\n"
    )
    (tmp_path / "train.py").write_text(
        "import numpy as np\nimport utils\n\n"
        "def go(p):\n"
        '    utils.save_on_master({"m": np.mean([1.0]), "n": 1}, p)\n'
    )
    found = run_check([tmp_path], Config(root=tmp_path), use_cache=False).findings
    assert [(f.location.row, f.attribute) for f in found] == [(5, "m")]
