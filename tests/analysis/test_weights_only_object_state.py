"""CKPT010 weights-only: values that reach the checkpoint through an object's state, the
family blind rounds 27 and 29 found missing. An object handed to a project function that
calls its methods (`run(agent, 3)`), a fluent call returned by a helper (`return
Trainer().fit(x), x`), a held dataclass's field set in a method (`self.state.best = loss`),
a dict display kept on `self` and read back by key, `model if model is not None else Net()`,
a project class's own `add` method, a held module called two methods down, a datetime minus
a start another method set. VALID and
INVALID; every refusal here was measured (torch 2.13) by the blind rounds' oracle."""

from __future__ import annotations

import pytest
from support.ckpt010 import weights_only_findings, weights_only_rows

HEADER = """\
import dataclasses
import datetime
import numpy as np
import torch
from torch import nn


class Agent:
    def __init__(self, n=4):
        self.values = np.zeros(n)
        self.last_action = None
        self.last_safe = None

    def act(self):
        self.last_action = np.argmax(self.values)
        self.last_safe = int(np.argmax(self.values))
        return self.last_action


def run(agent, horizon):
    for _ in range(horizon):
        agent.act()


def run_and_reset(agent, horizon):
    for _ in range(horizon):
        agent.act()
    agent.last_action = None


def simulated():
    agent = Agent()
    return agent, run(agent, 3)


class Coach:
    def train(self, agent):
        agent.act()


class EmbIndex:
    def __init__(self, dim=8):
        self.labels = np.zeros((0,), dtype="int64")
        self.size = 0

    def add(self, labels):
        self.labels = np.concatenate([self.labels, labels])
        self.size = len(self.labels)


def recall(index, k):
    return (index.labels[:k] == 1).mean()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)


@dataclasses.dataclass
class State:
    step: int = 0
    tokens: int = 0
    best: float = float("inf")


class Trainer:
    def __init__(self, model=None):
        self.model = model if model is not None else Net()
        self.state = State()
        self.last_eval = None
        self.best = 0.0

    def embed(self, x):
        return self.model(x)

    def evaluate(self, x):
        self.embed(x)
        return np.mean(x)

    def fit(self, x):
        for step in range(3):
            acc = self.evaluate(x)
            self.best = max(self.best, acc)
            self.state.step = step + 1
            self.state.tokens += np.prod(x.shape)
            if step % 2 == 0:
                self.last_eval = {"acc": acc, "n": len(x)}
                if acc < self.state.best:
                    self.state.best = acc
        return self


def trained():
    x = np.ones(3)
    return Trainer().fit(x), x


class Timer:
    def __init__(self):
        self.start = None
        self.elapsed = datetime.timedelta(0)
        self.seconds = 0.0

    def begin(self):
        self.start = datetime.datetime.now()

    def end(self):
        self.elapsed = datetime.datetime.now() - self.start
        self.seconds = self.elapsed.total_seconds()


"""

INVALID = [
    (
        "an attribute a method sets, the object handed to a loop",
        'def save(p):\n    agent = Agent()\n    run(agent, 3)\n    torch.save({"last": agent.last_action}, p)\n',
        [(4, "last")],
    ),
    (
        "handed by keyword",
        'def save(p):\n    agent = Agent()\n    run(horizon=3, agent=agent)\n    torch.save({"last": agent.last_action}, p)\n',
        [(4, "last")],
    ),
    (
        "handed inside the helper's return",
        'def save(p):\n    agent, _ = simulated()\n    torch.save({"last": agent.last_action}, p)\n',
        [(3, "last")],
    ),
    (
        "handed to another project object's method",
        'def save(p):\n    agent = Agent()\n    Coach().train(agent)\n    torch.save({"last": agent.last_action}, p)\n',
        [(4, "last")],
    ),
    (
        "a project class's own add, then read by a helper",
        "def save(p):\n"
        "    index = EmbIndex()\n"
        "    index.add(np.ones(3, dtype='int64'))\n"
        "    r = recall(index, 2)\n"
        '    torch.save({"labels": index.labels, "r": r}, p)\n',
        [(5, "labels"), (5, "r")],
    ),
    (
        "a fluent call a helper returns",
        'def save(p):\n    trainer, _ = trained()\n    torch.save({"best": trainer.best}, p)\n',
        [(3, "best")],
    ),
    (
        "a model built when none is passed",
        'def save(p):\n    torch.save({"model": Trainer().model}, p)\n',
        [(2, "model")],
    ),
    (
        "the model of a trainer a helper returns",
        'def save(p):\n    trainer, _ = trained()\n    torch.save({"model": trainer.model}, p)\n',
        [(3, "model")],
    ),
    (
        "a held dataclass's fields set in a method",
        "def save(p):\n"
        "    trainer = Trainer()\n"
        "    trainer.fit(np.ones(3))\n"
        '    torch.save({"best": trainer.state.best, "tokens": trainer.state.tokens}, p)\n',
        [(4, "best"), (4, "tokens")],
    ),
    (
        "a key of a dict display a method kept on self",
        "def save(p):\n"
        "    trainer = Trainer()\n"
        "    trainer.fit(np.ones(3))\n"
        '    torch.save({"acc": trainer.last_eval["acc"]}, p)\n',
        [(4, "acc")],
    ),
    (
        "now minus a start another method set",
        'def save(p):\n    t = Timer()\n    t.begin()\n    t.end()\n    torch.save({"e": t.elapsed}, p)\n',
        [(5, "e")],
    ),
]

VALID = [
    (
        "never handed: the placeholder __init__ set",
        'def save(p):\n    agent = Agent()\n    torch.save({"last": agent.last_action}, p)\n',
    ),
    (
        "a Python int the method stores",
        'def save(p):\n    agent = Agent()\n    run(agent, 3)\n    torch.save({"last": agent.last_safe}, p)\n',
    ),
    (
        "the function stores on the object itself",
        "def save(p):\n"
        "    agent = Agent()\n"
        "    run_and_reset(agent, 3)\n"
        '    torch.save({"last": agent.last_action}, p)\n',
    ),
    (
        "handed to a library function only",
        'def save(p):\n    agent = Agent()\n    print(agent)\n    torch.save({"last": agent.last_action}, p)\n',
    ),
    (
        "a Python int the project's add stores",
        "def save(p):\n"
        "    index = EmbIndex()\n"
        "    index.add(np.ones(3, dtype='int64'))\n"
        '    torch.save({"size": index.size}, p)\n',
    ),
    (
        "the model passed in, a state dict",
        'def save(p):\n    torch.save({"model": Trainer(Net().state_dict()).model}, p)\n',
    ),
    (
        "a Python int kept in the dict display",
        "def save(p):\n"
        "    trainer = Trainer()\n"
        "    trainer.fit(np.ones(3))\n"
        '    torch.save({"n": trainer.last_eval["n"], "step": trainer.state.step}, p)\n',
    ),
    (
        "the elapsed time in seconds",
        'def save(p):\n    t = Timer()\n    t.begin()\n    t.end()\n    torch.save({"s": t.seconds}, p)\n',
    ),
]


@pytest.mark.parametrize(("name", "source", "expected"), INVALID)
def test_invalid(name: str, source: str, expected: list[tuple[int, str | None]]) -> None:
    assert sorted(weights_only_rows(HEADER, source), key=str) == sorted(expected, key=str), name


@pytest.mark.parametrize(("name", "source"), VALID)
def test_valid(name: str, source: str) -> None:
    assert weights_only_findings(HEADER, source) == [], name
