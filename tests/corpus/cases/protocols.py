"""Pickling protocols written in the many ways people write them."""

import os
import socket
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

from torch import nn
from torch.utils.data import Dataset


class PicklableMixin:
    """Drops every attribute named in `_unpicklable` (subclasses extend the tuple)."""

    _unpicklable = ()

    def __getstate__(self):
        state = self.__dict__.copy()
        for name in self._unpicklable:
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reopen()

    def _reopen(self):
        pass


class DbDataset(PicklableMixin, Dataset):
    _unpicklable = ("conn", "pool")

    def __init__(self):
        self.conn = sqlite3.connect(":memory:")
        self.pool = ThreadPoolExecutor(1)
        self.rows = [1, 2, 3]

    def _reopen(self):
        self.conn = sqlite3.connect(":memory:")
        self.pool = ThreadPoolExecutor(1)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


class NoneOutState(nn.Module):
    """Replaces the handles with None instead of removing them."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.sock = socket.socket()
        self.lock = threading.Lock()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["sock"] = None
        state.update(lock=None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self.lock = threading.Lock()

    def forward(self, x):
        return self.fc(x)


class LoopPopped(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self._log = open(os.devnull, "w")
        self._mutex = threading.RLock()

    def __getstate__(self):
        state = dict(self.__dict__)
        for key in ("_log", "_mutex"):
            del state[key]
        return state

    def forward(self, x):
        return self.fc(x)


class PrivateOnlyState(Dataset):
    """Keeps public attributes only."""

    def __init__(self):
        self.items = list(range(4))
        self._cache_file = open(os.devnull)
        self._ready = threading.Event()

    def __getstate__(self):
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._ready = threading.Event()

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class TypoInState(nn.Module):
    """Pops 'lock' but the attribute is '_lock'."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self._lock = threading.Lock()  # truth: pickle

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("lock", None)
        return state

    def forward(self, x):
        return self.fc(x)


class VarsState(Dataset):
    def __init__(self):
        self.cursor = sqlite3.connect(":memory:").cursor()  # truth: pickle

    def __getstate__(self):
        return vars(self)

    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise IndexError(i)


class SpreadState(Dataset):
    def __init__(self):
        self.lock = threading.Lock()  # truth: pickle

    def __getstate__(self):
        return {**self.__dict__}

    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise IndexError(i)


class TupleState:
    """A plain class that pickles as a tuple of its settings."""

    def __init__(self, host="localhost", port=0):
        self.host, self.port = host, port
        self.sock = socket.socket()

    def __getstate__(self):
        return (self.host, self.port)

    def __setstate__(self, state):
        self.host, self.port = state
        self.sock = socket.socket()


class ReduceBase(nn.Module):
    """Rebuilt from its constructor arguments; subclasses inherit that."""

    def __init__(self, dim=4):
        super().__init__()
        self.dim = dim
        self.fc = nn.Linear(dim, dim)

    def __reduce__(self):
        return (type(self), (self.dim,))

    def forward(self, x):
        return self.fc(x)


class ReducedChild(ReduceBase):
    def __init__(self, dim=4):
        super().__init__(dim)
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.lock = threading.Lock()
