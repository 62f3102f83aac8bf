"""CKPT010 through containers: a dict spread into the checkpoint (`dict(model=..., **extra)`,
`{**meta}`), a name each `if` arm binds to its own display, a saver's parameter spread in
(`state.update(extra)`) followed to the caller's dict; a project object's dict attribute
filled key by key by a method (`d.cache["probs"]`), and an attribute `__init__` never sets
(`min(t.per_class.values())`); a project object called (`self.schedule(step)`): what its
`__call__` returns; a class's own saving method reading a key another method stored
(`self.stats["mean"]`). VALID and INVALID."""

from __future__ import annotations

import pytest
from ckpt_lsp.findings import Finding
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import collections
from dataclasses import dataclass
import numpy as np
import torch


@dataclass
class Plan:
    steps: int = 2


class Cache:
    def __init__(self):
        self.cache = {}
        self.n = 0

    def fill(self):
        x = torch.randn(3)
        self.cache["logits"] = x
        self.cache["probs"] = x.numpy()

    def step(self):
        if not self.cache:
            self.fill()
        self.n += 1

    def reset(self):
        self.cache = self.load()

    def load(self):
        return {}


class Evaluator:
    def __init__(self):
        self.epoch = 0

    def fit(self, epochs):
        for e in range(epochs):
            self.epoch = e
            preds = np.arange(4)
            self.per_class = {c: np.mean(preds == c) for c in range(3)}


class Saver:
    def __init__(self):
        self.history = collections.defaultdict(list)

    def save_checkpoint(self, path, extra=None):
        state = {"epoch": 1}
        if extra:
            state.update(extra)
        torch.save(state, path)


