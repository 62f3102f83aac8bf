"""What a value holds, checked twice: the analyzer's verdict on a snippet, and the runtime's
(each snippet is run, its attribute pickled, its dtype read), so the table cannot drift.

Every snippet is the body of `__init__` of a `torch.nn.Module` subclass and stores `self.v`.
"""

from __future__ import annotations

import io
import pickle
import textwrap
import warnings

import numpy as np
import pytest
from ckpt_lsp.analysis.analyzer import analyze_text

HEADER = """\
import argparse, datetime as dt, decimal, fractions, functools, hashlib, itertools, pathlib
import json, random, re, struct, threading
import collections
import numpy as np
import torch
from numpy import array
from numpy.dtypes import StringDType
from pathlib import Path
from sklearn.compose import ColumnTransformer
from sklearn.metrics import make_scorer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from torch import nn


def module_fn(x):
    return x


class Model(nn.Module):
    gate_fn = staticmethod(lambda x: x)
    act_fn = staticmethod(torch.relu)
    bound_lambda = lambda self, x: x  # noqa: E731

    def __init__(self, labels=("cat", None, "dog"), start=dt.date(2024, 1, 1), raw=("1", "2")):
        super().__init__()
        self.fc = nn.Linear(2, 2)
"""

# (body, the rule the analyzer reports or None). Runtime: None pickles (and, for an array,
# is not object-dtype); CKPT004 pickles as an object array; any other rule fails pickle.
OBJECT_ARRAYS = [
    ("self.v = np.array(set([1, 2]))", "CKPT004"),
    ("seen = set()\nseen.update([1, 2])\nself.v = np.array(seen)", "CKPT004"),
    ("self.v = array(frozenset('ab'))", "CKPT004"),
    ("self.v = np.asarray({i for i in range(3)})", "CKPT004"),
    ("self.v = np.array(map(int, raw))", "CKPT004"),
    ("self.v = np.array(zip(raw, raw))", "CKPT004"),
    ("self.v = np.array(map(lambda r: r, raw))", "CKPT003"),
    ("d = {'a': 1}\nself.v = np.array(d.keys())", "CKPT006"),
    ("d = dict(a=1)\nself.v = np.asarray(d.items())", "CKPT006"),
    ("self.v = np.array(int(r) for r in raw)", "CKPT006"),
    ("self.v = np.array([lambda x: x, module_fn])", "CKPT003"),
    ("self.v = np.array(labels)", "CKPT004"),
    ("self.v = np.array([1.5, None])", "CKPT004"),
    ("xs = [1.0]\nxs.append(None)\nself.v = np.array(xs)", "CKPT004"),
    ("self.v = np.array([start + dt.timedelta(days=i) for i in range(3)])", "CKPT004"),
    ("self.v = np.array([dt.datetime.now()])", "CKPT004"),
    ("root = Path('.')\nself.v = np.array([root / f'{i}.png' for i in range(2)])", "CKPT004"),
    ("p = [decimal.Decimal('1.5'), decimal.Decimal('2')]\nself.v = np.asarray(p)", "CKPT004"),
    ("self.v = np.array([fractions.Fraction(1, 2)])", "CKPT004"),
    ("self.v = np.array([2**61 - 1, 2**64 + 13])", "CKPT004"),
    ("self.v = np.array([-(2**63) - 5, 7])", "CKPT004"),
    ("self.v = np.array([[1, None], [2, 3]])", "CKPT004"),
    ("self.v = np.array(list(map(decimal.Decimal, raw)))", "CKPT004"),
    ("self.v = np.asarray(sorted(Path(r) for r in raw))", "CKPT004"),
    (
        "self.v = np.array([decimal.Decimal(r).quantize(decimal.Decimal('0.1')) for r in raw])",
        "CKPT004",
    ),
    ("self.v = np.array([start.replace(day=d) for d in (1, 2)])", "CKPT004"),
    ("self.v = np.array([Path('a/b').parent])", "CKPT004"),
    ("self.counts = {'a': 1}\nself.v = np.array(self.counts.keys())", "CKPT006"),
    ("self.v = np.array(list(map(float, raw)))", None),
    ("self.v = np.array([round(decimal.Decimal(r) * 2, 1) for r in raw])", "CKPT004"),
    ("self.v = np.array([round(float(r) * 2, 1) for r in raw])", None),
    ("self.v = np.array([dt.timedelta(days=1) * 2])", "CKPT004"),
    ("self.v = np.array([r.replace('1', '2') for r in raw])", None),
    ("self.v = np.array(['a', 'bb'], dtype='T')", "CKPT004"),
    ("self.v = np.array(list(raw), dtype=np.dtypes.StringDType())", "CKPT004"),
    ("self.v = np.array(list(raw)).astype(StringDType())", "CKPT004"),
    # look-alikes that numpy stores natively
    ("self.v = np.array(sorted(set([2, 1])))", None),
    ("self.v = np.array(list({'a': 1}.values()))", None),
    ("self.v = np.array([2**63, -1])", None),
    ("self.v = np.array([2**64 - 1])", None),
    ("self.v = np.array([-(2**63)])", None),
    (
        "self.v = np.array([start + dt.timedelta(days=i) for i in range(3)], dtype='datetime64[D]')",
        None,
    ),
    ("self.v = np.array([str(Path('.') / f'{i}.png') for i in range(2)])", None),
    ("self.v = np.array([t is not None for t in labels])", None),
    ("self.v = np.array([1.5, None], dtype=float)", None),
    ("self.v = np.array(range(3))", None),
    ("self.v = np.array([float(x) for x in [decimal.Decimal('1')]])", None),
    ("self.v = np.array(['a', 1])", None),
    ("self.v = np.fromiter((i for i in range(3)), dtype=np.int64)", None),
]

