"""Callables stored on models: the most common reason torch.save(model) fails."""

from collections import defaultdict, namedtuple
from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

identity = lambda x: x  # noqa: E731  (module-level lambda: pickled by name '<lambda>', which fails)


def swish(x):
    return x * torch.sigmoid(x)


def make_scaler(k):
    def scale(x):
        return x * k

    return scale


ACTIVATIONS = {"relu": F.relu, "swish": swish}


class LambdaLayer(nn.Module):
    """The CIFAR ResNet 'option A' shortcut."""

    def __init__(self, planes=16):
        super().__init__()
        pad = planes // 4
        self.fn = lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad))  # truth: pickle

    def forward(self, x):
        return self.fn(x)


class IdentityByName(nn.Module):
    def __init__(self):
        super().__init__()
        self.fn = identity  # truth: pickle

    def forward(self, x):
        return self.fn(x)


class NamedActivation(nn.Module):
    """Clean: functions looked up in a module-level table."""

    def __init__(self, name="swish"):
        super().__init__()
        self.act = ACTIVATIONS[name]
        self.fallback = swish

    def forward(self, x):
        return self.act(x)


class DefaultTransform(nn.Module):
    def __init__(self, transform=lambda t: t * 2):
        super().__init__()
        self.transform = transform  # truth: pickle

    def forward(self, x):
        return self.transform(x)


class ActivationZoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = {"relu": torch.relu, "square": lambda t: t * t}  # truth: pickle
        self.chain = [F.relu, F.gelu]
        self.pre = (torch.tanh, lambda t: t.clamp(0))  # truth: pickle

    def forward(self, x):
        return self.table["relu"](x)


class ClosureScaled(nn.Module):
    def __init__(self, k=2.0):
        super().__init__()
        self.scale = make_scaler(k)  # truth: pickle

    def forward(self, x):
        return self.scale(x)


class HookedModel(nn.Module):
    """Keeps the hook function it registers (a closure over self)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.features = {}

        def save_output(name):
            return partial(_store, self.features, name)

        self.make_hook = save_output  # truth: pickle
        self.store = partial(_store, self.features)

    def forward(self, x):
        return self.fc(x)


def _store(sink, name, value):
    sink[name] = value


class LocalConfig(nn.Module):
    def __init__(self, dim=4):
        super().__init__()

        class Config:
            hidden = dim * 2

        self.cfg = Config()  # truth: pickle
        self.fc = nn.Linear(dim, Config.hidden)

    def forward(self, x):
        return self.fc(x)


class LocalTypes(nn.Module):
    def __init__(self):
        super().__init__()
        Pair = namedtuple("Pair", "a b")
        self.pair_type = Pair  # truth: pickle
        self.n_fields = len(Pair._fields)

    def forward(self, x):
        return x


class CountsWithDefault(nn.Module):
    def __init__(self):
        super().__init__()
        self.counts = defaultdict(lambda: 0)  # truth: pickle
        self.lists = defaultdict(list)

    def forward(self, x):
        self.counts["calls"] += 1
        return x


class PartialOfLambda(nn.Module):
    def __init__(self, slope=0.1):
        super().__init__()
        self.leaky = partial(F.leaky_relu, negative_slope=slope)
        self.shifted = partial(lambda x, s: x + s, s=1.0)  # truth: pickle

    def forward(self, x):
        return self.shifted(self.leaky(x))


class MappedInputs(nn.Module):
    def __init__(self, values=(1.0, 2.0)):
        super().__init__()
        self.scaled = map(lambda v: v * 0.5, values)  # truth: pickle
        self.as_tensors = list(map(torch.tensor, values))

    def forward(self, x):
        return x
