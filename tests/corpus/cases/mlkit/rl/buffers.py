"""Replay buffers exposed as datasets."""

import itertools
import logging
import os
import tempfile
from types import SimpleNamespace

import lmdb
import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

log = logging.getLogger(__name__)


class LmdbReplay(Dataset):
    """Opens LMDB lazily in each DataLoader worker (the usual fix)."""

    def __init__(self, path=None, length=8):
        self.path = path or tempfile.mkdtemp(prefix="replay-")
        self.length = length

    def _open(self):
        self.env = lmdb.open(self.path, readonly=False, lock=False, map_size=1 << 20)
        self.txn = self.env.begin()

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        if not hasattr(self, "txn"):
            self._open()
        return self.txn.get(str(i).encode())


class EpisodeBuffer(Dataset[dict]):
    """Typed dataset; stores transitions as object arrays of dicts."""

    def __init__(self, capacity=4):
        self.capacity = capacity
        self.transitions = np.array([{"obs": 0, "reward": 0.0}] * capacity)  # truth: portable
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.tags = np.zeros(capacity, dtype="O")  # truth: portable
        self.names = np.array(["a", "b"], dtype=str)

    def __len__(self):
        return self.capacity

    def __getitem__(self, i):
        return self.transitions[i]


class PrioritizedStream(IterableDataset):
    def __init__(self, priorities=(0.5, 0.3, 0.2)):
        self.priorities = list(priorities)
        self.numbered = enumerate(p for p in self.priorities)  # truth: pickle
        self.ranked = enumerate(sorted(self.priorities))
        self.flat = list(itertools.chain.from_iterable([[1], [2]]))

    def __iter__(self):
        return iter(self.priorities)


class StatsBuffer(Dataset):
    """Stores run-time handles in a namespace attribute."""

    def __init__(self):
        self.stats = SimpleNamespace(count=0)  # truth: pickle
        self.stats.sink = open(os.devnull, "w")
        self.data = torch.zeros(4)

    def __len__(self):
        return 4

    def __getitem__(self, i):
        self.stats.count += 1
        return self.data[i]


class DiskQueue(Dataset):
    def __init__(self, directory=None):
        directory = directory or tempfile.mkdtemp()
        self.entries = os.scandir(directory)  # truth: pickle
        self.count = len(os.listdir(directory))

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        raise IndexError(i)
