"""Protocol: a class's own __getstate__/__reduce__ decides what reaches pickle."""

from __future__ import annotations

import textwrap

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text

PREFIX = """\
import threading
from torch import nn
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.other = 1
"""


def run(getstate: str) -> list[str]:
    return [f.attribute for f in analyze_text(PREFIX + textwrap.indent(getstate, "    "))]


@pytest.mark.parametrize(
    "method",
    [
        "def __getstate__(self):\n    s = self.__dict__.copy()\n    s.pop('lock', None)\n    return s\n",
        "def __getstate__(self):\n    s = dict(self.__dict__)\n    del s['lock']\n    return s\n",
        "def __getstate__(self):\n    s = super().__getstate__()\n    s['lock'] = None\n    return s\n",
        "def __getstate__(self):\n    return {k: v for k, v in self.__dict__.items() if k != 'lock'}\n",
        "def __getstate__(self):\n"
        "    return {k: v for k, v in vars(self).items() if k not in ('lock', 'x')}\n",
        "def __getstate__(self):\n    return {'other': self.other}\n",
        "def __getstate__(self):\n    s = self.__dict__.copy()\n"
        "    for k in ('lock',):\n        s.pop(k)\n    return s\n",
        "def __reduce__(self):\n    return (M, ())\n",
        "def __getstate__(self):\n    return self._export()\n",  # unreadable: trusted
    ],
)
def test_getstate_that_leaves_the_attribute_out(method: str) -> None:
    assert run(method) == []


@pytest.mark.parametrize(
    "method",
    [
        "def __getstate__(self):\n    return self.__dict__\n",
        "def __getstate__(self):\n    return dict(self.__dict__)\n",
        "def __getstate__(self):\n    return self.__dict__.copy()\n",
        "def __getstate__(self):\n    s = self.__dict__.copy()\n    s.pop('other')\n    return s\n",
        "def __setstate__(self, state):\n    self.__dict__.update(state)\n",
    ],
)
def test_getstate_that_keeps_it(method: str) -> None:
    assert run(method) == ["lock"]


def test_getstate_inherited_from_a_project_base() -> None:
    source = (
        "import threading\nfrom torch import nn\n"
        "class Base(nn.Module):\n    def __getstate__(self):\n"
        "        s = self.__dict__.copy()\n        s.pop('lock', None)\n        return s\n"
        "class M(Base):\n    def __init__(self):\n        self.lock = threading.Lock()\n"
    )
    assert analyze_text(source) == []


@pytest.mark.parametrize(
    "method",
    [
        "TRANSIENT = ('lock',)\n"
        "def __getstate__(self):\n"
        "    return {k: v for k, v in self.__dict__.items() if k not in self.TRANSIENT}\n",
        "_SKIP = frozenset({'lock'})\n"
        "def __getstate__(self):\n    s = self.__dict__.copy()\n"
        "    for k in self._SKIP:\n        s.pop(k, None)\n    return s\n",
    ],
)
def test_getstate_filtering_by_a_class_constant(method: str) -> None:
    assert run(method) == []


def test_getstate_of_a_mixin_filtering_by_the_subclass_constant() -> None:
    source = (
        "import sqlite3\nfrom torch.utils.data import Dataset\n"
        "class Transient:\n    _unpicklable = ()\n    def __getstate__(self):\n"
        "        state = self.__dict__.copy()\n        for name in self._unpicklable:\n"
        "            state.pop(name, None)\n        return state\n"
        "class D(Transient, Dataset):\n    _unpicklable = ('conn',)\n"
        "    def __init__(self):\n        self.conn = sqlite3.connect(':memory:')\n"
    )
    assert analyze_text(source) == []


def test_getstate_dropping_private_attributes_by_prefix() -> None:
    getstate = (
        "def __getstate__(self):\n"
        "    return {k: v for k, v in vars(self).items() if not k.startswith('_')}\n"
    )
    assert run(getstate) == ["lock"]
    assert run(getstate.replace("'_'", "'l'")) == []


@pytest.mark.parametrize(
    "method",
    [
        "def __getstate__(self):\n    s = self.__dict__.copy()\n"
        "    s.update(dict.fromkeys(['lock', 'x']))\n    return s\n",
        "def __getstate__(self):\n    s = self.__dict__.copy()\n    s.update({'lock': None})\n"
        "    return s\n",
        "def __getstate__(self):\n    s = self.__dict__.copy()\n    s.update(lock=None)\n"
        "    return s\n",
    ],
)
def test_getstate_nulling_through_update(method: str) -> None:
    assert run(method) == []


