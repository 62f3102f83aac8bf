"""Classes that take charge of their own pickling, correctly or not."""
import copy
import io
import logging
import os
import sqlite3
import tempfile
import threading

import h5py
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

log = logging.getLogger(__name__)


def _h5(n=4):
    path = os.path.join(tempfile.mkdtemp(), "feats.h5")
    with h5py.File(path, "w") as fh:
        fh["x"] = np.zeros((n, 3))
    return path


class H5Features(Dataset):
    """Clean: the handle is dropped in __getstate__ and reopened lazily."""

    def __init__(self, path=None):
        self.path = path or _h5()
        self.file = h5py.File(self.path, "r")
        self.n = len(self.file["x"])

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["file"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.file = h5py.File(self.path, "r")

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.file["x"][i]


class ThreadSafeStats(nn.Module):
    """Clean: a dict comprehension in __getstate__ filters the lock and the condition."""

    _transient = ("_lock", "_ready")

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self.count = 0

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in self._transient}

    def __setstate__(self, state):
        super().__setstate__(state)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)


class ShardedFeatures(Dataset):
    """__getstate__ drops the row cache but forgets the audit log opened next to it."""

    def __init__(self, path=None):
        self.path = path or _h5()
        self._rows = {}
        self.audit = open(os.devnull, "a")  # truth: pickle

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_rows"] = {}
        return state

    def __len__(self):
        return 4

    def __getitem__(self, i):
        if i not in self._rows:
            with h5py.File(self.path, "r") as fh:
                self._rows[i] = fh["x"][i]
        return self._rows[i]


class DbBackedEmbedding(nn.Module):
    """Clean: __reduce__ rebuilds from constructor arguments."""

    def __init__(self, dim=4, db=":memory:"):
        super().__init__()
        self.dim, self.db = dim, db
        self.emb = nn.Embedding(10, dim)
        self.conn = sqlite3.connect(db)

    def __reduce__(self):
        return (type(self), (self.dim, self.db))

    def forward(self, idx):
        return self.emb(idx)


class CopyingState(nn.Module):
    """Its __getstate__ deep-copies everything, the open buffer file included."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(2, 2)
        self.spill = tempfile.TemporaryFile()  # truth: pickle
        self.scratch = io.BytesIO(b"\x00" * 8)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items()}


class ClosingReader(Dataset):
    """Clean: reads the header, then closes the handle and forgets it."""

    def __init__(self, path=None):
        self.path = path or _h5()
        self.fh = open(self.path, "rb")
        self.magic = self.fh.read(8)
        self.fh.close()
        self.fh = None
        self.log = log

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.magic


class ClosedButKept(Dataset):
    def __init__(self, path=None):
        self.path = path or _h5()
        with open(self.path, "rb") as fh:
            self.magic = fh.read(8)
            self.src = fh  # truth: pickle

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.magic


class SessionCache:
    """Not a model, but it defines __getstate__, so it is meant to be pickled; it forgets the lock."""

    def __init__(self):
        self.entries = {}
        self.lock = threading.Lock()  # truth: pickle

    def __getstate__(self):
        return self.__dict__


class TempWorkspace:
    """Plain class with __reduce__: rebuilt from its root, the handle never pickled."""

    def __init__(self, root=None):
        self.root = root or tempfile.mkdtemp()
        self.index = open(os.path.join(self.root, "index"), "w")

    def __reduce__(self):
        return (TempWorkspace, (self.root,))


class SnapshotModel(nn.Module):
    """Clean: snapshots of the weights, a copied state dict and a workspace that reduces itself."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 3)
        self.best_state = copy.deepcopy(self.body.state_dict())
        self.history = [torch.zeros(3)]
        self.named = dict(self.named_parameters())
