"""The fix engine: inserted/extended __getstate__/__setstate__, exact text, safety properties."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import keyword
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
import time
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ckpt_lsp.findings import Edit, Position
from ckpt_lsp.fix import FixTarget, apply_edits, describe_fix, fix_edits, fix_source
from hypothesis import given, settings
from hypothesis import strategies as st
from support import shared


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def class_line(source: str, name: str) -> int:
    last = name.split(".")[-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == last:
            return node.lineno
    raise AssertionError(f"no class {name}")


def target(source: str, name: str, *attrs: str, bases: tuple[str, ...] = ()) -> FixTarget:
    return FixTarget(name, class_line(source, name), attrs, bases)


@dataclass
class Case:
    id: str
    before: str
    targets: list[tuple[str, tuple[str, ...]]]  # (class name, attributes)
    after: str | None  # None: the source must stay unchanged
    bases: tuple[str, ...] = ()
    unavailable: str | None = None  # a word the reason must contain


CASES = [
    Case(
        "plain-insert",
        src("""
            import threading


            class Cache:
                def __init__(self):
                    self.items = {}
                    self.lock = threading.Lock()

                def get(self, key):
                    return self.items.get(key)
            """),
        [("Cache", ("lock",))],
        src("""
            import threading


            class Cache:
                def __init__(self):
                    self.items = {}
                    self.lock = threading.Lock()

                def __getstate__(self):
                    state = self.__dict__.copy()
                    state.pop("lock", None)  # unpicklable: re-created in __setstate__
                    return state

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.lock = threading.Lock()

                def get(self, key):
                    return self.items.get(key)
            """),
    ),
    Case(
        "nn-module-super",
        src("""
            import os

            from torch import nn


            class LoggingClassifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.linear = nn.Linear(4, 2)
                    self.metrics_file = open(os.devnull, "w")

                def forward(self, x):
                    return self.linear(x)
            """),
        [("LoggingClassifier", ("metrics_file",))],
        src("""
            import os

            from torch import nn


            class LoggingClassifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.linear = nn.Linear(4, 2)
                    self.metrics_file = open(os.devnull, "w")

                def __getstate__(self):
                    state = super().__getstate__()
                    state.pop("metrics_file", None)  # unpicklable: re-created in __setstate__
                    return state

                def __setstate__(self, state):
                    super().__setstate__(state)
                    self.metrics_file = open(os.devnull, "w")

                def forward(self, x):
                    return self.linear(x)
            """),
    ),
    Case(
        "sklearn-estimator-copies-the-live-dict",
        src("""
            from sklearn.base import BaseEstimator


            class ThresholdRule(BaseEstimator):
                def __init__(self, threshold=0.5):
                    self.threshold = threshold
                    self.rule_ = lambda score: score > self.threshold
            """),
        [("ThresholdRule", ("rule_",))],
        src("""
            from sklearn.base import BaseEstimator


            class ThresholdRule(BaseEstimator):
                def __init__(self, threshold=0.5):
                    self.threshold = threshold
                    self.rule_ = lambda score: score > self.threshold

                def __getstate__(self):
                    state = dict(super().__getstate__())
                    state.pop("rule_", None)  # unpicklable: re-created in __setstate__
                    return state

                def __setstate__(self, state):
                    super().__setstate__(state)
                    self.rule_ = lambda score: score > self.threshold
            """),
    ),
    Case(
        "owl-return-dict-of-dict-is-rewritten",
        src('''
            from zoo.core import ZooModel


            class Owl(ZooModel):
                """Its __getstate__ copies the state but forgets the lambda."""

                def __init__(self):
                    super().__init__()
                    self.blink = lambda: None

                def __getstate__(self):
                    return dict(self.__dict__)

                def forward(self, x):
                    return x
            '''),
        [("Owl", ("blink",))],
        src('''
            from zoo.core import ZooModel


            class Owl(ZooModel):
                """Its __getstate__ copies the state but forgets the lambda."""

                def __init__(self):
                    super().__init__()
                    self.blink = lambda: None

                def __getstate__(self):
                    state = dict(self.__dict__)
                    state.pop("blink", None)  # unpicklable: re-created in __setstate__
                    return state

                def __setstate__(self, state):
                    super().__setstate__(state)
                    self.blink = lambda: None

                def forward(self, x):
                    return x
            '''),
        bases=("torch.nn.Module",),
    ),
    Case(
        "guarded-module-already-correct",
        src("""
            import threading

            import lightning as L


            class GuardedModule(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.lock = threading.Lock()

                def __getstate__(self):
                    state = super().__getstate__()
                    state = dict(state)
                    state.pop("lock", None)
                    return state

                def __setstate__(self, state):
                    super().__setstate__(state)
                    self.lock = threading.Lock()
            """),
        [("GuardedModule", ("lock",))],
        None,
    ),
    Case(
        "two-attributes-lambda-recreated-local-def-reset",
        src("""
            import math


            class Model:
                def __init__(self, scale):
                    def warmup(step):
                        return step * scale

                    self.curve = lambda x: math.sqrt(x)
                    self.warmup = warmup
            """),
        [("Model", ("curve", "warmup"))],
        src("""
            import math


            class Model:
                def __init__(self, scale):
                    def warmup(step):
                        return step * scale

                    self.curve = lambda x: math.sqrt(x)
                    self.warmup = warmup

                def __getstate__(self):
                    state = self.__dict__.copy()
                    state.pop("curve", None)  # unpicklable: re-created in __setstate__
                    state.pop("warmup", None)  # unpicklable: reset to None in __setstate__
                    return state

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.curve = lambda x: math.sqrt(x)
                    self.warmup = None  # TODO(ckpt-lsp): re-create warmup after unpickling
            """),
    ),
    Case(
        "crlf-stays-crlf",
        "import threading\r\n\r\nclass A:\r\n    def __init__(self):\r\n"
        "        self.lock = threading.Lock()\r\n",
        [("A", ("lock",))],
        "import threading\r\n\r\nclass A:\r\n    def __init__(self):\r\n"
        "        self.lock = threading.Lock()\r\n\r\n"
        "    def __getstate__(self):\r\n"
        "        state = self.__dict__.copy()\r\n"
        '        state.pop("lock", None)  # unpicklable: re-created in __setstate__\r\n'
        "        return state\r\n\r\n"
        "    def __setstate__(self, state):\r\n"
        "        self.__dict__.update(state)\r\n"
        "        self.lock = threading.Lock()\r\n",
    ),
    Case(
        "tabs-stay-tabs",
        "import threading\n\nclass A:\n\tdef __init__(self):\n\t\tself.lock = threading.Lock()\n",
        [("A", ("lock",))],
        "import threading\n\nclass A:\n\tdef __init__(self):\n\t\tself.lock = threading.Lock()\n"
        "\n\tdef __getstate__(self):\n\t\tstate = self.__dict__.copy()\n"
        '\t\tstate.pop("lock", None)  # unpicklable: re-created in __setstate__\n'
        "\t\treturn state\n\n\tdef __setstate__(self, state):\n"
        "\t\tself.__dict__.update(state)\n\t\tself.lock = threading.Lock()\n",
    ),
    Case(
        "two-space-indent-decorated-class-without-init",
        src("""
            import dataclasses
            import threading


            @dataclasses.dataclass
            @other.decorator(
              x=1,
            )
            class Config:
              name: str = "x"

              def start(self):
                self.lock = threading.RLock()
            """),
        [("Config", ("lock",))],
        src("""
            import dataclasses
            import threading


            @dataclasses.dataclass
            @other.decorator(
              x=1,
            )
            class Config:
              name: str = "x"

              def start(self):
                self.lock = threading.RLock()

              def __getstate__(self):
                state = self.__dict__.copy()
                state.pop("lock", None)  # unpicklable: re-created in __setstate__
                return state

              def __setstate__(self, state):
                self.__dict__.update(state)
                self.lock = threading.RLock()
            """),
    ),
    Case(
        "nested-class",
        src("""
            import queue


            class Outer:
                class Inner:
                    def __init__(self):
                        self.jobs = queue.Queue()

                def run(self):
                    pass
            """),
        [("Outer.Inner", ("jobs",))],
        src("""
            import queue


            class Outer:
                class Inner:
                    def __init__(self):
                        self.jobs = queue.Queue()

                    def __getstate__(self):
                        state = self.__dict__.copy()
                        state.pop("jobs", None)  # unpicklable: re-created in __setstate__
                        return state

                    def __setstate__(self, state):
                        self.__dict__.update(state)
                        self.jobs = queue.Queue()

                def run(self):
                    pass
            """),
    ),
    Case(
        "existing-state-variable-and-setstate-extended",
        src("""
            import threading


            class Worker:
                def __init__(self, path):
                    self.path = path
                    self.lock = threading.Lock()
                    self.log = open(self.path, "a")

                def __getstate__(self):
                    state = self.__dict__.copy()
                    del state["lock"]
                    return state  # done

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.lock = threading.Lock()
            """),
        [("Worker", ("lock", "log"))],
        src("""
            import threading


            class Worker:
                def __init__(self, path):
                    self.path = path
                    self.lock = threading.Lock()
                    self.log = open(self.path, "a")

                def __getstate__(self):
                    state = self.__dict__.copy()
                    del state["lock"]
                    state.pop("log", None)  # unpicklable: re-created in __setstate__
                    return state  # done

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.lock = threading.Lock()
                    self.log = open(self.path, "a")
            """),
    ),
    Case(
        "super-getstate-of-sklearn-is-copied-before-pop",
        src("""
            import threading

            from sklearn.base import BaseEstimator


            class Est(BaseEstimator):
                def __init__(self):
                    self.lock = threading.Lock()

                def __getstate__(self):
                    state = super().__getstate__()
                    return state
            """),
        [("Est", ("lock",))],
        src("""
            import threading

            from sklearn.base import BaseEstimator


            class Est(BaseEstimator):
                def __init__(self):
                    self.lock = threading.Lock()

                def __getstate__(self):
                    state = super().__getstate__()
                    state = dict(state)  # a copy: pop must not touch the object
                    state.pop("lock", None)  # unpicklable: re-created in __setstate__
                    return state

                def __setstate__(self, state):
                    super().__setstate__(state)
                    self.lock = threading.Lock()
            """),
    ),
    Case(
        "return-live-dict-is-rewritten-to-a-copy",
        src("""
            import threading


            class A:
                def __init__(self):
                    self.lock = threading.Lock()

                def __getstate__(self):
                    return self.__dict__
            """),
        [("A", ("lock",))],
        src("""
            import threading


            class A:
                def __init__(self):
                    self.lock = threading.Lock()

                def __getstate__(self):
                    state = dict(self.__dict__)
                    state.pop("lock", None)  # unpicklable: re-created in __setstate__
                    return state

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.lock = threading.Lock()
            """),
    ),
    Case(
        "needs-another-dropped-attribute-which-is-recreated-first",
        src("""
            import sqlite3


            class Store:
                def __init__(self):
                    self.db = sqlite3.connect(":memory:")
                    self.cursor = self.db.cursor()
            """),
        [("Store", ("cursor", "db"))],
        src("""
            import sqlite3


            class Store:
                def __init__(self):
                    self.db = sqlite3.connect(":memory:")
                    self.cursor = self.db.cursor()

                def __getstate__(self):
                    state = self.__dict__.copy()
                    state.pop("cursor", None)  # unpicklable: re-created in __setstate__
                    state.pop("db", None)  # unpicklable: re-created in __setstate__
                    return state

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.db = sqlite3.connect(":memory:")
                    self.cursor = self.db.cursor()
            """),
    ),
    Case(
        "private-name-is-popped-by-its-mangled-key",
        src("""
            import threading


            class _Box:
                def __init__(self):
                    self.__lock = threading.Lock()
            """),
        [("_Box", ("__lock",))],
        src("""
            import threading


            class _Box:
                def __init__(self):
                    self.__lock = threading.Lock()

                def __getstate__(self):
                    state = self.__dict__.copy()
                    state.pop("_Box__lock", None)  # unpicklable: re-created in __setstate__
                    return state

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.__lock = threading.Lock()
            """),
    ),
    Case(
        "multi-line-expression-setattr-annotated-tuple-and-conditional",
        src("""
            import socket
            import threading


            class Net:
                def __init__(self, host, debug=False):
                    self.sock: socket.socket = socket.socket(
                        socket.AF_INET,
                        socket.SOCK_STREAM,
                    )
                    setattr(self, "ev", threading.Event())
                    self.a, self.b = threading.Lock(), host.lock()
                    if debug:
                        self.trace = open("trace.txt", "w")
            """),
        [("Net", ("sock", "ev", "a", "b", "trace"))],
        src("""
            import socket
            import threading


            class Net:
                def __init__(self, host, debug=False):
                    self.sock: socket.socket = socket.socket(
                        socket.AF_INET,
                        socket.SOCK_STREAM,
                    )
                    setattr(self, "ev", threading.Event())
                    self.a, self.b = threading.Lock(), host.lock()
                    if debug:
                        self.trace = open("trace.txt", "w")

                def __getstate__(self):
                    state = self.__dict__.copy()
                    state.pop("sock", None)  # unpicklable: re-created in __setstate__
                    state.pop("ev", None)  # unpicklable: re-created in __setstate__
                    state.pop("a", None)  # unpicklable: re-created in __setstate__
                    state.pop("b", None)  # unpicklable: reset to None in __setstate__
                    state.pop("trace", None)  # unpicklable: reset to None in __setstate__
                    return state

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.sock = (socket.socket(
                        socket.AF_INET,
                        socket.SOCK_STREAM,
                    ))
                    self.ev = threading.Event()
                    self.a = threading.Lock()
                    self.b = None  # TODO(ckpt-lsp): re-create b after unpickling
                    self.trace = None  # TODO(ckpt-lsp): re-create trace after unpickling
            """),
    ),
    Case(
        "generator-over-a-parameter-is-reset-over-module-name-recreated",
        src("""
            DATA = [1, 2, 3]


            class Stream:
                def __init__(self, n):
                    self.src = (i * i for i in range(n))
                    self.fixed = (x for x in DATA)
            """),
        [("Stream", ("src", "fixed"))],
        src("""
            DATA = [1, 2, 3]


            class Stream:
                def __init__(self, n):
                    self.src = (i * i for i in range(n))
                    self.fixed = (x for x in DATA)

                def __getstate__(self):
                    state = self.__dict__.copy()
                    state.pop("src", None)  # unpicklable: reset to None in __setstate__
                    state.pop("fixed", None)  # unpicklable: re-created in __setstate__
                    return state

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.src = None  # TODO(ckpt-lsp): re-create src after unpickling
                    self.fixed = (x for x in DATA)
            """),
    ),
    Case(
        "no-trailing-newline-and-init-is-last",
        "import threading\nclass A:\n    def __init__(self):\n        self.l = threading.Lock()",
        [("A", ("l",))],
        "import threading\nclass A:\n    def __init__(self):\n        self.l = threading.Lock()\n"
        "\n    def __getstate__(self):\n        state = self.__dict__.copy()\n"
        '        state.pop("l", None)  # unpicklable: re-created in __setstate__\n'
        "        return state\n\n    def __setstate__(self, state):\n"
        "        self.__dict__.update(state)\n        self.l = threading.Lock()\n",
    ),
    Case(
        "broken-code-elsewhere-still-fixes-the-class",
        src("""
            import threading


            class A:
                def __init__(self):
                    self.lock = threading.Lock()


            def half_typed(x:
            """),
        [("A", ("lock",))],
        src("""
            import threading


            class A:
                def __init__(self):
                    self.lock = threading.Lock()

                def __getstate__(self):
                    state = self.__dict__.copy()
                    state.pop("lock", None)  # unpicklable: re-created in __setstate__
                    return state

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.lock = threading.Lock()


            def half_typed(x:
            """),
    ),
    Case(
        "column-0-string-inside-the-class",
        "import threading\n\n\nclass A:\n    def __init__(self):\n"
        '        self.lock = threading.Lock()\n        self.doc = """\nat column 0\n"""\n',
        [("A", ("lock",))],
        "import threading\n\n\nclass A:\n    def __init__(self):\n"
        '        self.lock = threading.Lock()\n        self.doc = """\nat column 0\n"""\n'
        "\n    def __getstate__(self):\n        state = self.__dict__.copy()\n"
        '        state.pop("lock", None)  # unpicklable: re-created in __setstate__\n'
        "        return state\n\n    def __setstate__(self, state):\n"
        "        self.__dict__.update(state)\n        self.lock = threading.Lock()\n",
    ),
    Case(
        # What the analysis reads as left out (a loop over a class constant) needs no pop;
        # a key the __getstate__ gives a value of its own is never popped over.
        "constant-loop-left-out-and-own-value-kept",
        src("""
            import threading


            class Logger:
                TRANSIENT = ("lock",)

                def __init__(self, path):
                    self.lock = threading.Lock()
                    self.log = open(path, "a")
                    self.ev = threading.Event()

                def __getstate__(self):
                    state = self.__dict__.copy()
                    for key in self.TRANSIENT:
                        state.pop(key, None)
                    state["log"] = self.log.name
                    return state

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.lock = threading.Lock()
                    self.log = open(self.log, "a")
            """),
        [("Logger", ("lock", "log", "ev"))],
        src("""
            import threading


            class Logger:
                TRANSIENT = ("lock",)

                def __init__(self, path):
                    self.lock = threading.Lock()
                    self.log = open(path, "a")
                    self.ev = threading.Event()

                def __getstate__(self):
                    state = self.__dict__.copy()
                    for key in self.TRANSIENT:
                        state.pop(key, None)
                    state["log"] = self.log.name
                    state.pop("ev", None)  # unpicklable: re-created in __setstate__
                    return state

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.lock = threading.Lock()
                    self.log = open(self.log, "a")
                    self.ev = threading.Event()
            """),
    ),
    Case(
        # libcst renders the copied expression where it goes: one level deeper under the
        # guard, its continuation lines (and their comments) move with it.
        "multi-line-expression-moves-under-the-guard",
        src("""
            from torch import nn


            def make_head(n):
                return lambda x: x * n


            class Headed(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.head = make_head(
                        4,  # four
                    )
                    self.tail = (lambda x:
                                 x)

                def __getstate__(self):
                    state = super().__getstate__()

                    # nothing to drop yet
                    return state  # done
            """),
        [("Headed", ("head", "tail"))],
        src("""
            from torch import nn


            def make_head(n):
                return lambda x: x * n


            class Headed(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.head = make_head(
                        4,  # four
                    )
                    self.tail = (lambda x:
                                 x)

                def __getstate__(self):
                    state = super().__getstate__()

                    # nothing to drop yet
                    state.pop("head", None)  # unpicklable: re-created in __setstate__
                    state.pop("tail", None)  # unpicklable: re-created in __setstate__
                    return state  # done

                def __setstate__(self, state):
                    super().__setstate__(state)
                    if not hasattr(self, "head"):  # not restored as a submodule
                        self.head = (make_head(
                            4,  # four
                        ))
                    self.tail = (lambda x:
                                 x)
            """),
        bases=("torch.nn.Module",),
    ),
    Case(
        "multi-line-return-is-rewritten-in-place",
        src("""
            import threading


            class Multi:
                def __init__(self):
                    self.lock = threading.Lock()

                def __getstate__(self):
                    return dict(
                        self.__dict__,
                    )  # a copy
            """),
        [("Multi", ("lock",))],
        src("""
            import threading


            class Multi:
                def __init__(self):
                    self.lock = threading.Lock()

                def __getstate__(self):
                    state = dict(
                        self.__dict__,
                    )
                    state.pop("lock", None)  # unpicklable: re-created in __setstate__
                    return state  # a copy

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.lock = threading.Lock()
            """),
    ),
    Case(
        # A comprehension that copies every item is a fresh dict; one with a filter is the
        # user's own choice of what to keep (see unusual-getstate-is-left-alone).
        "unfiltered-comprehension-copy-is-rewritten",
        src("""
            import tempfile


            class Spill:
                def __init__(self):
                    self.spill = tempfile.TemporaryFile()

                def __getstate__(self):
                    return {k: v for k, v in self.__dict__.items()}
            """),
        [("Spill", ("spill",))],
        src("""
            import tempfile


            class Spill:
                def __init__(self):
                    self.spill = tempfile.TemporaryFile()

                def __getstate__(self):
                    state = {k: v for k, v in self.__dict__.items()}
                    state.pop("spill", None)  # unpicklable: re-created in __setstate__
                    return state

                def __setstate__(self, state):
                    self.__dict__.update(state)
                    self.spill = tempfile.TemporaryFile()
            """),
    ),
    Case(
        "cr-only-line-endings-stay",
        "import threading\r\rclass A:\r    def __init__(self):\r"
        "        self.lock = threading.Lock()\r\r    def run(self):\r        pass\r",
        [("A", ("lock",))],
        "import threading\r\rclass A:\r    def __init__(self):\r"
        "        self.lock = threading.Lock()\r\r"
        "    def __getstate__(self):\r"
        "        state = self.__dict__.copy()\r"
        '        state.pop("lock", None)  # unpicklable: re-created in __setstate__\r'
        "        return state\r\r"
        "    def __setstate__(self, state):\r"
        "        self.__dict__.update(state)\r"
        "        self.lock = threading.Lock()\r\r    def run(self):\r        pass\r",
    ),
    # -- INVALID: left unchanged, with a reason --------------------------------------
    Case(
        "getstate-bound-twice-is-left-alone",
        src("""
            import threading


            class A:
                def __init__(self):
                    self.lock = threading.Lock()

                def __getstate__(self):
                    return {}

                def __getstate__(self):
                    return self.__dict__.copy()
            """),
        [("A", ("lock",))],
        None,
        unavailable="more than once",
    ),
    Case(
        "unusual-getstate-is-left-alone",
        src("""
            import threading


            class A:
                def __init__(self):
                    self.lock = threading.Lock()

                def __getstate__(self):
                    return {k: v for k, v in vars(self).items() if k != "x"}
            """),
        [("A", ("lock",))],
        None,
        unavailable="__getstate__",
    ),
    Case(
        "reduce-is-left-alone",
        src("""
            import threading


            class A:
                def __init__(self):
                    self.lock = threading.Lock()

                def __reduce__(self):
                    return (A, ())
            """),
        [("A", ("lock",))],
        None,
        unavailable="__reduce__",
    ),
    Case(
        "copyreg-reducer-is-left-alone",
        src("""
            import copyreg
            import threading


            class A:
                def __init__(self):
                    self.lock = threading.Lock()


            def reduce_a(obj):
                return A, ()


            copyreg.pickle(A, reduce_a)
            """),
        [("A", ("lock",))],
        None,
        unavailable="copyreg",
    ),
    Case(
        "one-line-class-is-left-alone",
        "import threading\nclass A: lock = threading.Lock()\n",
        [("A", ("lock",))],
        None,
        unavailable="line",
    ),
    Case(
        "unknown-class",
        "class A:\n    pass\n",
        [("B", ("x",))],
        None,
        unavailable="not found",
    ),
]


def _targets(case: Case) -> list[FixTarget]:
    out = []
    for name, attrs in case.targets:
        try:
            line = class_line(case.before, name)
        except (AssertionError, SyntaxError):
            line = 0
        if line == 0:
            line = next(
                (
                    i
                    for i, text in enumerate(case.before.splitlines(), 1)
                    if text.lstrip().startswith(f"class {name.split('.')[-1]}")
                ),
                1,
            )
        out.append(FixTarget(name, line, attrs, case.bases))
    return out


@contextlib.contextmanager
def loaded(source: str) -> Iterator[types.ModuleType]:
    """Exec our generated code as an importable module, so pickle can find its classes."""
    name = f"ckpt_fixed_{uuid.uuid4().hex}"
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        exec(compile(source, f"<{name}>", "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[name]


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fix_source(case: Case) -> None:
    targets = _targets(case)
    fixed = fix_source(case.before, targets)
    expected = case.before if case.after is None else case.after
    assert fixed == expected
    # Idempotent: the fixed source needs no further fix.
    assert fix_source(fixed, targets) == fixed
    # Edits reproduce fix_source exactly.
    assert apply_edits(case.before, fix_edits(case.before, targets)) == fixed
    # Line endings: a CRLF file gains no bare LF.
    if "\r\n" in case.before:
        assert fixed.count("\n") == fixed.count("\r\n")
    if _parses(case.before):
        assert _parses(fixed)
    fix = describe_fix(case.before, targets[0])
    if case.unavailable is not None:
        assert fix.unavailable is not None and case.unavailable in fix.unavailable
        assert not fix.available
    elif case.after is None:
        assert fix.unavailable is None and not fix.edits  # nothing left to do
    else:
        assert fix.available and fix.edits


def test_edits_are_one_insertion_per_new_class_fix() -> None:
    case = CASES[0]
    edits = fix_edits(case.before, _targets(case))
    assert len(edits) == 1
    (edit,) = edits
    assert edit.location == edit.end_location == Position(8, 1)  # after `self.lock = ...`
    assert edit.content.startswith("\n    def __getstate__(self):\n")


def test_columns_count_code_points() -> None:
    source = src("""
        import threading


        class A:
            def __init__(self):
                self.name = "ñandú"; self.lock = threading.Lock()

            def __getstate__(self):
                é = 1; return self.__dict__
        """)
    # The return shares its line: unavailable, and the source is unchanged.
    fix = describe_fix(source, target(source, "A", "lock"))
    assert fix.unavailable and fix_source(source, [target(source, "A", "lock")]) == source
    source = source.replace("é = 1; return", "return")
    edits = fix_edits(source, [target(source, "A", "lock")])
    assert apply_edits(source, edits) == fix_source(source, [target(source, "A", "lock")])
    assert edits[0].location == Position(9, 9)


def test_describe_fix_reports_recreated_and_reset() -> None:
    source = CASES[5].before
    fix = describe_fix(source, target(source, "Model", "curve", "warmup"))
    assert fix.recreated == ("curve",)
    assert fix.reset == ("warmup",)
    assert "`curve`, `warmup`" in fix.title


def test_several_classes_and_duplicate_targets() -> None:
    source = src("""
        import threading


        class A:
            def __init__(self):
                self.lock = threading.Lock()


        class B:
            def __init__(self):
                self.ev = threading.Event()
                self.lock = threading.Lock()
        """)
    targets = [
        target(source, "A", "lock"),
        target(source, "B", "ev"),
        target(source, "B", "lock"),
        target(source, "B", "ev"),
    ]
    fixed = fix_source(source, targets)
    assert fixed.count("def __getstate__") == 2
    assert fixed.count('state.pop("ev", None)') == 1
    assert len(fix_edits(source, targets)) == 2
    assert fix_source(fixed, targets) == fixed
    with loaded(fixed) as module:
        for name in ("A", "B"):
            obj = getattr(module, name)()
            back = pickle.loads(pickle.dumps(obj))
            assert set(vars(back)) == set(vars(obj))


def test_nested_and_outer_fixes_at_the_same_point() -> None:
    source = src("""
        import threading


        class Outer:
            def run(self):
                self.lock = threading.Lock()

            class Inner:
                def __init__(self):
                    self.lock = threading.Lock()
        """)
    targets = [target(source, "Outer", "lock"), target(source, "Outer.Inner", "lock")]
    fixed = fix_source(source, targets)
    assert fixed.count("def __getstate__") == 2
    assert apply_edits(source, fix_edits(source, targets)) == fixed
    with loaded(fixed) as module:
        outer = module.Outer()
        outer.run()
        inner = module.Outer.Inner()
        assert pickle.loads(pickle.dumps(outer)).lock is not None
        assert pickle.loads(pickle.dumps(inner)).lock is not None


def test_bases_from_the_analyzer_and_from_this_module() -> None:
    source = src("""
        import threading

        from .base import Project


        class Local(Project):
            def __getstate__(self):
                return dict(self.__dict__)


        class A(Local):
            def __init__(self):
                self.lock = threading.Lock()


        class B(Project):
            def __init__(self):
                self.lock = threading.Lock()
        """)
    a = fix_source(source, [target(source, "A", "lock")])
    assert "state = dict(super().__getstate__())" in a  # a project base: copy its result
    assert "self.__dict__.update(state)" in a
    b = fix_source(source, [target(source, "B", "lock", bases=("lightning.LightningModule",))])
    b_class = b[b.index("class B") :]
    assert "state = super().__getstate__()" in b_class
    assert "super().__setstate__(state)" in b_class
    plain = fix_source(source, [target(source, "B", "lock")])
    assert "state = self.__dict__.copy()" in plain[plain.index("class B") :]


def test_unparseable_file_gives_unavailable_not_an_error() -> None:
    source = "class A(:\n    def __init__(self):\n        self.x = 1\n"
    fix = describe_fix(source, FixTarget("A", 1, ("x",)))
    assert fix.unavailable
    assert fix_source(source, [FixTarget("A", 1, ("x",))]) == source
    assert fix_edits(source, [FixTarget("A", 1, ("x",))]) == []


def test_apply_edits_rejects_overlaps() -> None:
    edits = [
        Edit("x", Position(1, 1), Position(1, 3)),
        Edit("y", Position(1, 2), Position(1, 4)),
    ]
    with pytest.raises(ValueError):
        apply_edits("abcdef", edits)


CONSTRUCTOR_ARGS: dict[str, list[object]] = {
    "Model": [1],
    "Stream": [3],
    "Worker": ["/dev/null"],
    "Logger": ["/dev/null"],
}


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.after is not None and "import torch" not in c.before],
    ids=lambda c: c.id,
)
def test_fixed_stdlib_classes_round_trip(case: Case) -> None:
    """Our own generated code is exec'd: every stdlib-only fixed class must pickle back."""
    fixed = case.after or ""
    if any(m in fixed for m in ("torch", "sklearn", "lightning", "zoo", "other.", "half_typed")):
        pytest.skip("needs third-party code")
    if "trace.txt" in fixed or "host" in fixed:
        pytest.skip("needs constructor arguments")
    with loaded(fixed) as module:
        for name, attrs in case.targets:
            cls = module
            for part in name.split("."):
                cls = getattr(cls, part)
            obj = cls(*CONSTRUCTOR_ARGS.get(name, []))
            if name == "Config":
                obj.start()
            back = pickle.loads(pickle.dumps(obj))
            for attr in attrs:
                key = f"_{name.lstrip('_')}{attr}" if attr.startswith("__") else attr
                assert key in vars(back)


# -- property test: generated classes ------------------------------------------------------

# (expression, stdlib-only so the test can build it, re-creatable from module names)
HAZARDS = [
    ("threading.Lock()", True),
    ("threading.RLock()", True),
    ("threading.Event()", True),
    ("lambda x: x + 1", True),
    ("lambda: math.pi", True),
    ("open(os.devnull)", True),
    ("(i * i for i in range(3))", True),
    ("(i for i in range(n))", False),  # needs the parameter n
    ("helper", False),  # a local def
    ("self.items.values()", True),  # needs an attribute that stays
]
GETSTATE_SHAPES = {
    "none": None,
    "copy-var": ["state = self.__dict__.copy()", "return state"],
    "dict-return": ["return dict(self.__dict__)"],
    "live-return": ["return self.__dict__"],
    "vars-copy": ["state = dict(vars(self))", "return state"],
    "pops-first": ["state = self.__dict__.copy()", 'state.pop("{first}", None)', "return state"],
    "live-var": ["d = self.__dict__", "return d"],
}

names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s) and s not in ("items", "n", "state")
)


@st.composite
def generated_classes(draw: st.DrawFn) -> tuple[str, FixTarget, list[str], str]:
    attrs = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    hazards = [draw(st.sampled_from(HAZARDS))[0] for _ in attrs]
    indent = draw(st.sampled_from(["  ", "    ", "\t"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    shape = draw(st.sampled_from(sorted(GETSTATE_SHAPES)))
    with_setstate = draw(st.booleans())
    nested = draw(st.booleans())
    method_after = draw(st.booleans())

    body = ["def __init__(self, n=3):"]
    body += [indent + "def helper():", indent * 2 + "return 1", ""]
    body += [indent + "self.items = {'a': 1}", indent + "self.count = 0"]
    body += [f"{indent}self.{a} = {h}" for a, h in zip(attrs, hazards)]
    if GETSTATE_SHAPES[shape] is not None:
        body += ["", "def __getstate__(self):"]
        body += [indent + line.format(first=attrs[0]) for line in GETSTATE_SHAPES[shape]]
    if with_setstate:
        body += ["", "def __setstate__(self, state):", indent + "self.__dict__.update(state)"]
    if method_after:
        body += ["", "def total(self):", indent + "return self.count"]

    base = 1 if nested else 0
    lines = ["import math", "import os", "import threading", "", ""]
    if nested:
        lines += ["class Outer:", indent + "x = 1", ""]
    lines.append(indent * base + "class Gen:")
    lines += [(indent * (base + 1) + line) if line else "" for line in body]
    source = newline.join(lines) + newline
    name = "Outer.Gen" if nested else "Gen"
    row = next(i for i, line in enumerate(lines, 1) if line.strip() == "class Gen:")
    return source, FixTarget(name, row, tuple(attrs)), attrs, newline


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(generated_classes())
def test_generated_classes_are_fixed_safely(
    generated: tuple[str, FixTarget, list[str], str],
) -> None:
    source, fix_target, attrs, newline = generated
    fixed = fix_source(source, [fix_target])
    assert fixed != source
    assert _parses(fixed)
    assert fix_source(fixed, [fix_target]) == fixed
    assert apply_edits(source, fix_edits(source, [fix_target])) == fixed
    if newline == "\r\n":
        assert fixed.count("\n") == fixed.count("\r\n")
    else:
        assert "\r" not in fixed
    assert fixed.count("def __getstate__") == 1 and fixed.count("def __setstate__") == 1
    with loaded(fixed) as module:
        cls = module
        for part in fix_target.class_name.split("."):
            cls = getattr(cls, part)
        obj = cls()
        back = pickle.loads(pickle.dumps(obj))
        for attr in [*attrs, "items", "count"]:
            assert attr in vars(back), attr
            assert attr in vars(obj), f"the fix removed {attr} from the live object"
        assert back.items == {"a": 1}
        for value in [*vars(obj).values(), *vars(back).values()]:
            if hasattr(value, "close") and hasattr(value, "fileno"):
                value.close()  # open(os.devnull) handles


# -- the corpus: fix every marked class, then the runtime oracle must see round trips ------

CORPUS = shared.CORPUS


@pytest.mark.slow
@shared.needs(CORPUS / "oracle.py", CORPUS / "expected.json")
def test_corpus_round_trips_after_fix(tmp_path: Path) -> None:
    missing = [
        name
        for name in ("torch", "sklearn", "lightning", "keras", "h5py", "lmdb", "tqdm")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        pytest.skip(f"the oracle needs {', '.join(missing)}")
    cases = tmp_path / "cases"
    shutil.copytree(CORPUS / "cases", cases)
    # No attribute marks there, so nothing to fix; its Keras model never loads back from pickle
    # (Keras wants the class registered), fixed or not: the oracle fails it on the original.
    (cases / "out_of_scope.py").unlink()
    before = oracle_roundtrip_failures(CORPUS / "oracle.py", cases)
    marks = json.loads((CORPUS / "expected.json").read_text())
    by_file: dict[str, dict[str, list[str]]] = {}
    for mark in marks:
        if mark["kind"] not in ("pickle", "portable"):
            continue  # marks on save calls, hparams and Keras classes: not attribute fixes
        by_file.setdefault(mark["path"], {}).setdefault(mark["class"], []).append(mark["attribute"])
    fixed_classes = 0
    for rel, classes in by_file.items():
        path = cases / rel
        source = path.read_text(encoding="utf-8")
        # What the analyzer would pass: the library base of the project's ZooModel.
        bases = ("torch.nn.Module",) if rel.startswith("zoo") else ()
        targets = [target(source, name, *attrs, bases=bases) for name, attrs in classes.items()]
        fixes = [describe_fix(source, t) for t in targets]
        assert all(f.available for f in fixes), [f.unavailable for f in fixes]
        fixed = fix_source(source, targets)
        assert fix_source(fixed, targets) == fixed
        path.write_text(fixed, encoding="utf-8")
        fixed_classes += len(targets)
    assert fixed_classes >= 15
    after = oracle_roundtrip_failures(CORPUS / "oracle.py", cases)
    fixed = {(rel, name) for rel, classes in by_file.items() for name in classes}
    assert fixed & before, "the unfixed corpus should hold classes that fail to round-trip"
    # every fixed class round-trips; one that failed for a reason no attribute fix touches (an
    # unregistered Keras model) may still fail, and nothing that passed may start failing
    assert after <= before - fixed, sorted(after - (before - fixed))


ORACLE_FAIL = re.compile(r"^FAIL (\S+?): (\w+)", re.MULTILINE)


def oracle_roundtrip_failures(oracle: Path, cases: Path) -> set[tuple[str, str]]:
    """(file, class) of every class the corpus oracle cannot pickle and load back."""
    result = subprocess.run(
        [sys.executable, str(oracle), str(cases), "--roundtrip"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    fails = set(ORACLE_FAIL.findall(result.stdout))
    if result.returncode != 0 and not fails:
        pytest.fail(f"the oracle crashed: {result.stdout[-1000:]}{result.stderr[-2000:]}")
    return fails


SUBMODULE_SOURCE = src("""
    from torch import nn


    class Residual(nn.Module):
        def __init__(self, c_in=2, c_out=2):
            super().__init__()
            self.shortcut = (lambda x: x) if c_in == c_out else nn.Linear(c_in, c_out)
            self.act = nn.ReLU() if c_in else (lambda x: x)
            self.gate = lambda x: x
    """)


def test_nn_module_children_are_not_overwritten_after_loading() -> None:
    """nn.Module keeps a child module outside __dict__ and restores it itself: a value that may
    be a module is only re-set when the base did not bring it back."""
    fix_target = target(SUBMODULE_SOURCE, "Residual", "shortcut", "act", "gate")
    fixed = fix_source(SUBMODULE_SOURCE, [fix_target])
    assert fixed.endswith(
        "    def __setstate__(self, state):\n"
        "        super().__setstate__(state)\n"
        '        if not hasattr(self, "shortcut"):  # not restored as a submodule\n'
        "            self.shortcut = None  # TODO(ckpt-lsp): re-create shortcut after unpickling\n"
        '        if not hasattr(self, "act"):  # not restored as a submodule\n'
        "            self.act = None  # TODO(ckpt-lsp): re-create act after unpickling\n"
        "        self.gate = lambda x: x\n"
    )
    assert fix_source(fixed, [fix_target]) == fixed
    torch = pytest.importorskip("torch")
    with loaded(fixed) as module:
        conv = module.Residual(2, 3)
        back = pickle.loads(pickle.dumps(conv))
        assert isinstance(back.shortcut, torch.nn.Linear)
        assert torch.equal(back.shortcut.weight, conv.shortcut.weight)
        same = pickle.loads(pickle.dumps(module.Residual(2, 2)))
        assert same.shortcut is None and same.gate(1) == 1


def test_base_from_another_file_is_guarded_unless_the_analyzer_names_it() -> None:
    source = src("""
        from torch import nn

        from .base import Layer


        class Block(Layer):
            def __init__(self, same=True):
                self.shortcut = (lambda x: x) if same else nn.Identity()
        """)
    guard = 'if not hasattr(self, "shortcut")'
    assert guard in fix_source(source, [target(source, "Block", "shortcut")])
    named = target(source, "Block", "shortcut", bases=("sklearn.base.BaseEstimator",))
    assert guard not in fix_source(source, [named])


# -- libcst sees one class block, never the file ------------------------------------------


def big_module(classes: int = 227) -> tuple[str, FixTarget]:
    """22 lines a class and function: 227 make a 5,000-line file; the hazard is in the middle."""
    lines = ["import math", "import threading", "", ""]
    row = 0
    for i in range(classes):
        if i == classes // 2:
            row = len(lines) + 1
            lines += [
                "class Hazard:",
                "    def __init__(self):",
                "        self.lock = threading.Lock()",
            ]
            lines += ["", ""]
        lines += [
            f"class Layer{i}:",
            f'    """Layer {i}."""',
            "",
            "    def __init__(self, dim: int = 8, scale: float = 1.0) -> None:",
            "        self.dim = dim",
            f"        self.scale = scale * {i}",
            "        self.items = {'a': [1, 2, 3], 'b': (4, 5)}",
            "",
            "    def forward(self, x):",
            "        y = x * self.scale",
            "        if self.scale > 1:",
            "            y = y + math.sqrt(self.scale)",
            "        return y",
            "",
            "",
            f"def helper_{i}(a, b=2, *args, **kwargs):",
            "    total = a + b + sum(args)",
            "    for k, v in kwargs.items():",
            "        total += len(k) * v",
            "    return total",
            "",
            "",
        ]
    return "\n".join(lines) + "\n", FixTarget("Hazard", row, ("lock",))


def test_libcst_parses_only_the_class_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """libcst costs ~370 ms on a 5,000-line file: it must only ever get the class's block."""
    import libcst

    source, fix_target = big_module()
    parsed: list[str] = []
    real = libcst.parse_module

    def recording(text: str, *args: object, **kwargs: object) -> libcst.Module:
        parsed.append(text)
        return real(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(libcst, "parse_module", recording)
    edits = fix_edits(source, [fix_target])
    assert edits and edits[0].location.row == fix_target.class_line + 3
    assert parsed, "libcst was not used"
    assert all(text.lstrip().startswith("class Hazard:") for text in parsed)
    assert max(len(text.splitlines()) for text in parsed) < 30


def test_fix_edits_on_a_large_file_is_fast() -> None:
    """The budget of a code action: well under 50 ms once the analysis has parsed the file
    (its blocks are cached by text); measured in CPU time, best of several runs."""
    source, fix_target = big_module()
    fix_edits(source, [fix_target])  # the analysis's cache, as after a check
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        fix_edits(source, [fix_target])
        best = min(best, time.process_time() - start)
    assert best < 0.05, f"fix_edits took {best * 1000:.1f} ms"