"""


def _wo(source: str) -> list[Finding]:
    return weights_only_findings(HEADER, source)


def _rows(source: str) -> list[tuple[int, str | None]]:
    return weights_only_rows(HEADER, source)


INVALID = [
    (
        "a local dict spread by dict(**extra)",
        "def save(p):\n"
        '    extra = {"best": np.float64(0.5)}\n'
        "    ckpt = dict(epoch=1, **extra)\n"
        "    torch.save(ckpt, p)\n",
        [(2, "best")],
    ),
    (
        "a dict() call spread in a display",
        "def save(p):\n"
        "    meta = dict(best=np.float64(0.5))\n"
        '    torch.save({"epoch": 1, **meta}, p)\n',
        [(2, "best")],
    ),
    (
        "a display built in one if arm, another in the else",
        "def save(p, plan):\n"
        "    plan = Plan()\n"
        "    if plan.steps > 1:\n"
        '        extra = {"plan": plan}\n'
        "    else:\n"
        '        extra = {"steps": plan.steps}\n'
        "    torch.save(dict(epoch=1, **extra), p)\n",
        [(4, "plan")],
    ),
    (
        "a saver method spreading its parameter in: the caller's dict",
        "def save(p):\n"
        "    s = Saver()\n"
        "    extra = dict(epoch=2, history=s.history)\n"
        "    s.save_checkpoint(p, extra=extra)\n",
        [(3, "history")],
    ),
    (
        "a key a method stored in an attribute's dict",
        "def save(p):\n"
        "    c = Cache()\n"
        "    c.step()\n"
        '    torch.save({"logits": c.cache["logits"], "probs": c.cache["probs"]}, p)\n',
        [(4, "probs")],
    ),
    (
        "the same through .get",
        "def save(p):\n"
        "    c = Cache()\n"
        "    c.fill()\n"
        '    torch.save({"probs": c.cache.get("probs")}, p)\n',
        [(4, "probs")],
    ),
    (
        "an attribute only a method's loop sets: its values",
        "def save(p):\n"
        "    t = Evaluator()\n"
        "    t.fit(2)\n"
        '    torch.save({"worst": min(t.per_class.values())}, p)\n',
        [(4, "worst")],
    ),
    (
        "a saver spreading its parameter or an empty dict",
        "class OrSaver:\n"
        "    def save_checkpoint(self, path, extra=None):\n"
        '        state = {"epoch": 1}\n'
        "        state.update(extra or {})\n"
        "        torch.save(state, path)\n"
        "def save(p):\n"
        "    s = OrSaver()\n"
        '    s.save_checkpoint(p, extra={"best": np.float64(0.5), "n": 3})\n'
        '    OrSaver().save_checkpoint(p, extra={"best": np.float64(0.5)})\n',
        [(8, "best"), (9, "best")],
    ),
]

VALID = [
    (
        "the other keys of the dict",
        "def save(p):\n"
        "    c = Cache()\n"
        "    c.fill()\n"
        '    torch.save({"logits": c.cache["logits"]}, p)\n',
    ),
    (
        "the caller converts the key before saving",
        "def save(p):\n"
        "    c = Cache()\n"
        "    c.fill()\n"
        '    c.cache["probs"] = torch.from_numpy(c.cache["probs"])\n'
        '    torch.save({"probs": c.cache["probs"]}, p)\n',
    ),
    (
        "an alias of the dict is changed",
        "def save(p):\n"
        "    c = Cache()\n"
        "    c.fill()\n"
        "    d = c.cache\n"
        '    d["probs"] = d["probs"].tolist()\n'
        '    torch.save({"probs": c.cache["probs"]}, p)\n',
    ),
    (
        "a later method rebinds the dict",
        "def save(p):\n"
        "    c = Cache()\n"
        "    c.fill()\n"
        "    c.reset()\n"
        '    torch.save({"probs": c.cache["probs"]}, p)\n',
    ),
    (
        "both if arms plain",
        "def save(p, flag):\n"
        "    if flag:\n"
        '        extra = {"best": 0.5}\n'
        "    else:\n"
        '        extra = {"best": float(np.float64(0.5))}\n'
        "    torch.save(dict(epoch=1, **extra), p)\n",
    ),
    (
        "a saver method given a plain dict",
        "def save(p):\n"
        "    s = Saver()\n"
        "    s.save_checkpoint(p, extra=dict(history=dict(s.history)))\n",
    ),
    (
        "an attribute the class body defaults",
        "class Defaulted(Evaluator):\n"
        "    per_class = None\n"
        "def save(p):\n"
        "    t = Defaulted()\n"
        "    t.fit(2)\n"
        '    torch.save({"worst": min(t.per_class.values())}, p)\n',
    ),
    (
        "a saver spreading its parameter or an empty dict, given plain values",
        "class OrSaver:\n"
        "    def save_checkpoint(self, path, extra=None):\n"
        '        state = {"epoch": 1}\n'
        "        state.update(extra or {})\n"
        "        torch.save(state, path)\n"
        "def save(p):\n"
        "    s = OrSaver()\n"
        '    s.save_checkpoint(p, extra={"best": 0.5, "n": 3})\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name


CALLED = """\
class Schedule:
    def __init__(self, total=10):
        self.values = np.linspace(4.0, 1.0, total)

    def __call__(self, step):
        return self.values[step]

    def as_float(self, step):
        return float(self.values[step])


class Distiller:
    def __init__(self):
        self.schedule = Schedule()
        self.step = 0

    def distill_step(self):
        temp = self.schedule(self.step)
        self.step += 1
        self.temperature = temp


SCHEDULE = Schedule()


"""

CALLED_INVALID = [
    (
        "a method stored what a held object's __call__ returns",
        "def save(p):\n"
        "    d = Distiller()\n"
        "    d.distill_step()\n"
        '    torch.save({"t": d.temperature}, p)\n',
        [(4, "t")],
    ),
    (
        "a local object called",
        'def save(p):\n    s = Schedule()\n    torch.save({"t": s(2)}, p)\n',
        [(3, "t")],
    ),
    (
        "a module-level object called",
        'def save(p):\n    torch.save({"t": SCHEDULE(2)}, p)\n',
        [(2, "t")],
    ),
]

CALLED_VALID = [
    (
        "its plain method",
        'def save(p):\n    s = Schedule()\n    torch.save({"t": s.as_float(2)}, p)\n',
    ),
    (
        "an nn.Module called (its forward is torch's business)",
        "class Net(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return np.ones(3)\n"
        "def save(p):\n"
        "    net = Net()\n"
        '    torch.save({"y": net(torch.ones(3))}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), CALLED_INVALID)
def test_called_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(weights_only_rows(HEADER + CALLED, source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), CALLED_VALID)
def test_called_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER + CALLED, source) == [], name


FRAMES = """\
import pandas as pd