def test_optimizer_subclass_pickles_only_its_own_fields() -> None:
    source = (
        "import torch\nclass Kron(torch.optim.Optimizer):\n"
        "    def __init__(self, params):\n        self.step_fn = torch.compile(lambda x: x)\n"
        "    def __setstate__(self, state):\n        super().__setstate__(state)\n"
    )
    assert analyze_text(source) == []


SKIP = "SKIP = ('lock', 'fh')\n"


@pytest.mark.parametrize(
    "method",
    [
        # a state dict filled by a filtering loop
        "def __getstate__(self):\n    d = {}\n    for k, v in self.__dict__.items():\n"
        "        if k != 'lock':\n            d[k] = v\n    return d\n",
        "def __getstate__(self):\n    d = dict()\n    for k, v in vars(self).items():\n"
        "        if k not in ('lock', 'fh'):\n            d[k] = v\n    return d\n",
        "def __getstate__(self):\n    d = {}\n    for k, v in list(self.__dict__.items()):\n"
        "        if k in ('lock', 'fh'):\n            continue\n        d[k] = v\n    return d\n",
        "def __getstate__(self):\n    d = {}\n    for k in self.__dict__:\n"
        "        if k == 'lock' or k == 'fh':\n            continue\n"
        "        d[k] = self.__dict__[k]\n    return d\n",
        "def __getstate__(self):\n    d = {}\n    for k, v in self.__dict__.items():\n"
        "        if k in SKIP:\n            pass\n        else:\n            d[k] = v\n    return d\n",
        # a set of names to drop, bound in the method
        "def __getstate__(self):\n    skip = {'lock'}\n"
        "    return {k: v for k, v in vars(self).items() if k not in skip}\n",
        # a value replaced before returning: a weakref swapped for its referent
        "def __getstate__(self):\n    s = self.__dict__.copy()\n    s['lock'] = self.lock_owner()\n"
        "    return s\n",
        "def __getstate__(self):\n    s = self.__dict__.copy()\n    s['lock'] = 0\n    return s\n",
        # a loop over the keys deleting by prefix
        "def __getstate__(self):\n    s = self.__dict__.copy()\n    for k in list(s):\n"
        "        if k.startswith('lo'):\n            del s[k]\n    return s\n",
        # handed to a helper that may prune it, or built by one: not ours to read
        "def __getstate__(self):\n    s = self.__dict__.copy()\n    self._strip(s)\n    return s\n",
        "def __getstate__(self):\n    s = self._export()\n    return s\n",
        # filters by type: not readable, trusted
        "def __getstate__(self):\n    return {k: v for k, v in self.__dict__.items()\n"
        "            if not isinstance(v, type(self.lock))}\n",
        "def __getstate__(self):\n    d = {}\n    for k, v in self.__dict__.items():\n"
        "        if hasattr(v, 'acquire'):\n            continue\n        d[k] = v\n    return d\n",
    ],
)
def test_getstate_shapes_that_drop_the_attribute(method: str) -> None:
    source = SKIP + PREFIX + textwrap.indent(method, "    ")
    assert [f.attribute for f in analyze_text(source)] == []


@pytest.mark.parametrize(
    "method",
    [
        # pops from a copy, returns the original
        "def __getstate__(self):\n    s = self.__dict__.copy()\n    s.pop('lock', None)\n"
        "    return self.__dict__\n",
        # filters the wrong key, or stores every key
        "def __getstate__(self):\n    d = {}\n    for k, v in self.__dict__.items():\n"
        "        if k != '_lock':\n            d[k] = v\n    return d\n",
        "def __getstate__(self):\n    d = {}\n    for k, v in self.__dict__.items():\n"
        "        d[k] = v\n    return d\n",
        # a pruning loop on another prefix, a state only read before it is returned
        "def __getstate__(self):\n    s = self.__dict__.copy()\n    for k in list(s):\n"
        "        if k.startswith('_cache'):\n            del s[k]\n    return s\n",
        "def __getstate__(self):\n    s = self.__dict__.copy()\n    print(len(s))\n    return s\n",
        # the value put back is the lock itself, or a copy of it
        "def __getstate__(self):\n    s = self.__dict__.copy()\n    s['lock'] = self.lock\n"
        "    return s\n",
        "def __getstate__(self):\n    import copy\n    s = self.__dict__.copy()\n"
        "    s['lock'] = copy.copy(self.lock)\n    return s\n",
    ],
)
def test_getstate_shapes_that_keep_the_attribute(method: str) -> None:
    assert run(method) == ["lock"]