# Values that do not look dangerous (found by scripts/sweep_constructors.py and issue reports).
QUIET = [
    ("self.v = functools.partial(hashlib.new, 'sha256')", "CKPT009"),
    ("self.v = functools.partial(hashlib.md5, usedforsecurity=False)", None),
    ("self.v = hashlib.sha256", None),
    ("self.v = argparse.ArgumentParser()", "CKPT009"),
    ("self.v = argparse.ArgumentParser().parse_args([])", None),
    ("self.v = decimal.localcontext()", "CKPT009"),
    ("self.v = decimal.Context(prec=5)", None),
    ("self.v = torch.random.fork_rng()", "CKPT006"),
    ("self.v = torch.vmap(torch.sin)", "CKPT009"),
    ("self.v = torch.func.grad(torch.sin)", "CKPT009"),
    ("self.v = functools.cmp_to_key(module_fn)", "CKPT009"),
    ("self.v = random.SystemRandom()", "CKPT009"),
    ("self.v = random.Random(0)", None),
    ("self.v = re.finditer('a', 'aa')", "CKPT006"),
    ("self.v = itertools.pairwise([1, 2])", "CKPT006"),
    ("self.v = np.nditer(np.arange(3))", "CKPT006"),
    ("self.v = threading.current_thread()", "CKPT005"),
]
# Wrappers and callables: what they hold, or what they became once called.
WRAPPED = [
    ("self.v = torch.no_grad()(self.fc.forward)", "CKPT003"),
    ("ng = torch.no_grad()\nself.v = ng(self.fc.__call__)", "CKPT003"),
    ("self.v = torch.inference_mode()(module_fn)", "CKPT003"),
    ("self.v = torch.enable_grad()(self.fc)", "CKPT003"),
    ("self.v = torch.no_grad()", None),
    ("self.ctx = torch.no_grad()\nself.v = self.ctx(self.fc.forward)", "CKPT003"),
    ("self.v = torch.autocast('cpu')", None),
    ("self.v = np.vectorize(float, otypes=[np.float64])\nself.v(np.array([1.0]))", "CKPT009"),
    ("self.v = np.vectorize(float, otypes=[np.float64])", None),
    ("self.v = np.vectorize(float)\nself.v(np.array([1.0]))", None),
]
# Callables handed to objects that keep them.
HANDED = [
    ("self.v = make_scorer(lambda y, p: 0.0)", "CKPT003"),
    ("self.v = make_scorer(np.maximum)", None),
    ("self.v = make_pipeline(FunctionTransformer(lambda X: X), StandardScaler())", "CKPT003"),
    ("self.v = make_pipeline(FunctionTransformer(np.log1p), StandardScaler())", None),
    (
        "self.v = ColumnTransformer([('n', StandardScaler(), lambda f: [0])]).fit(np.ones((2, 2)))",
        "CKPT003",
    ),
    ("self.v = FunctionTransformer(np.log1p).fit(np.ones((2, 2)))", None),
    ("self.v = self.gate_fn", "CKPT003"),
    ("self.v = self.act_fn", None),
    ("self.v = self.gate_fn(1.0)", None),
]
# Bound methods of values that do not pickle hold those values.
BOUND = [
    ("self.v = struct.Struct('<if').unpack", "CKPT009"),
    ("rec = struct.Struct('<if')\nself.v = rec.unpack_from", "CKPT009"),
    ("self.v = struct.Struct('<if').size", None),
    ("self.v = struct.unpack", None),
    ("self.v = json.JSONDecoder().decode", "CKPT009"),
    ("self.v = json.loads", None),
    ("self.v = torch.compile(self.fc.forward)", "CKPT009"),
    ("self.v = torch.compile(self.fc)", None),
]
TABLE = OBJECT_ARRAYS + QUIET + WRAPPED + HANDED + BOUND