class Logger:
    def __init__(self):
        self.history = []

    def log(self, **metrics):
        self.history.append(metrics)

    def frame(self):
        return pd.DataFrame(self.history)

    def summary(self):
        df = self.frame()
        return {c: df[c].mean() for c in df.columns if c != "step"}

    def summary_floats(self):
        df = self.frame()
        return {c: float(df[c].mean()) for c in df.columns}


"""

FRAMES_INVALID = [
    (
        "a column's mean per label of a frame's columns",
        "def save(p):\n"
        "    log = Logger()\n"
        "    summary = log.summary()\n"
        '    torch.save({"seg": summary["seg"]}, p)\n',
        [(4, "seg")],
    ),
    (
        "the same in a loop",
        "def save(p):\n"
        "    df = pd.DataFrame({'a': [1.0]})\n"
        "    stats = {}\n"
        "    for col in list(df.columns):\n"
        "        stats[col] = df[col].std()\n"
        '    torch.save({"stats": stats}, p)\n',
        [(5, None)],
    ),
]

FRAMES_VALID = [
    (
        "floats of them",
        'def save(p):\n    log = Logger()\n    torch.save({"s": log.summary_floats()}, p)\n',
    ),
    (
        "the labels themselves",
        "def save(p):\n"
        "    df = pd.DataFrame({'a': [1.0]})\n"
        '    torch.save({"cols": [c for c in df.columns], "n": list(df.columns)}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), FRAMES_INVALID)
def test_frames_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(weights_only_rows(HEADER + FRAMES, source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), FRAMES_VALID)
def test_frames_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER + FRAMES, source) == [], name


PAIRS_INVALID = [
    (
        "the top pair's score of a dict zipped from an array, sorted",
        "def save(p, names):\n"
        "    imp = dict(zip(names, np.ones(3)))\n"
        "    ranked = sorted(imp.items(), key=lambda kv: kv[1], reverse=True)\n"
        '    torch.save({"top": ranked[0][1], "last": ranked[-1][-1], "all": ranked}, p)\n',
        [(4, "top"), (4, "last"), (4, "all")],
    ),
    (
        "the best pair by max, and a comprehension over the items",
        "def save(p, names):\n"
        "    imp = dict(zip(names, np.ones(3)))\n"
        "    best = max(imp.items(), key=lambda kv: kv[1])\n"
        '    torch.save({"best": best[1], "r": {k: round(v, 2) for k, v in imp.items()}}, p)\n',
        [(4, "best"), (4, "r")],
    ),
    (
        "a categorical column's categories and codes",
        "import pandas as pd\n"
        "def save(p):\n"
        '    df = pd.DataFrame({"region": ["n", "s"]})\n'
        '    regions = df["region"].astype("category")\n'
        '    torch.save({"cats": regions.cat.categories, "codes": regions.cat.codes}, p)\n',
        [(5, "cats"), (5, "codes")],
    ),
]

PAIRS_VALID = [
    (
        "the names and floats of the pairs",
        "def save(p, names):\n"
        "    imp = dict(zip(names, np.ones(3)))\n"
        "    ranked = sorted(imp.items(), key=lambda kv: kv[1], reverse=True)\n"
        '    torch.save({"top": str(ranked[0][0]), "f": {str(k): float(v) for k, v in ranked},'
        ' "n": ranked[0][0]}, p)\n',
    ),
    (
        "a dict zipped from a list",
        "def save(p, names):\n"
        "    imp = dict(zip(names, np.ones(3).tolist()))\n"
        '    torch.save({"imp": imp, "top": sorted(imp.items())[0][1]}, p)\n',
    ),
    (
        "the categories as a list",
        "import pandas as pd\n"
        "def save(p):\n"
        '    df = pd.DataFrame({"region": ["n", "s"]})\n'
        '    regions = df["region"].astype("category")\n'
        '    torch.save({"cats": regions.cat.categories.tolist()}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), PAIRS_INVALID)
def test_pairs_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), PAIRS_VALID)
def test_pairs_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name


MERGES_INVALID = [
    (
        "ckpt.update(**extra) and ckpt |= meta",
        "def save(p):\n"
        '    extra = {"best": np.float64(0.5)}\n'
        '    meta = {"mean": np.ones(2)}\n'
        '    ckpt = {"epoch": 1}\n'
        "    ckpt.update(**extra)\n"
        "    ckpt |= meta\n"
        "    torch.save(ckpt, p)\n",
        [(2, "best"), (3, "mean")],
    ),
    (
        "base | {...} written and bound",
        "def save(p):\n"
        '    base = {"epoch": 1}\n'
        '    ckpt = base | {"best": np.float64(0.5)}\n'
        '    torch.save(ckpt | {"arr": np.ones(2)}, p)\n',
        [(3, "best"), (4, "arr")],
    ),
    (
        "a loop over the items of a dict of numpy scalars",
        "def save(p, names):\n"
        "    imp = dict(zip(names, np.ones(3)))\n"
        "    best = {}\n"
        "    for name, score in imp.items():\n"
        "        best = {name: score}\n"
        '    torch.save({"best": best}, p)\n',
        [(5, None)],
    ),
]

MERGES_VALID = [
    (
        "two arrays or-ed are judged as one value",
        'def save(p):\n    a = torch.ones(2, dtype=torch.bool)\n    torch.save({"m": a | a}, p)\n',
    ),
    (
        "plain values merged",
        "def save(p):\n"
        '    ckpt = {"epoch": 1} | {"best": 0.5}\n'
        "    ckpt |= dict(lr=1e-3)\n"
        "    ckpt.update(**{'n': 2})\n"
        "    torch.save(ckpt, p)\n",
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), MERGES_INVALID)
def test_merges_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), MERGES_VALID)
def test_merges_valid(name: str, source: str) -> None:
    assert _wo(source) == [], name


OWN = """\
class Stats:
    def __init__(self):
        self.stats = {}
        self.other = {"n": 0}

    def fit(self, x):
        self.stats["mean"] = np.mean(x)
        self.stats["n"] = len(x)
        self.other["best"] = np.max(x)

    def reset_other(self):
        self.other.clear()

