"""CKPT010 through a project object's methods (analysis/object_effects.py): what a method the
save function calls stores in `obj.x`, what it returns, VALID and INVALID.

Decided (precision first): a literal placeholder (`None`, `0.0`, `float("inf")`, `[]`) is
overwritten by the refused value a called method stores; a loadable value stored on any
path, a method the save never calls, a call in one branch only, or the object handed to
another function afterwards leave the attribute unknown, so nothing is reported."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_rows

HEADER = """\
import datetime
from pathlib import Path
import numpy as np
import torch


class Stopper:
    def __init__(self, mode="min"):
        self.best = np.inf if mode == "min" else -np.inf
        self.history = []
        self.best_path = None
        self.started = None
        self.bad = 0

    def step(self, value, where="runs"):
        self.history.append(value)
        self.started = datetime.datetime.now()
        if value < self.best:
            self.best = value
            self.best_path = Path(where)
        else:
            self.bad += 1

    def evaluate(self):
        return np.mean([1.0, 2.0])

    def pick(self, rng):
        return rng.choice(4, size=2), 1
"""


def _rows(source: str) -> list[tuple[int, str | None]]:
    return sorted(weights_only_rows(HEADER, source))


# a trainer whose `fit` stores, then evaluates through methods several calls deep; `deep` is a
# statement of the deepest one
RANKER = """
        class Ranker:
            def __init__(self):
                self.last_loss = None
                self.best = 0.0

            def _encode(self, q):
                return [len(q)]

            def rank(self, q):
                {deep}
                return sorted(self._encode(q))

            def ranks(self, qs):
                return [self.rank(q) for q in qs]

            def evaluate(self, qs):
                return np.mean([len(r) for r in self.ranks(qs)])

            def fit(self, qs):
                self.last_loss = np.mean([1.0])
                self.best = max(self.best, self.evaluate(qs))
                return self

