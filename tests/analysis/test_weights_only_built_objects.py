"""CKPT010 through an object a helper built and trained (`trainer = _trained()` or
`trainer, n = _trained()`): what the helper's flow knew the object's attributes held when it
returned it (a method it called stored a numpy scalar) is what the caller reads; and
`ctrl = controller or Ctrl()` of a parameter the call left at its `None` default is the
`Ctrl()`. VALID and INVALID."""

from __future__ import annotations

import pytest
from ckpt_lsp.findings import Finding
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import dataclasses

import numpy as np
import scipy.optimize
import scipy.stats
import torch


@dataclasses.dataclass
class Config:
    epochs: int = 3

    @classmethod
    def from_dict(cls, raw):
        return cls(**raw)

    @classmethod
    def describe(cls, raw):
        return dict(raw)

    @classmethod
    def trained(cls, epochs):
        cfg = cls()
        cfg.epochs = epochs
        return cfg

    def summary(self):
        return f"{self.epochs} epochs"

    @property
    def doubled(self):
        return self.epochs * 2


class Trainer:
    def __init__(self):
        self.losses = []
        self.best = 0.0
        self.rate = 0.0

    def train(self):
        self.losses.append(1.0)
        self.best = np.min(self.losses)
        self.rate = np.linalg.norm(np.ones(3)) / 3


class Clean:
    def __init__(self):
        self.best = 0.0

    def train(self):
        self.best = float(np.min([1.0, 2.0]))