"""

OWN_INVALID = [
    (
        "a saving method reads a key another method stored",
        "    def save(self, path):\n"
        '        torch.save({"mean": self.stats["mean"], "n": self.stats["n"]}, path)\n',
        [(2, "mean")],
    ),
    (
        "through .get",
        '    def save(self, path):\n        torch.save({"mean": self.stats.get("mean")}, path)\n',
        [(2, "mean")],
    ),
]

OWN_VALID = [
    (
        "a dict another method clears",
        '    def save(self, path):\n        torch.save({"best": self.other["best"]}, path)\n',
    ),
    (
        "the saving method converts the key first",
        "    def save(self, path):\n"
        '        self.stats["mean"] = float(self.stats["mean"])\n'
        '        torch.save({"mean": self.stats["mean"]}, path)\n',
    ),
    (
        "the saving method changes the dict through an alias",
        "    def save(self, path):\n"
        "        s = self.stats\n"
        '        s["mean"] = 0.0\n'
        '        torch.save({"mean": self.stats["mean"]}, path)\n',
    ),
    (
        "a method stores a key not known",
        "    def put(self, k, v):\n"
        "        self.stats[k] = v\n"
        "    def save(self, path):\n"
        '        torch.save({"mean": self.stats["mean"]}, path)\n',
    ),
]


def _own_rows(methods: str) -> list[tuple[int, str | None]]:
    """Rows within `methods`, which continue the class `OWN` starts."""
    rows = weights_only_rows(HEADER, OWN + methods)
    return [(row - OWN.count("\n"), key) for row, key in rows]


@pytest.mark.parametrize(("name", "source", "expected"), OWN_INVALID)
def test_own_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(_own_rows(source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), OWN_VALID)
def test_own_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER, OWN + source) == [], name


LOOKUPS = """\
import dataclasses
import enum