def _findings(body: str) -> list[str]:
    source = HEADER + textwrap.indent(textwrap.dedent(body), " " * 8)
    return [f.code for f in analyze_text(source, "model.py") if f.attribute == "v"]


def _runtime(body: str) -> object:
    source = HEADER + textwrap.indent(textwrap.dedent(body), " " * 8)
    space: dict[str, object] = {"__name__": "snippet"}
    exec(compile(source, "model.py", "exec"), space)  # noqa: S102 - the table's own snippets
    return space["Model"]().v  # type: ignore[operator,attr-defined]


@pytest.mark.parametrize(("body", "rule"), TABLE)
def test_analyzer_verdict(body: str, rule: str | None) -> None:
    assert _findings(body) == ([rule] if rule else [])


@pytest.mark.parametrize(("body", "rule"), TABLE)
def test_runtime_agrees(body: str, rule: str | None) -> None:
    # pickle.dumps, as the corpus oracle measures
    value = _runtime(body)
    try:
        pickle.dumps(value)
        pickles = True
    except Exception:
        pickles = False
    assert pickles == (rule in (None, "CKPT004"))
    if rule == "CKPT004" or (rule is None and isinstance(value, np.ndarray)):
        assert isinstance(value, np.ndarray)
        try:  # what the oracle asks of an array: a weights-only save
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # StringDType: "saved as python objects"
                np.save(io.BytesIO(), value, allow_pickle=False)
            portable = True
        except ValueError:
            portable = False
        assert portable == (rule != "CKPT004")


def test_bound_class_lambda_is_left_alone() -> None:
    """Through the instance a class-level lambda is a bound method: pickle.dumps writes it as
    getattr(obj, "<lambda>") and only loading fails, which the corpus oracle does not count."""
    assert _findings("self.v = self.bound_lambda") == []


def test_module_functions_behind_library_decorators() -> None:
    """`@torch.jit.script` makes a ScriptFunction and `@np.vectorize` hides the function from
    pickle's lookup by name; `@torch.compile` keeps the name (functools.wraps) and pickles."""
    source = (
        "import numpy as np, torch\nfrom torch import nn\n"
        "@torch.jit.script\ndef fused(x: torch.Tensor) -> torch.Tensor:\n    return x\n"
        "@np.vectorize\ndef clip01(x):\n    return x\n"
        "@torch.compile\ndef fast(x):\n    return x\n"
        "class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.a = fused\n        self.b = clip01\n        self.c = fast\n"
        "        self.d = fused(torch.ones(1))\n"
    )
    assert [(f.code, f.attribute) for f in analyze_text(source)] == [
        ("CKPT009", "a"),
        ("CKPT009", "b"),
    ]
