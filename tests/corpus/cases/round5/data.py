"""Datasets: what spawn DataLoader workers must pickle."""
import csv
import hashlib
import io
import os
import sqlite3 as sql

import numpy as np
from torch.utils.data import Dataset, IterableDataset


class CsvLogDataset(Dataset):
    def __init__(self):
        self.rows = [[1, 2], [3, 4]]
        self.out = csv.writer(open(os.devnull, "w"))  # truth: pickle

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        self.out.writerow(self.rows[i])
        return self.rows[i]


class PropertyDataset(Dataset):
    def __init__(self):
        self.items = [1, 2]
        self.conn = sql.connect(":memory:")  # truth: pickle

    @property
    def conn(self):
        return self._conn

    @conn.setter
    def conn(self, value):
        self._conn = value  # truth: pickle

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class ClosedHandleDataset(Dataset):
    def __init__(self):
        with open(__file__) as fh:
            self.header = fh.readline().strip()
            self.fh = fh  # truth: pickle
        self.buffer = io.StringIO("a,b\n")

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.header


class ShardFiles(Dataset):
    def __init__(self, n=2):
        self.shards = []  # truth: pickle
        for _ in range(n):
            self.shards.append(open(os.devnull, "rb"))

    def __len__(self):
        return len(self.shards)

    def __getitem__(self, i):
        return self.shards[i].read(1)


class ChecksumDataset(Dataset):
    def __init__(self):
        self.items = [b"a", b"b"]
        self.digest = hashlib.md5()  # truth: pickle
        self.fingerprint = hashlib.md5(b"".join(self.items)).hexdigest()

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        self.digest.update(self.items[i])
        return self.items[i]


class WindowStream(IterableDataset):
    def __init__(self):
        self.data = list(range(10))
        self.windows = self._windows(3)  # truth: pickle

    def _windows(self, n):
        for i in range(0, len(self.data), n):
            yield self.data[i : i + n]

    def __iter__(self):
        return self.windows


class EagerWindowStream(IterableDataset):
    """Clean: the generator is consumed into a list; views are copied into a sorted list."""

    def __init__(self):
        self.data = list(range(10))
        self.windows = list(self._windows(3))
        self.lengths = {len(w) for w in self.windows}
        self.vocab = {"a": 0, "b": 1}
        self.tokens = sorted(self.vocab.keys())
        self.cursor = iter(self.data)

    def _windows(self, n):
        for i in range(0, len(self.data), n):
            yield self.data[i : i + n]

    def __iter__(self):
        return iter(self.windows)


class LabelDataset(Dataset):
    def __init__(self):
        self.vocab = {"cat": 0, "dog": 1}
        self.labels = self.vocab.items()  # truth: pickle
        self.names = np.array(["cat", "dog", None], dtype=object)  # truth: portable
        self.ids = np.array(list(self.vocab.values()))

    def __len__(self):
        return len(self.vocab)

    def __getitem__(self, i):
        return self.ids[i]