class Task(enum.Enum):
    SEG = "seg"
    DEPTH = "depth"


class Scores:
    def __init__(self):
        self.acc = {}
        self.mixed = {}

    def evaluate(self):
        for c in range(3):
            self.acc[c] = np.mean(np.ones(3) == c)
            self.mixed[c] = np.mean(np.ones(3) == c)
        self.mixed["t"] = torch.ones(2)


"""

LOOKUPS_INVALID = [
    (
        "an Enum member looked up by name, the members listed",
        'def save(p, name):\n    torch.save({"a": Task[name], "m": [t for t in Task]}, p)\n',
        [(2, "a"), (2, "m")],
    ),
    (
        "a loop over an Enum's members",
        "def save(p):\n"
        "    chosen = None\n"
        "    for task in Task:\n"
        "        chosen = task\n"
        '    torch.save({"t": chosen}, p)\n',
        [(5, "t")],
    ),
    (
        "a dataclass copied with dataclasses.replace",
        "@dataclasses.dataclass\n"
        "class Cfg:\n"
        "    lr: float = 0.1\n"
        "def save(p):\n"
        '    torch.save({"c": dataclasses.replace(Cfg(), lr=0.2)}, p)\n',
        [(5, "c")],
    ),
    (
        "a dict attribute a method's loop fills with numpy values under keys not known",
        "def save(p):\n"
        "    s = Scores()\n"
        "    s.evaluate()\n"
        '    torch.save({"worst": min(s.acc.values()), "one": s.acc[0]}, p)\n',
        [(4, "worst"), (4, "one")],
    ),
]

LOOKUPS_VALID = [
    (
        "an Enum's values and names",
        'def save(p):\n    torch.save({"v": [t.value for t in Task], "n": Task["SEG"].name}, p)\n',
    ),
    (
        "the tensor a constant key of the dict holds",
        "def save(p):\n"
        "    s = Scores()\n"
        "    s.evaluate()\n"
        '    torch.save({"t": s.mixed["t"]}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), LOOKUPS_INVALID)
def test_lookups_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(weights_only_rows(HEADER + LOOKUPS, source)) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), LOOKUPS_VALID)
def test_lookups_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER + LOOKUPS, source) == [], name


HISTORY = """\
class History:
    def __init__(self):
        self.history = {"loss": [], "acc": []}

    def train(self, x):
        self.history["loss"].append(np.mean(x))
        self.history["acc"].append(float(np.mean(x)))


"""


def test_a_key_of_a_dict_attribute_a_method_appends_numpy_values_to() -> None:
    source = (
        "def save(p):\n"
        "    h = History()\n"
        "    h.train(np.ones(3))\n"
        '    torch.save({"loss": h.history["loss"], "acc": h.history["acc"]}, p)\n'
    )
    assert weights_only_rows(HEADER + HISTORY, source) == [(4, "loss")]


def test_the_saving_statement_itself_reads_the_whole_dict() -> None:
    source = (
        "def save(p):\n"
        "    c = Cache()\n"
        "    c.fill()\n"
        '    torch.save({"probs": c.cache["probs"], "all": dict(c.cache)}, p)\n'
    )
    assert weights_only_rows(HEADER, source) == [(4, "probs")]


KWARGS = """\
class KwSaver:
    def __init__(self):
        self.history = collections.defaultdict(list)

    def save_checkpoint(self, path, **extra):
        state = {"epoch": 1}
        state.update(extra)
        torch.save(state, path)


def save_state(path, **meta):
    torch.save({"model": 1, **meta}, path)


"""


def test_a_saver_writing_its_keyword_arguments() -> None:
    source = (
        "def run(p):\n"
        "    s = KwSaver()\n"
        "    s.save_checkpoint(p, history=s.history, lr=0.1)\n"
        "    save_state(p, best=np.float64(0.5), ok=1.0)\n"
        "    save_state(p, best=0.5, history=dict(s.history))\n"
    )
    assert sorted(weights_only_rows(HEADER + KWARGS, source)) == [(3, "history"), (4, "best")]
