"""Encoders: hazards behind helpers, aliases, class attributes and project code."""
import os
import threading as th
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from round5.common import ProjectBase, RunLog, make_sink, timed_cube, traced_square


def clip_hook(module, inputs, output):
    return output.clamp(-10, 10)


shifted_relu = lambda x: F.relu(x - 0.5)  # noqa: E731


class TextEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self._open_trace()

    def _open_trace(self):
        self.trace = open(os.devnull, "w")  # truth: pickle

    def forward(self, x):
        return self.embed(x)


class ClippedEncoder(nn.Module):
    """Clean: a hook handle on a module-level function, F.gelu, a partial of torch.mul."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.hook = self.lin.register_forward_hook(clip_hook)
        self.act = F.gelu
        self.scale = partial(torch.mul, other=2.0)
        self.n_params = sum(p.numel() for p in self.parameters())

    def forward(self, x):
        return self.scale(self.act(self.lin(x)))


class ShiftedEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.act = shifted_relu  # truth: pickle

    def forward(self, x):
        return self.act(self.lin(x))


class SharedLockEncoder(nn.Module):
    GUARD = th.Lock()

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.guard = self.GUARD  # truth: pickle

    def forward(self, x):
        with self.guard:
            return self.lin(x)


class ClassLockEncoder(nn.Module):
    """Clean: the lock lives on the class, never on the instance."""

    _registry_lock = th.RLock()
    registry = {}

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.name = type(self).__name__
        with self._registry_lock:
            self.registry[self.name] = 1

    def forward(self, x):
        return self.lin(x)


class VerboseEncoder(nn.Module):
    def __init__(self, verbose=True):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.debug = open(os.devnull, "w") if verbose else None  # truth: pickle

    def forward(self, x):
        return self.lin(x)


class MultiHeadEncoder(nn.Module):
    def __init__(self, heads=3):
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(4, 4) for _ in range(heads))
        self.scalers = [lambda t, k=k: t * k for k in range(heads)]  # truth: pickle

    def forward(self, x):
        return sum(s(h(x)) for s, h in zip(self.scalers, self.heads))


class SinkEncoder(ProjectBase):
    def __init__(self):
        super().__init__()
        self.sink = make_sink()  # truth: pickle
        self.square = traced_square

    def forward(self, x):
        return self.square(x)


class CubeEncoder(ProjectBase):
    def __init__(self):
        super().__init__()
        self.cube = timed_cube  # truth: pickle

    def forward(self, x):
        return self.cube(x)


class AuditedEncoder(ProjectBase):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.audit = RunLog()  # truth: pickle

    def forward(self, x):
        self.audit.write("forward")
        return self.lin(x)
