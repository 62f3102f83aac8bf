"""Stores through `self.__dict__` and shift-augmented stores.

`self.__dict__[key] = v` stores under a key, not into an attribute named `__dict__`:
reporting it as one made `--fix` pop `"__dict__"` from the state and set
`self.__dict__ = None` in `__setstate__`, which breaks every instance. `self.x <<= v`
is a store like `self.x += v`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text
from ckpt_lsp.config import Config
from ckpt_lsp.runner import run_check

HEAD = "import threading\nimport weakref\nimport torch.nn as nn\n\n\nclass M(nn.Module):\n"
INIT = "    def __init__(self):\n        super().__init__()\n        self.hooks = []\n\n"

# Nothing here is an attribute named `__dict__`: no finding, so no fix.
VALID = {
    "subscript store": "    def keep(self, key, v):\n        self.__dict__[key] = weakref.ref(v)\n",
    "update": "    def keep(self, v):\n        self.__dict__.update(ref=weakref.ref(v))\n",
    "setdefault": "    def keep(self, v):\n        self.__dict__.setdefault('r', weakref.ref(v))\n",
    "whole dict": "    def __setstate__(self, state):\n        self.__dict__ = dict(state)\n",
}

# Real stores into attributes: reported as before.
INVALID = {
    "attribute store": ("    def keep(self, v):\n        self.ref = weakref.ref(v)\n", "ref"),
    "shift-augmented": (
        "    def more(self):\n        self.hooks <<= [threading.Lock()]\n",
        "hooks",
    ),
    "right-shift-augmented": (
        "    def more(self):\n        self.hooks >>= [threading.Lock()]\n",
        "hooks",
    ),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_stores_through_self_dict_are_not_an_attribute(name: str) -> None:
    findings = analyze_text(HEAD + INIT + VALID[name])
    assert [f.attribute for f in findings] == []


@pytest.mark.parametrize("name", sorted(INVALID))
def test_stores_into_attributes_are_reported(name: str) -> None:
    method, attribute = INVALID[name]
    # a method that only reads comes first, so the class is cut into pieces
    other = "    def forward(self, x):\n        return x\n\n"
    findings = analyze_text(HEAD + INIT + other + method)
    assert [f.attribute for f in findings] == [attribute]


def test_fix_leaves_a_class_that_stores_through_self_dict_alone(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    source = HEAD + INIT + VALID["subscript store"]
    path.write_text(source)
    result = run_check([tmp_path], Config(root=tmp_path), fix=True, use_cache=False)
    assert result.fixed == 0
    assert result.findings == []
    assert path.read_text() == source
