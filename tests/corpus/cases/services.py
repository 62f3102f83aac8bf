"""Inference services built around nn.Modules."""

import asyncio
import functools
import logging
import multiprocessing as mp
import os
import threading
import types

import torch
from torch import nn

import mlkit.compat as compat
from mlkit.data.io_utils import open_log


def leaky(slope):
    """Returns a closure; used by several heads."""
    return lambda x: torch.where(x > 0, x, x * slope)


class AsyncScorer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.pending = self._score_later()  # truth: pickle

    async def _score_later(self):
        await asyncio.sleep(0)
        return 1.0

    def forward(self, x):
        return self.fc(x)


class NoGradPredict(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.predict = torch.no_grad()(self.predict)  # truth: pickle

    def predict(self, x):
        return self.fc(x).argmax(-1)


class LeakyHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.act = leaky(0.1)  # truth: pickle
        self.act_name = leaky.__name__

    def forward(self, x):
        return self.act(self.fc(x))


class ModuleRefs(nn.Module):
    def __init__(self):
        super().__init__()
        self.nn = nn  # truth: pickle
        self.compat = compat  # truth: pickle
        self.compat_version = compat.pl.__version__

    def forward(self, x):
        return x


class LocalVarRewritten(nn.Module):
    """The local name is rebound to the file's contents before it is stored."""

    def __init__(self, path=os.devnull):
        super().__init__()
        data = open(path)
        data = data.read()
        self.data = data
        handle = None
        handle = open(path)
        self.handle = handle  # truth: pickle

    def forward(self, x):
        return x


class TryOpen(nn.Module):
    def __init__(self):
        super().__init__()
        try:
            self.audit = open_log()  # truth: pickle
        except OSError:
            self.audit = None
        self.fallback = None

    def forward(self, x):
        return x


class VerboseByDefault(nn.Module):
    def __init__(self, verbose=True):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.trace = open(os.devnull, "w") if verbose else None  # truth: pickle

    def forward(self, x):
        return self.fc(x)


class HooksExtended(nn.Module):
    def __init__(self):
        super().__init__()
        self.hooks = [print]
        self.hooks += [lambda msg: None]  # truth: pickle

    def forward(self, x):
        return x


class StaticLambda(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = staticmethod(lambda x: x / x.norm())  # truth: pickle
        self.bound_norm = torch.linalg.norm

    def forward(self, x):
        return x


class LambdaAttrClean(nn.Module):
    """Lambdas used and thrown away in __init__; nothing stored."""

    def __init__(self, sizes=(3, 1, 2)):
        super().__init__()
        order = sorted(range(len(sizes)), key=lambda i: sizes[i])
        self.order = order
        self.largest = max(sizes, key=lambda s: s)
        self.layers = nn.ModuleList(nn.Linear(s, s) for s in sizes)
        self.mapping = types.MappingProxyType({"a": 1})  # truth: pickle

    def forward(self, x):
        return x


class WorkerPool(compat.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 2)
        self.pool = mp.Pool(1)  # truth: pickle
        self.barrier = threading.Barrier(2)  # truth: pickle
        self.log_name = logging.getLogger("pool").name

    def training_step(self, batch, batch_idx):
        return self.net(batch).sum()


class WrappedForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.safe_forward = functools.partial(type(self).forward, self)

    def forward(self, x):
        return self.fc(x)


class CallbackStore(compat.Callback):
    def __init__(self):
        self.on_epoch = []  # truth: pickle
        self.on_epoch.append(lambda trainer: None)
        self.sink = None

    def on_train_epoch_end(self, trainer, pl_module):
        for fn in self.on_epoch:
            fn(trainer)