"""


def _wo(source: str) -> list[Finding]:
    return weights_only_findings(HEADER, source)


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


INVALID = [
    (
        "the helper returns the trained object",
        "def _trained():\n"
        "    t = Trainer()\n"
        "    t.train()\n"
        "    return t\n"
        "def save(p):\n"
        "    t = _trained()\n"
        '    torch.save({"best": t.best, "rate": t.rate}, p)\n',
        [(7, "best"), (7, "rate")],
    ),
    (
        "the helper returns the trained object first in a tuple",
        "def _trained(n=2):\n"
        "    t = Trainer()\n"
        "    t.train()\n"
        "    return t, n\n"
        "def save(p):\n"
        "    t, n = _trained()\n"
        "    ckpt = {}\n"
        '    ckpt["best"] = t.best\n'
        "    torch.save(ckpt, p)\n",
        [(8, "best")],
    ),
    (
        "a helper's `param or Default()` with the parameter left at None",
        "def solve(n, controller=None):\n"
        "    ctrl = controller or Clean()\n"
        "    return n, ctrl\n"
        "def save(p):\n"
        "    n, ctrl = solve(3)\n"
        '    torch.save({"ctrl": ctrl}, p)\n',
        [(6, "ctrl")],
    ),
    (
        "an object a method keeps from a helper's tuple, trained in the helper; the return "
        "calls a function that is not handed it",
        "def solve(n):\n"
        "    t = Trainer()\n"
        "    t.train()\n"
        "    return np.ones(n), t\n"
        "class Owner:\n"
        "    def prepare(self):\n"
        "        x, self.inner = solve(3)\n"
        "        self.kept = _built_trained()\n"
        "def _built_trained():\n"
        "    t = Trainer()\n"
        "    t.train()\n"
        "    return t\n"
        "def save(p):\n"
        "    o = Owner()\n"
        "    o.prepare()\n"
        "    inner = o.inner\n"
        '    torch.save({"best": inner.best, "k": o.kept.rate}, p)\n',
        [(17, "best"), (17, "k")],
    ),
    (
        "an instance a classmethod builds, and scipy results",
        "def save(p):\n"
        '    cfg = Config.from_dict({"epochs": 2})\n'
        "    res = scipy.optimize.minimize_scalar(lambda t: (t - 1.0) ** 2)\n"
        "    fit = scipy.stats.linregress([0.0, 1.0, 2.0], [0.0, 1.0, 3.0])\n"
        '    torch.save({"cfg": cfg, "fun": res.fun, "slope": fit.slope}, p)\n',
        [(5, "cfg"), (5, "fun"), (5, "slope")],
    ),
    (
        "torch's named tuples, a Sobol engine, an estimator's feature names",
        "from sklearn.feature_extraction.text import TfidfVectorizer\n"
        "\n"
        "\n"
        "def save(p, texts):\n"
        "    x = torch.tensor([3.0, 1.0, 2.0])\n"
        "    tfidf = TfidfVectorizer().fit(texts)\n"
        '    torch.save({"top2": torch.topk(x, 2), "engine": torch.quasirandom.SobolEngine(2),\n'
        '                "terms": tfidf.get_feature_names_out()}, p)\n',
        [(7, "top2"), (7, "engine"), (8, "terms")],
    ),
    (
        "an instance a classmethod builds by name, and a method read without a call",
        "def save(p):\n"
        "    cfg = Config.trained(3)\n"
        '    torch.save({"cfg": cfg, "summary": cfg.summary}, p)\n',
        [(3, "cfg"), (3, "summary")],
    ),
]

VALID = [
    (
        "the method stored a Python float",
        "def _trained():\n"
        "    c = Clean()\n"
        "    c.train()\n"
        "    return c\n"
        "def save(p):\n"
        "    c = _trained()\n"
        '    torch.save({"best": c.best}, p)\n',
    ),
    (
        "the helper never trained it: the starting literal",
        "def _built():\n"
        "    t = Trainer()\n"
        "    return t\n"
        "def save(p):\n"
        "    t = _built()\n"
        '    torch.save({"best": t.best}, p)\n',
    ),
    (
        "the caller stores a Python number over it",
        "def _trained():\n"
        "    t = Trainer()\n"
        "    t.train()\n"
        "    return t\n"
        "def save(p):\n"
        "    t = _trained()\n"
        "    t.best = float(t.best)\n"
        '    torch.save({"best": t.best}, p)\n',
    ),
    (
        "the return calls something that may change the object",
        "def _reset(t):\n"
        "    t.best = 0.0\n"
        "    return 1\n"
        "def _trained():\n"
        "    t = Trainer()\n"
        "    t.train()\n"
        "    return t, _reset(t)\n"
        "def save(p):\n"
        "    t, n = _trained()\n"
        '    torch.save({"best": t.best}, p)\n',
    ),
    (
        "a method keeps a helper's object, then the caller stores a float in it",
        "def solve(n):\n"
        "    t = Trainer()\n"
        "    t.train()\n"
        "    return np.ones(n), t\n"
        "class Owner:\n"
        "    def prepare(self):\n"
        "        x, self.inner = solve(3)\n"
        "        self.inner.best = 1.0\n"
        "def save(p):\n"
        "    o = Owner()\n"
        "    o.prepare()\n"
        '    torch.save({"best": o.inner.best}, p)\n',
    ),
    (
        "the tuple returned hands the object to a call",
        "def _reset(t):\n"
        "    t.best = 0.0\n"
        "    return 1\n"
        "def solve():\n"
        "    t = Trainer()\n"
        "    t.train()\n"
        "    return _reset(t), t\n"
        "class Owner:\n"
        "    def prepare(self):\n"
        "        n, self.inner = solve()\n"
        "def save(p):\n"
        "    o = Owner()\n"
        "    o.prepare()\n"
        '    torch.save({"best": o.inner.best}, p)\n',
    ),
    (
        "a method keeps a helper's object, then hands `self` on or calls its own method",
        "def solve(n):\n"
        "    t = Trainer()\n"
        "    t.train()\n"
        "    return np.ones(n), t\n"
        "def _calm(owner):\n"
        "    owner.inner.best = 0.5\n"
        "class Owner:\n"
        "    def prepare(self):\n"
        "        x, self.inner = solve(3)\n"
        "        _calm(self)\n"
        "    def again(self):\n"
        "        x, self.inner = solve(3)\n"
        "        self.calm()\n"
        "    def calm(self):\n"
        "        self.inner.best = 0.5\n"
        "def save(p):\n"
        "    o = Owner()\n"
        "    o.prepare()\n"
        "    q = Owner()\n"
        "    q.again()\n"
        '    torch.save({"best": o.inner.best, "q": q.inner.best}, p)\n',
    ),
    (
        "a classmethod returning something else, and scipy results as Python values",
        "def save(p):\n"
        '    raw = Config.describe({"epochs": 2})\n'
        "    res = scipy.optimize.minimize_scalar(lambda t: (t - 1.0) ** 2)\n"
        "    fit = scipy.stats.linregress([0.0, 1.0, 2.0], [0.0, 1.0, 3.0])\n"
        '    torch.save({"raw": raw, "fun": float(res.fun), "nit": res.nit,\n'
        '                "slope": float(fit.slope), "cfg": dataclasses.asdict(Config())}, p)\n',
    ),
    (
        "their tensors and plain values",
        "from sklearn.feature_extraction.text import TfidfVectorizer\n"
        "\n"
        "\n"
        "def save(p, texts):\n"
        "    x = torch.tensor([3.0, 1.0, 2.0])\n"
        "    values, indices = torch.topk(x, 2)\n"
        "    tfidf = TfidfVectorizer().fit(texts)\n"
        '    torch.save({"values": values, "indices": torch.sort(x).indices, "top": torch.topk(x, 2)[0],\n'
        '                "terms": tfidf.get_feature_names_out().tolist()}, p)\n',
    ),
    (
        "the method called, a property, the method's name",
        "def save(p):\n"
        "    cfg = Config.trained(3)\n"
        '    torch.save({"summary": cfg.summary(), "doubled": cfg.doubled, "name": "summary"}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name