"""

INVALID = [
    (
        "a numpy loss passed to the method that keeps the best (placeholder inf) and history",
        """
        def save(p):
            s = Stopper()
            for loss in np.array([2.0, 1.0]):
                s.step(loss)
            torch.save({"best": s.best, "history": s.history, "bad": s.bad}, p)
        """,
        [(6, "best"), (6, "history")],
    ),
    (
        "a Path and a datetime stored over a None placeholder by the called method",
        """
        def save(p):
            s = Stopper()
            s.step(1.0, "out")
            torch.save({"path": s.best_path, "t": s.started}, p)
        """,
        [(5, "path"), (5, "t")],
    ),
    (
        "an accumulator: max of the attribute and a numpy value",
        """
        class Server:
            def __init__(self):
                self.best_acc = 0.0
            def round(self):
                acc = np.exp(-np.mean([0.1, 0.2]))
                self.best_acc = max(self.best_acc, acc)

        def save(p):
            server = Server()
            server.round()
            torch.save({"best_acc": server.best_acc}, p)
        """,
        [(12, "best_acc")],
    ),
    (
        "embeddings stored as a numpy array by a method, read after it",
        """
        class Trainer:
            def __init__(self):
                self.model = torch.nn.Linear(2, 2)
                self.emb = None
            def train_epoch(self):
                self.emb = self.model.weight.detach().cpu().numpy()

        def save(p):
            trainer = Trainer()
            trainer.train_epoch()
            state = {"model": trainer.model.state_dict()}
            state.update(emb=trainer.emb)
            torch.save(state, p)
        """,
        [(13, "emb")],
    ),
    (
        "what the object's own method returns, whole and unpacked",
        """
        def save(p):
            s = Stopper()
            chosen, n = s.pick(np.random.default_rng(0))
            torch.save({"loss": s.evaluate(), "chosen": chosen, "n": n}, p)
        """,
        [(5, "chosen"), (5, "loss")],
    ),
    (
        "rng.integers without a size on an attribute the class's __init__ sets",
        """
        class Sampler:
            def __init__(self):
                self.rng = np.random.default_rng(0)

        def save(p):
            sampler = Sampler()
            torch.save({"seed": sampler.rng.integers(1 << 31)}, p)
        """,
        [(8, "seed")],
    ),
    (
        "a method ranking through helpers that store nothing keeps what `fit` stored",
        RANKER.format(deep="pass")
        + """
        def save(p):
            r = Ranker().fit(["a"])
            torch.save({"loss": r.last_loss, "best": r.best}, p)
        """,
        [(28, "loss"), (28, "best")],
    ),
]

VALID = [
    (
        "a helper deep down storing a plain value over it",
        RANKER.format(deep="self.last_loss = 0.0")
        + """
        def save(p):
            r = Ranker().fit(["a"])
            torch.save({"loss": r.last_loss}, p)
        """,
    ),
    (
        "a Python float passed: the best and the history load",
        """
        def save(p):
            s = Stopper()
            s.step(float(np.mean([1.0])))
            torch.save({"best": s.best, "history": s.history}, p)
        """,
    ),
    (
        "the method that stores the Path is never called: None is saved",
        """
        def save(p):
            s = Stopper()
            torch.save({"path": s.best_path, "best": s.best, "t": s.started}, p)
        """,
    ),
    (
        "the method is called in one branch only",
        """
        def save(p, go):
            s = Stopper()
            if go:
                s.step(np.float64(1.0))
            torch.save({"best": s.best}, p)
        """,
    ),
    (
        "the object is handed to a helper after the call: it may store anything",
        """
        def reset(obj):
            obj.best = 0.0

        def save(p):
            s = Stopper()
            s.step(np.float64(1.0))
            reset(s)
            torch.save({"best": s.best}, p)
        """,
    ),
    (
        "a refused and a loadable value on different paths: loadable (float('inf') then .item())",
        """
        class Trainer:
            def __init__(self):
                self.best = float("inf")
            def end(self, loss, fast):
                if fast:
                    self.best = np.float64(loss)
                else:
                    self.best = loss.item()

        def save(p):
            t = Trainer()
            t.end(torch.tensor(1.0), False)
            torch.save({"best": t.best}, p)
        """,
    ),
    (
        "the last store on the method's straight path is loadable",
        """
        class Trainer:
            def __init__(self):
                self.best = None
            def end(self):
                self.best = np.mean([1.0])
                self.best = float(self.best)

        def save(p):
            t = Trainer()
            t.end()
            torch.save({"best": t.best}, p)
        """,
    ),
    (
        "a method that sets attributes by name",
        """
        class Trainer:
            def __init__(self):
                self.best = None
            def end(self, **kw):
                self.best = np.mean([1.0])
                for k, v in kw.items():
                    setattr(self, k, v)

        def save(p):
            t = Trainer()
            t.end(best=1.0)
            torch.save({"best": t.best}, p)
        """,
    ),
    (
        "rng.choice without a size is a Python int, rng.random() a float",
        """
        class Sampler:
            def __init__(self):
                self.rng = np.random.default_rng(0)

        def save(p):
            sampler = Sampler()
            torch.save({"c": sampler.rng.choice(5), "r": sampler.rng.random()}, p)
        """,
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert _rows(source) == sorted(expected), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert _rows(source) == [], name


def test_a_refused_container_stays_refused_whatever_a_method_appends() -> None:
    """A deque stays a deque: appending a Python float to it in a called method keeps the
    finding (and an empty list given only floats stays loadable)."""
    source = """
    import collections

    class Tracker:
        def __init__(self):
            self.recent = collections.deque(maxlen=3)
            self.floats = []
        def add(self, value):
            self.recent.append(float(value))
            self.floats.append(float(value))

    def save(p):
        t = Tracker()
        t.add(1.0)
        torch.save({"recent": t.recent, "floats": t.floats}, p)
    """
    assert _rows(source) == [(15, "recent")]


def test_a_called_method_sees_what_init_set_on_self() -> None:
    """`self.rng` of `__init__` inside the called method: its draws are numpy values."""
    source = """
    class Sampler:
        def __init__(self):
            self.rng = np.random.default_rng(0)
            self.seeds = []
        def draw(self):
            self.seeds.append(self.rng.integers(1 << 31))

    def save(p):
        s = Sampler()
        s.draw()
        torch.save({"seeds": s.seeds}, p)
    """
    assert _rows(source) == [(12, "seeds")]


def test_a_parameter_annotated_with_the_class() -> None:
    """`trainer: Trainer`: whatever ran, an attribute every method stores refused is refused;
    one with a placeholder anywhere (`None` until a method runs) is not reported."""
    source = """
    class Trainer:
        def __init__(self):
            self.started = datetime.datetime.now()
            self.best = None
        def restart(self):
            self.started = datetime.datetime.now()
            self.best = np.mean([1.0])

    def write(trainer: Trainer, p):
        torch.save({"started": trainer.started, "best": trainer.best}, p)
    """
    assert _rows(source) == [(11, "started")]


def test_a_property_or_an_intercepting_class_is_not_judged_by_its_stores() -> None:
    """`self.best = v` through a property setter, read through a getter that converts; a
    class with `__setattr__`: what the save reads is not what the method stored."""
    source = """
    class WithProperty:
        def __init__(self):
            self._best = None
        @property
        def best(self):
            return float(self._best)
        @best.setter
        def best(self, value):
            self._best = value
        def step(self, value):
            self.best = value

    class Intercepting:
        def __init__(self):
            self.best = None
        def __setattr__(self, name, value):
            object.__setattr__(self, name, float(value) if value is not None else None)
        def step(self, value):
            self.best = value

    def save(p):
        a, b = WithProperty(), Intercepting()
        a.step(np.float64(1.0))
        b.step(np.float64(1.0))
        torch.save({"a": a.best, "b": b.best}, p)
    """
    assert _rows(source) == []


def test_a_call_that_may_not_run_leaves_the_attribute_unknown() -> None:
    """`s.step(v) if ok else None`, `ok and s.step(v)`, `[s.step(v) for v in vs if v]`."""
    source = """
    def save(p, ok):
        a, b, c = Stopper(), Stopper(), Stopper()
        a.step(np.float64(1.0)) if ok else None
        ok and b.step(np.float64(1.0))
        [c.step(v) for v in np.array([1.0]) if ok]
        torch.save({"a": a.best_path, "b": b.best_path, "c": c.best_path}, p)
    """
    assert _rows(source) == []


def test_an_init_local_stored_on_self_is_followed() -> None:
    """`local = nn.Linear(2, 2); self.local = local`: every store of `local` is a whole
    module (measured: the default load refuses it), so `model.local` is reported."""
    source = """
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            local = torch.nn.Linear(2, 2)
            self.local = local

    def save(p):
        model = Net()
        torch.save({"l": model.local}, p)
    """
    assert _rows(source) == [(10, "l")]


def test_a_base_class_placeholder_counts() -> None:
    """`Base.__init__` stores `None`, the subclass's method a numpy value it never ran:
    the fresh object saves None (loads), so nothing is reported."""
    source = """
    class Base:
        def __init__(self):
            self.best = None

    class Sub(Base):
        def update(self):
            self.best = np.mean([1.0])

    def save(p):
        s = Sub()
        torch.save({"best": s.best}, p)
    """
    assert _rows(source) == []


def test_one_key_of_a_filled_dict_is_not_its_neighbour() -> None:
    """`self.cache["probs"] = t.numpy()` makes the whole dict refused (measured), but
    `d.cache["logits"]`, a tensor stored under another key, loads: only the dict is reported."""
    source = """
    class D:
        def __init__(self):
            self.cache = {}

        def fill(self):
            out = torch.zeros(3)
            self.cache["logits"] = out
            self.cache["probs"] = out.numpy()

    def save(p):
        d = D()
        d.fill()
        torch.save({"l": d.cache["logits"], "g": d.cache.get("logits"), "c": d.cache}, p)
    """
    assert _rows(source) == [(14, "c")]
