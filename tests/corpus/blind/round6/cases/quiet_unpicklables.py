"""Small, harmless-looking helper values that do not pickle (and their look-alikes that do)."""
import functools
import hashlib
import logging
import sched
import selectors
import struct
import time
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn
from torch.utils.data import Dataset

log = logging.getLogger(__name__)


class MaskedAttention(nn.Module):
    def __init__(self, dim=8, dtype=torch.float32):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.finfo = torch.finfo(dtype)  # truth: pickle
        self.scale = dim**-0.5

    def forward(self, x, mask):
        q, k, v = self.qkv(x).chunk(3, -1)
        att = (q @ k.transpose(-1, -2)) * self.scale
        return att.masked_fill(~mask, self.finfo.min).softmax(-1) @ v


class MaskedAttentionMin(nn.Module):
    """Clean: only the float out of finfo is kept."""

    def __init__(self, dim=8, dtype=torch.float32):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.mask_value = torch.finfo(dtype).min
        self.eps = torch.finfo(dtype).eps
        self.np_limits = np.finfo(np.float32)  # truth: pickle


class TokenClamp(nn.Module):
    def __init__(self, dtype=torch.int32):
        super().__init__()
        info = torch.iinfo(dtype)
        self.limits = info  # truth: pickle
        self.max_id = info.max

    def forward(self, ids):
        return ids.clamp(0, self.max_id)


class BinaryRecordDataset(Dataset):
    def __init__(self, blob=b"\x01\x00\x00\x00\x00\x00\x80?" * 4):
        self.blob = blob
        self.record = struct.Struct("<if")  # truth: pickle
        self.record_fmt = "<if"
        self.record_size = struct.calcsize("<if")

    def __len__(self):
        return len(self.blob) // self.record.size

    def __getitem__(self, i):
        return self.record.unpack_from(self.blob, i * self.record.size)


class ElementwiseParser(BaseEstimator):
    def fit(self, X, y=None):
        self.parse_ = np.frompyfunc(float, 1, 1)  # truth: pickle
        return self


class VectorizedParser(BaseEstimator):
    """Clean: np.vectorize without otypes keeps only the function, even after a call."""

    def fit(self, X, y=None):
        self.parse_ = np.vectorize(float)
        self.parse_(np.asarray(X))
        return self


class TypedVectorizedParser(BaseEstimator):
    def fit(self, X, y=None):
        self.parse_ = np.vectorize(float, otypes=[np.float64])  # truth: pickle
        self.parse_(np.asarray(X))
        return self


class TypedVectorizedUnused(BaseEstimator):
    """Clean: with otypes, but never called before pickling."""

    def fit(self, X, y=None):
        self.parse_ = np.vectorize(float, otypes=[np.float64])
        return self


class LoggedTrainer(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 4)
        self.logger = logging.Logger(f"{type(self).__name__}")  # truth: pickle
        self.logger.setLevel(logging.INFO)


class RegistryLoggedTrainer(nn.Module):
    """Clean: getLogger() loggers pickle by name."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 4)
        self.logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        self.adapter = logging.LoggerAdapter(log, {"run": 1})


class AdaptedLogger(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 4)
        self.log = logging.LoggerAdapter(logging.Logger("train"), {"run": 1})  # truth: pickle


class SocketFeed(Dataset):
    def __init__(self):
        self.items = list(range(4))
        self.sel = selectors.DefaultSelector()  # truth: pickle

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class ScheduledRefresh(nn.Module):
    def __init__(self, every=60.0):
        super().__init__()
        self.every = every
        self.scheduler = sched.scheduler(time.monotonic, time.sleep)  # truth: pickle
        self.proj = nn.Linear(4, 4)


class QuietModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self._quiet = warnings.catch_warnings()  # truth: pickle

    def forward(self, x):
        with self._quiet:
            warnings.simplefilter("ignore")
            return self.fc(x)


class DedupDataset(Dataset):
    def __init__(self, algo="sha256"):
        self.items = [b"a", b"b"]
        self.hasher = functools.partial(hashlib.new, algo)  # truth: pickle

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.hasher(self.items[i]).hexdigest()


class Md5DedupDataset(Dataset):
    """Clean: a partial over hashlib.md5 pickles (only hashlib.new does not)."""

    def __init__(self):
        self.items = [b"a", b"b"]
        self.hasher = functools.partial(hashlib.md5, usedforsecurity=False)
        self.sha = hashlib.sha256

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.hasher(self.items[i]).hexdigest()


class AmpWrapper(nn.Module):
    """Clean: autocast and no_grad context objects pickle."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.autocast = torch.autocast("cpu", dtype=torch.bfloat16)
        self.frozen = torch.no_grad()

    def forward(self, x):
        with self.autocast:
            return self.fc(x)



class NormalizedHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.head = nn.utils.parametrizations.weight_norm(nn.Linear(8, 2))  # truth: pickle


class LegacyNormalizedHead(nn.Module):
    """Clean: the pre-parametrization weight_norm keeps a picklable forward-pre-hook object."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.head = nn.utils.weight_norm(nn.Linear(8, 2))


FACTORIES = {
    "ElementwiseParser": lambda: ElementwiseParser().fit(["1", "2"]),
    "VectorizedParser": lambda: VectorizedParser().fit(["1", "2"]),
    "TypedVectorizedParser": lambda: TypedVectorizedParser().fit(["1", "2"]),
    "TypedVectorizedUnused": lambda: TypedVectorizedUnused().fit(["1", "2"]),
}
