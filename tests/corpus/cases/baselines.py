"""Baseline models.  Everything here pickles: none of it should be reported."""

import dataclasses
import enum
import io
import logging
import operator
import os
import random
import re
import tempfile
import threading
import types
from collections import OrderedDict, deque, namedtuple
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn
from torch.utils.data import Dataset

logger = logging.getLogger(__name__)

Span = namedtuple("Span", "start end")


class Pooling(enum.Enum):
    MEAN = "mean"
    MAX = "max"


@dataclasses.dataclass
class EncoderConfig:
    dim: int = 16
    depth: int = 2
    pooling: Pooling = Pooling.MEAN


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


class TinyEncoder(nn.Module):
    """Config objects, enums, torch functions and partials of module-level functions."""

    clamp = staticmethod(lambda x: x.clamp(-5, 5))  # class attribute: never pickled with the instance
    _shared_lock = threading.Lock()  # class attribute too

    def __init__(self, config=None):
        super().__init__()
        self.config = config or EncoderConfig()
        self.pooling = self.config.pooling
        self.layers = nn.ModuleList(nn.Linear(self.config.dim, self.config.dim) for _ in range(2))
        self.act = torch.relu
        self.final_act = partial(gelu_tanh)
        self.pick_first = operator.itemgetter(0)
        self.get_dim = operator.attrgetter("dim")
        self.log = logger
        self.child_log = logging.getLogger(f"{__name__}.TinyEncoder")
        self.params = list(self.parameters())
        self.cache = None

    def forward(self, x):
        for layer in self.layers:
            x = self.act(layer(x))
        x = self.clamp(self.final_act(x))
        return x.mean(dim=1) if self.pooling is Pooling.MEAN else x.max(dim=1).values


class BufferedRecorder(nn.Module):
    """In-memory streams, regexes and iterators over lists are all picklable."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.raw = io.BytesIO()
        self.text = io.StringIO("header\n")
        self.word_re = re.compile(r"\w+")
        self.schedule = iter([0.1, 0.05, 0.01])
        self.names = map(str.upper, ["a", "b"])
        self.pairs = zip("ab", range(2))
        self.history = deque(maxlen=10)
        self.random = random.Random(0)
        self.rng = np.random.default_rng(0)
        self.torch_gen = torch.Generator().manual_seed(0)

    def forward(self, x):
        self.history.append(float(x.mean()))
        return self.proj(x)


class SelfReferencing(nn.Module):
    """Circular references and bound methods of itself are fine for pickle."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.graph = {"name": "root", "children": []}
        self.graph["children"].append(self.graph)
        self.step_fn = self.step
        self.ns = types.SimpleNamespace(lr=0.1, momentum=0.9)
        self.spans = [Span(0, 3), Span(3, 5)]
        self.ordered = OrderedDict(a=1)

    def step(self, x):
        return self.fc(x)

    def forward(self, x):
        return self.step_fn(x)


class DiskBackedDataset(Dataset):
    """Paths, temporary directories and copies of the environment pickle."""

    def __init__(self):
        self.workdir = tempfile.TemporaryDirectory(prefix="ds-")
        self.root = Path(self.workdir.name)
        self.files = sorted(self.root.glob("*.npy"))
        self.env = dict(os.environ)
        self.env_copy = os.environ.copy()
        self.home = os.environ.get("HOME", "/tmp")
        self.cpu = os.cpu_count()
        self.sizes = {p.name: p.stat().st_size for p in self.files}

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return np.load(self.files[i])


class PlainEstimator(BaseEstimator):
    def __init__(self, alpha=1.0):
        self.alpha = alpha
        self.coef_ = np.zeros(3)
        self.names_ = np.array(["x0", "x1", "x2"])
        self.lookup_ = {"x0": 0}

    def fit(self, X, y=None):
        return self


class ProcessLocalState(nn.Module):
    """The scratch value is created and closed within __init__; only None is left."""

    def __init__(self, path=os.devnull):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.tmp = open(path)
        self.first_line = self.tmp.readline()
        self.tmp.close()
        self.tmp = None

    def forward(self, x):
        return self.fc(x)


FACTORIES = {"Pooling": lambda: Pooling.MEAN}
