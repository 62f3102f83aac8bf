"""CKPT010 through what a project object holds (analysis/object_effects.py): a helper's tuple
unpacked into `self` attributes, a history list of dict displays, a fluent `Cls(...).fit()`
that returns `self`, and an object held in an attribute whose method stores into it.

Decided (precision first): an element the helper's returns do not agree on, a dict holding
only loadable values, a method that does not return `self`, or a held object the caller
replaced leave the attribute unknown, so nothing is reported."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_rows

HEADER = """\
import numpy as np
import torch


def stats(x):
    return x.mean(axis=0), x.std(axis=0) + 1e-6


def loose(x):
    if x is None:
        return 0.0, 1.0
    return x.mean(axis=0), float(x.std())


class Stopper:
    def __init__(self, patience=3):
        self.patience = patience
        self.best = None

    def step(self, score):
        if self.best is None or score > self.best:
            self.best = score


class Trainer:
    def __init__(self, n=4):
        x = np.ones((n, 3))
        self.mu, self.sigma = stats(x)
        self.lo, self.hi = loose(x)
        self.stopper = Stopper(2)
        self.history = []
        self.clean = []

    def score(self):
        return np.ones(3).mean()

    def fit(self, epochs=2):
        for epoch in range(epochs):
            acc = self.score()
            self.history.append({"epoch": epoch, "acc": acc})
            self.clean.append({"epoch": epoch, "acc": float(acc)})
            self.stopper.step(acc)
        return self

    def run(self):
        self.fit()
        return 1.0
"""


def _rows(source: str) -> list[tuple[int, str | None]]:
    return sorted(weights_only_rows(HEADER, source))


INVALID = [
    (
        "a helper's tuple unpacked into self attributes in __init__",
        """
        def save(p):
            t = Trainer(3)
            torch.save({"sigma": t.sigma, "m": t.mu.mean()}, p)
        """,
        [(4, "m"), (4, "sigma")],
    ),
    (
        "a fluent fit() returning self: the history of dicts holding numpy scalars",
        """
        def save(p):
            t = Trainer().fit()
            torch.save({"history": t.history, "sigma": t.sigma}, p)
        """,
        [(4, "history"), (4, "sigma")],
    ),
    (
        "the held stopper's best, stored by its step() over a None placeholder",
        """
        def save(p):
            t = Trainer()
            t.fit(3)
            torch.save({"best": t.stopper.best}, p)
        """,
        [(5, "best")],
    ),
    (
        "the held stopper through a fluent fit()",
        """
        def save(p):
            t = Trainer(5).fit()
            torch.save({"best": t.stopper.best, "patience": t.stopper.patience}, p)
        """,
        [(4, "best")],
    ),
]

VALID = [
    (
        "an element that loads on a path of the helper, a history of floats",
        """
        def save(p):
            t = Trainer().fit()
            torch.save({"hi": t.hi, "clean": t.clean}, p)
        """,
    ),
    (
        "a method that does not return self: the result is no trainer",
        """
        def save(p):
            t = Trainer().run()
            torch.save({"t": t}, p)
        """,
    ),
    (
        "the caller replaced the held stopper before fit()",
        """
        def save(p):
            t = Trainer()
            t.stopper = Stopper(1)
            t.stopper.best = 5.0
            t.fit()
            torch.save({"best": t.stopper.best}, p)
        """,
    ),
    (
        "a fresh trainer's history and stopper: nothing stored yet",
        """
        def save(p):
            t = Trainer()
            torch.save({"history": t.history, "best": t.stopper.best}, p)
        """,
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert _rows(source) == expected, name


@pytest.mark.parametrize(("name", "source"), VALID, ids=[c[0] for c in VALID])
def test_valid(name: str, source: str) -> None:
    assert _rows(source) == [], name


def test_a_counter_of_numpy_items_and_an_array_indexed_by_an_array() -> None:
    """`Counter(arr)` is keyed by numpy items; `np.minimum(y, 2)[idx]` (an index array) can
    only be an array's rows. A Counter of `.tolist()` items, a count read from the Counter
    and a value indexed by a constant load or are not known."""
    source = """
    from collections import Counter

    def save(p):
        y = np.minimum(np.ones(4), 2)
        idx = np.arange(2)
        counts = Counter(y[idx])
        torch.save({"c": counts, "rows": y[idx], "plain": Counter(y[idx].tolist()),
                    "n": Counter(y.tolist())[1.0], "first": np.minimum(1.0, 2.0)}, p)
    """
    assert _rows(source) == [(8, "c"), (8, "rows"), (9, "first")]


SEARCH = """
from dataclasses import asdict, dataclass


@dataclass
class Best:
    trial: int = -1
    hidden: int = 16
    score: float = float("-inf")
    note: str = "none"


def objective(hidden):
    return -np.ones(2).mean(), hidden


class Search:
    def __init__(self):
        self.best = Best()

    def run(self):
        for t in range(3):
            params = {"hidden": np.int64(8)}
            score, _ = objective(params["hidden"])
            if score > self.best.score:
                self.best = Best(trial=t, score=score, **params)
        return self

    def run_plain(self):
        for t in range(3):
            score, _ = objective(4)
            if score > self.best.score:
                self.best = Best(t, 4, float(score))
        return self
"""


def test_a_dataclass_a_method_builds_is_read_field_by_field() -> None:
    """`self.best = Best(trial=t, score=score, **params)` in a method: `best.score` holds the
    numpy score passed (the literal default is a placeholder), `best.hidden` what the dict's
    key holds; `best = search.best` is the same object, and `asdict(best)` only reads it.
    A field passed as a Python number, or by a `**dict` key not known, stays unknown."""
    source = (
        SEARCH
        + """
def save(p):
    s = Search().run()
    best = s.best
    kept = asdict(best)
    torch.save({"score": best.score, "s": s.best.score, "trial": best.trial,
                "note": best.note, "n": len(kept), "hidden": best.hidden}, p)


def save_plain(p):
    s = Search().run_plain()
    torch.save({"score": s.best.score, "hidden": s.best.hidden}, p)
"""
    )
    assert _rows(source) == [(40, "s"), (40, "score"), (41, "hidden")]


def test_a_generator_choice_of_a_list_of_numbers_or_strings_is_one_numpy_item() -> None:
    """`rng.choice([8, 16])` (or a module-level table's list) is one numpy item;
    `rng.choice(5)` a Python int, `rng.choice([None, 1])` the object itself: not judged."""
    source = """
    SPACE = {"hidden": [8, 16]}
    OPTS = ("adam", "sgd")

    def save(p):
        rng = np.random.default_rng(0)
        torch.save({"h": rng.choice(SPACE["hidden"]), "o": rng.choice(OPTS),
                    "l": rng.choice([0.1, 0.2]), "n": rng.choice(5), "x": rng.choice([None, 1])}, p)
    """
    assert _rows(source) == [(7, "h"), (7, "o"), (8, "l")]
