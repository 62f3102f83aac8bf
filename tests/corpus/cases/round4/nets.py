"""nn.Module zoo: EMA wrappers, hooks, cached state, scripted pieces, custom pickling."""
import argparse
import copy
import copyreg
import functools
import inspect
import os
import threading
import traceback
import weakref
from collections import namedtuple
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

Shape = namedtuple("Shape", "c h w")


@dataclass
class HeadSpec:
    dim: int = 8
    dropout: float = 0.1
    tags: list = field(default_factory=list)


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def record_output(module, inputs, output):
    module.last_norm = float(output.norm())


def _timed(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


def _tiny():
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))


class ModelEMA(nn.Module):
    def __init__(self, model=None, decay=0.999):
        super().__init__()
        self.model = model if model is not None else _tiny()
        self.ema = copy.deepcopy(self.model).eval()
        self.decay = decay
        self.params = self.model.parameters()  # truth: pickle

    @torch.no_grad()
    def update(self):
        for e, p in zip(self.ema.parameters(), self.params):
            e.mul_(self.decay).add_(p, alpha=1 - self.decay)


class ShadowEMA(nn.Module):
    def __init__(self, model=None, decay=0.99):
        super().__init__()
        model = model if model is not None else _tiny()
        self.decay = decay
        self.shadow = [p.detach().clone() for p in model.parameters()]
        self.collected = list(model.parameters())
        self._model = weakref.ref(model)  # truth: pickle

    def forward(self, x):
        return self._model()(x)


class PatchFeatures(nn.Module):
    """Hooks a nested function onto an inner layer of the backbone (PatchCore style)."""

    def __init__(self):
        super().__init__()
        self.features = []
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))  # truth: pickle

        def hook_t(module, inputs, output):
            self.features.append(output)

        self.backbone[0].register_forward_hook(hook_t)

    def forward(self, x):
        self.features.clear()
        self.backbone(x)
        return self.features


class HookedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.fc_handle = self.fc.register_forward_hook(record_output)
        self.pre_handle = self.register_forward_pre_hook(lambda mod, args: None)  # truth: pickle

    def forward(self, x):
        return self.fc(x)


class CheckpointAware(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.state_keys = self.state_dict().keys()  # truth: pickle
        self.env = os.environ  # truth: pickle
        self.env_snapshot = dict(os.environ)
        self.rank = int(os.environ.get("RANK", 0))

    def forward(self, x):
        return self.fc(x)


class ConfigurableNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.cfg = {"act": nn.ReLU, "norm": nn.LayerNorm, "init": nn.init.xavier_uniform_}
        self.args = argparse.Namespace(lr=1e-3, layers=2)
        self.spec = HeadSpec()
        self.shape = Shape(3, 32, 32)
        self.ops = SimpleNamespace(fn=F, dim=-1)  # truth: pickle
        Spec = namedtuple("Spec", "k v")
        self.local_spec = Spec(1, 2)  # truth: pickle
        self.body = nn.Sequential(nn.Linear(8, 8), self.cfg["act"]())

    def forward(self, x):
        return self.ops.fn.softmax(self.body(x), dim=self.ops.dim)


class TimedForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.forward = _timed(self.forward)  # truth: pickle
        self.features = functools.lru_cache(maxsize=None)(self._features)  # truth: pickle

    def _features(self, key):
        return key * 2

    def forward(self, x):
        return self.fc(x)


class ScriptedAct(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = torch.jit.script(swish)  # truth: pickle
        self.eager_act = swish
        self.normed = parametrizations.weight_norm(nn.Linear(4, 4))  # truth: pickle

    def forward(self, x):
        return self.act(self.fc(x))


class ExprModule(nn.Module):
    def __init__(self, expr="x * 2 + 1"):
        super().__init__()
        self.expr = expr
        self.code = compile(expr, "<expr>", "eval")  # truth: pickle
        self.origin = inspect.currentframe()  # truth: pickle
        self.created_at = traceback.extract_stack(limit=3)
        self.buffer = bytearray(16)
        self.view = memoryview(self.buffer)  # truth: pickle
        try:
            raise RuntimeError("optional kernel missing")
        except RuntimeError as exc:
            self.last_error = exc
            self.last_tb = exc.__traceback__  # truth: pickle

    def forward(self, x):
        return eval(self.code, {"x": x})


class ClassLevelAct(nn.Module):
    """Clean: a class-level staticmethod reached through the instance is the plain function."""

    act = staticmethod(swish)

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bound_act = self.act

    def forward(self, x):
        return self.bound_act(self.fc(x))


class CopiedClassAct(nn.Module):
    act = lambda x: x * torch.sigmoid(x)  # noqa: E731

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.raw_act = type(self).act  # truth: pickle

    def forward(self, x):
        return self.raw_act(self.fc(x))


_ROOT = nn.Linear(1, 1)


class Listener(nn.Module):
    def __init__(self, parent=None):
        super().__init__()
        parent = parent if parent is not None else _ROOT
        self.owner = weakref.proxy(parent)
        self.peers = weakref.WeakSet()  # truth: pickle
        self.scratch = None

    def forward(self, x):
        return x


class StreamingStats(nn.Module):
    """Clean: copyreg rebuilds it from its width; the lock never reaches pickle."""

    def __init__(self, width=4):
        super().__init__()
        self.width = width
        self.register_buffer("mean", torch.zeros(width))
        self._lock = threading.Lock()

    def forward(self, x):
        with self._lock:
            self.mean.mul_(0.9).add_(x.mean(0), alpha=0.1)
        return x


def _rebuild_stats(obj):
    return StreamingStats, (obj.width,)


copyreg.pickle(StreamingStats, _rebuild_stats)


class ReducedNet(nn.Module):
    """Clean: __reduce__ rebuilds from the constructor arguments."""

    def __init__(self, width=4):
        super().__init__()
        self.width = width
        self.fc = nn.Linear(width, width)
        self._cache_lock = threading.RLock()

    def __reduce__(self):
        return (type(self), (self.width,))

    def forward(self, x):
        return self.fc(x)


class ParentLinked(nn.Module):
    """Clean for pickle: the child keeps a strong reference back to its parent."""

    def __init__(self):
        super().__init__()
        self.child = nn.Linear(2, 2)
        self.child.parent_ref = [self]
        self.cached = self.child(torch.zeros(1, 2))
        self.score = functools.partial(self._score, temperature=2.0)

    def _score(self, x, temperature=1.0):
        return self.child(x) / temperature

    def forward(self, x):
        return self.child(x)
