"""Convolutional blocks.  Imported relatively from the package base."""

import os
import threading
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import base as _base
from .base import DEFAULT_WIDTH, Layer, StatefulLayer


def make_norm(kind, channels):
    """Return a normalisation callable; 'rms' has no module equivalent here."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)

    def rms_norm(x, eps=1e-6):
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)

    return rms_norm


class ConvBlock(Layer):
    """conv -> norm -> act; clean."""

    def __init__(self, c_in=3, c_out=DEFAULT_WIDTH, p_drop=0.1):
        super().__init__("conv")
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm = nn.BatchNorm2d(c_out)
        self.act = nn.GELU()
        self.dropout = partial(F.dropout, p=p_drop)

    def forward(self, x):
        return self.dropout(self.act(self.norm(self.conv(x))), training=self.training)


class ResidualBlock(Layer):
    def __init__(self, c_in=DEFAULT_WIDTH, c_out=DEFAULT_WIDTH):
        super().__init__("res")
        self.body = ConvBlock(c_in, c_out)
        # identity shortcut when the shapes already match
        self.shortcut = (lambda x: x) if c_in == c_out else nn.Conv2d(c_in, c_out, 1)  # truth: pickle

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


class SqueezeExcite(StatefulLayer):
    """The base class drops `_lock` on pickling, so an RLock here is fine."""

    def __init__(self, channels=DEFAULT_WIDTH, ratio=4):
        super().__init__("se")
        self.fc1 = nn.Linear(channels, channels // ratio)
        self.fc2 = nn.Linear(channels // ratio, channels)
        self.gate = torch.sigmoid
        self._lock = threading.RLock()

    def forward(self, x):
        w = x.mean(dim=(2, 3))
        w = self.gate(self.fc2(F.relu(self.fc1(w))))
        with self._lock:
            self._scratch = w.detach()
        return x * w[:, :, None, None]


class DropPath(_base.Layer):
    def __init__(self, p=0.1, seed=0):
        super().__init__("drop_path")
        self.p = p
        self._rng = np.random.default_rng(seed)

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = self._rng.random(x.shape[0]) >= self.p
        return x * torch.as_tensor(keep, dtype=x.dtype)[:, None, None, None] / (1 - self.p)


class TracedBlock(Layer):
    """Writes activation statistics for offline debugging."""

    def __init__(self, channels=DEFAULT_WIDTH, trace_to=os.devnull):
        super().__init__("traced")
        self.inner = ConvBlock(channels, channels)
        self.trace_to = trace_to
        self._init_tracing()

    def _init_tracing(self):
        self.trace_file = open(self.trace_to, "w")  # truth: pickle
        self.n_calls = 0

    def forward(self, x):
        y = self.inner(x)
        self.n_calls += 1
        print(self.n_calls, float(y.std()), file=self.trace_file)
        return y


class NormedBlock(Layer):
    def __init__(self, channels=DEFAULT_WIDTH, norm="rms"):
        super().__init__("normed")
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = make_norm(norm, channels)  # truth: pickle

    def forward(self, x):
        return self.norm(self.conv(x))


class BatchNormedBlock(Layer):
    """Conv followed by a placeholder for a later norm layer; clean."""

    def __init__(self, channels=DEFAULT_WIDTH):
        super().__init__("bn")
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.post = nn.Identity()

    def forward(self, x):
        return self.post(self.conv(x))
