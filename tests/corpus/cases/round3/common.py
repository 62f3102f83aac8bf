"""Shared building blocks of the project: base classes, registries and small factories."""
import enum
import functools
import logging
import math
import os
import tempfile
from collections import namedtuple
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

logger = logging.getLogger("round3")

Batch = namedtuple("Batch", ["inputs", "targets"])


class Phase(enum.Enum):
    TRAIN = "train"
    EVAL = "eval"


@dataclass
class ModelConfig:
    hidden: int = 32
    heads: int = 4
    dropout: float = 0.1
    tags: list = field(default_factory=list)


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


def _timed(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


def _counted(fn):
    def wrapper(*args, **kwargs):
        wrapper.calls += 1
        return fn(*args, **kwargs)

    wrapper.calls = 0
    return wrapper


@_timed
def smooth_l1(pred, target):
    return F.smooth_l1_loss(pred, target)


@_counted
def focal_loss(logits, target, gamma=2.0):
    ce = F.cross_entropy(logits, target, reduction="none")
    return ((1 - torch.exp(-ce)) ** gamma * ce).mean()


quick_gelu = lambda x: x * torch.sigmoid(1.702 * x)  # noqa: E731

ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_tanh": gelu_tanh,
    "relu": torch.relu,
    "quick_gelu": quick_gelu,
}


def get_activation(name):
    return ACTIVATIONS[name]


def make_scaler(scale):
    def scaled(x):
        return x * scale

    return scaled


def cosine_warmup(step, warmup=100, total=1000):
    if step < warmup:
        return step / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


def open_run_log(name="run.log"):
    path = os.path.join(tempfile.mkdtemp(), name)
    return open(path, "a", buffering=1)


def scratch_dir():
    return tempfile.mkdtemp(prefix="r3-")


class Backbone(nn.Module):
    """The project's base for every network."""

    def __init__(self, cfg=None):
        super().__init__()
        self.cfg = cfg or ModelConfig()
        self.log = logging.getLogger(type(self).__name__)

    def num_params(self):
        return sum(p.numel() for p in self.parameters())


class StatsMixin:
    """Plain mixin: running statistics kept next to the model."""

    def init_stats(self):
        self.stats = {"steps": 0, "loss": 0.0}


class TokenizerBase:
    """Plain helper, not a model; subclasses become Datasets elsewhere."""

    def __init__(self, lowercase=True):
        self.lowercase = lowercase

    def normalize(self, text):
        return text.lower() if self.lowercase else text


class MetricsSink:
    """A plain helper object that writes metrics to disk (holds an open file)."""

    def __init__(self):
        self.fh = open_run_log("metrics.log")

    def write(self, key, value):
        self.fh.write(f"{key}\t{value}\n")


FACTORIES = {"Phase": lambda: Phase.TRAIN}

NOT_BUILT = {"MetricsSink": "not a model: a plain helper object, never checkpointed on its own"}
