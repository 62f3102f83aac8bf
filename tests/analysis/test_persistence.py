"""Persistence: whether a hazard is still in the instance when the parent pickles it.

A lazy opener is fine only while the parent never runs it: `__init__` reaching it
(directly, through a helper, a property read or `len(self)`) or `__len__` reaching it
(DataLoader(shuffle=True) calls len(dataset) at construction) opens it in the parent.
A helper that closes and sets the attribute to None clears it; closing alone does not
(a closed file still fails to pickle).
"""

from __future__ import annotations

import textwrap

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text

HEADER = """\
import functools
import io
import lmdb
import sqlite3
from torch.utils.data import Dataset, get_worker_info


class D(Dataset):
"""


def attributes(body: str, tail: str = "") -> list[str]:
    source = HEADER + textwrap.indent(textwrap.dedent(body), "    ") + textwrap.dedent(tail)
    return sorted({f.attribute for f in analyze_text(source, "data.py")})


ENV_PROPERTY = """
@property
def env(self):
    if self._env is None:
        self._env = lmdb.open(self.path, readonly=True)
    return self._env
"""

OPEN_HELPER = """
def _open(self):
    if self._env is None:
        self._env = lmdb.open(self.path, readonly=True)
    return self._env
"""

GETITEM = """
def __getitem__(self, i):
    return self.env.stat() if hasattr(self, "env") else self._open().stat()
"""


@pytest.mark.parametrize(
    "body",
    [
        # a property read in __init__
        "def __init__(self, path):\n    self.path = path\n    self._env = None\n"
        "    self.n = self.env.stat()['entries']\n" + ENV_PROPERTY,
        # a guarded helper called in __init__
        "def __init__(self, path):\n    self.path = path\n    self._env = None\n"
        "    self.n = self._open().stat()['entries']\n" + OPEN_HELPER,
        # through a second helper
        "def __init__(self, path):\n    self.path = path\n    self._env = None\n"
        "    self._index()\n"
        "def _index(self):\n    self.keys = list(self._open().stat())\n" + OPEN_HELPER,
        # len(self) in __init__, __len__ opening
        "def __init__(self, path):\n    self.path = path\n    self._env = None\n"
        "    self.order = list(range(len(self)))\n"
        "def __len__(self):\n    return self._open().stat()['entries']\n" + OPEN_HELPER,
        # a cached_property read in __init__ stores its value in __dict__
        "@functools.cached_property\ndef env(self):\n    return lmdb.open(self.path)\n"
        "def __init__(self, path):\n    self.path = path\n    self.n = self.env.stat()['entries']\n",
        # a dataclass's __post_init__ runs in the parent like __init__
        "def __post_init__(self):\n    self._env = None\n    self.n = self._open().stat()\n"
        + OPEN_HELPER,
        # __len__ alone: a shuffling DataLoader calls it in the parent
        "def __init__(self, path):\n    self.path = path\n    self._env = None\n"
        "def __len__(self):\n    return self.env.stat()['entries']\n" + ENV_PROPERTY,
        # opened, then only closed: a closed file still does not pickle
        "def __init__(self, path):\n    self.fh = open(path)\n    self.lines = self.fh.readlines()\n"
        "    self.finish()\n"
        "def finish(self):\n    self.fh.close()\n",
        # the helper clears another attribute, or only under an unrelated flag
        "def __init__(self, path):\n    self.fh = open(path)\n    self.close()\n"
        "def close(self):\n    self.fh.close()\n    self.other = None\n",
        "def __init__(self, path, keep=False):\n    self.keep = keep\n    self.fh = open(path)\n"
        "    self.close()\n"
        "def close(self):\n    if not self.keep:\n        self.fh = None\n",
    ],
)
def test_opened_in_the_parent(body: str) -> None:
    assert attributes(body) != []


@pytest.mark.parametrize(
    ("body", "tail"),
    [
        # only __getitem__ opens
        (
            "def __init__(self, path):\n    self.path = path\n    self._env = None\n"
            "def __len__(self):\n    return 4\n" + ENV_PROPERTY + GETITEM,
            "",
        ),
        # a cached_property first read in a worker
        (
            "@functools.cached_property\ndef env(self):\n    return lmdb.open(self.path)\n"
            "def __init__(self, path):\n    self.path = path\n"
            "def __getitem__(self, i):\n    return self.env.stat()\n",
            "",
        ),
        # __init__ peeks with its own handle, the lazy one waits for the worker
        (
            "def __init__(self, path):\n    self.path = path\n    self._env = None\n"
            "    with lmdb.open(path) as env:\n        self.n = env.stat()['entries']\n"
            + OPEN_HELPER
            + GETITEM,
            "",
        ),
        # opened by a worker_init_fn in each worker, never in the parent
        (
            "def __init__(self, path):\n    self.path = path\n    self.db = None\n"
            "def open_db(self):\n    self.db = lmdb.open(self.path)\n",
            "\n\ndef worker_init_fn(worker_id):\n    get_worker_info().dataset.open_db()\n",
        ),
        (
            "def __init__(self, path):\n    self.path = path\n    self.db = None\n"
            "def open_db(self, worker_id=0):\n    self.db = lmdb.open(self.path)\n",
            "\n\nds = D('x')\nloader = dict(worker_init_fn=ds.open_db)\n",
        ),
        # a helper that closes and sets the attribute to None
        (
            "def __init__(self, path):\n    self.fh = open(path)\n    self.lines = self.fh.readlines()\n"
            "    self.close()\n"
            "def close(self):\n    if self.fh is not None:\n        self.fh.close()\n"
            "    self.fh = None\n",
            "",
        ),
        (
            "def __init__(self, path):\n    self.fh = open(path)\n"
            "    self.db = sqlite3.connect(path)\n    self.release()\n"
            "def release(self):\n    for name in ('fh', 'db'):\n"
            "        getattr(self, name).close()\n        setattr(self, name, None)\n",
            "",
        ),
        # cleared under a test of the attribute itself: None either way
        (
            "def __init__(self, path):\n    self.fh = open(path)\n    self.lines = self.fh.readlines()\n"
            "    if self.fh is not None:\n        self.fh.close()\n        self.fh = None\n",
            "",
        ),
        # cleared in a `finally:`
        (
            "def __init__(self, path):\n    try:\n        self.fh = open(path)\n"
            "        self.lines = self.fh.readlines()\n    finally:\n        self.close()\n"
            "def close(self):\n    self.fh.close()\n    self.fh = None\n",
            "",
        ),
        # opened through a guarded helper, then cleared in __init__
        (
            "def __init__(self, path):\n    self.path = path\n    self._env = None\n"
            "    self.n = self._open().stat()['entries']\n    self._close()\n"
            "def _close(self):\n    if self._env is not None:\n        self._env.close()\n"
            "        self._env = None\n" + OPEN_HELPER,
            "",
        ),
    ],
)
def test_not_in_the_parent_state(body: str, tail: str) -> None:
    assert attributes(body, tail) == []
