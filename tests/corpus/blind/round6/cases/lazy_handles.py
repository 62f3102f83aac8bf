"""Lazily opened handles: fine only when the parent process never triggers the opening."""
import os
import sqlite3
import tempfile

import h5py
import lmdb
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info


def build_lmdb(n=4):
    path = tempfile.mkdtemp(prefix="lmdb-")
    env = lmdb.open(path, map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"__len__", str(n).encode())
        for i in range(n):
            txn.put(f"{i}".encode(), np.full(4, i, np.float32).tobytes())
    env.close()
    return path


def build_h5(n=4):
    path = os.path.join(tempfile.mkdtemp(prefix="h5-"), "data.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(n * 4, dtype=np.float32).reshape(n, 4))
    return path


def build_sqlite(n=4):
    path = os.path.join(tempfile.mkdtemp(prefix="sql-"), "meta.db")
    con = sqlite3.connect(path)
    con.execute("create table items (id integer, label text)")
    con.executemany("insert into items values (?, ?)", [(i, f"l{i}") for i in range(n)])
    con.commit()
    con.close()
    return path


class LmdbFeatures(Dataset):
    def __init__(self, root):
        self.root = root
        self._env = None
        self._open()
        with self._env.begin() as txn:
            self.length = int(txn.get(b"__len__"))

    def _open(self):
        if self._env is None:
            self._env = lmdb.open(self.root, readonly=True, lock=False, readahead=False)  # truth: pickle

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        self._open()
        with self._env.begin() as txn:
            return torch.from_numpy(np.frombuffer(txn.get(str(i).encode()), np.float32).copy())


class LmdbShuffled(Dataset):
    def __init__(self, root):
        self.root = root
        self.env = None

    @property
    def txn_env(self):
        if self.env is None:
            self.env = lmdb.open(self.root, readonly=True, lock=False)  # truth: pickle
        return self.env

    def __len__(self):
        with self.txn_env.begin() as txn:
            return int(txn.get(b"__len__"))

    def __getitem__(self, i):
        with self.txn_env.begin() as txn:
            return np.frombuffer(txn.get(str(i).encode()), np.float32)


class LmdbWorkerLocal(Dataset):
    """Clean: the environment is only opened from __getitem__, inside each worker."""

    def __init__(self, root, length=4):
        self.root = root
        self.length = length
        self.env = None

    def _lazy_env(self):
        if self.env is None:
            self.env = lmdb.open(self.root, readonly=True, lock=False)
        return self.env

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        with self._lazy_env().begin() as txn:
            return np.frombuffer(txn.get(str(i).encode()), np.float32)


class H5Frames(Dataset):
    def __init__(self, path):
        self.path = path
        self._h5 = None
        self.n = len(self.h5["x"])

    @property
    def h5(self):
        if self._h5 is None:
            self._h5 = h5py.File(self.path, "r")  # truth: pickle
        return self._h5

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.from_numpy(self.h5["x"][i])


class H5FramesPeek(Dataset):
    """Clean: __init__ peeks with a context manager; the lazy handle waits for the worker."""

    def __init__(self, path):
        self.path = path
        self._h5 = None
        with h5py.File(path, "r") as f:
            self.n = len(f["x"])

    def _file(self):
        if self._h5 is None:
            self._h5 = h5py.File(self.path, "r")
        return self._h5

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.from_numpy(self._file()["x"][i])


class H5WorkerInit(Dataset):
    """Clean: opened by worker_init_fn in each worker, never in the parent."""

    def __init__(self, path):
        self.path = path
        self.h5 = None
        with h5py.File(path, "r") as f:
            self.n = len(f["x"])

    def open_in_worker(self):
        self.h5 = h5py.File(self.path, "r")

    @staticmethod
    def worker_init_fn(worker_id):
        get_worker_info().dataset.open_in_worker()

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.h5["x"][i]


class SqliteLabels(Dataset):
    def __init__(self, db_path):
        self.db_path = db_path
        self._conn = None
        self.ids = [r[0] for r in self.cursor().execute("select id from items")]

    def cursor(self):
        if self._conn is None:
            self._conn = sqlite3.connect(self.db_path)  # truth: pickle
        return self._conn.cursor()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.cursor().execute("select label from items where id = ?", (self.ids[i],)).fetchone()[0]


class SqliteLabelsClosed(Dataset):
    """Clean: the count query goes through a helper that closes the connection and resets it to None."""

    def __init__(self, db_path):
        self.db_path = db_path
        self._conn = None
        self.ids = [r[0] for r in self._connect().execute("select id from items")]
        self._close()

    def _connect(self):
        if self._conn is None:
            self._conn = sqlite3.connect(self.db_path)
        return self._conn

    def _close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self._connect().execute("select label from items where id = ?", (self.ids[i],)).fetchone()[0]


def _shuffled(ds):
    DataLoader(ds, batch_size=2, shuffle=True)  # RandomSampler asks len(ds) in the parent
    return ds


FACTORIES = {
    "LmdbFeatures": lambda: LmdbFeatures(build_lmdb()),
    "LmdbShuffled": lambda: _shuffled(LmdbShuffled(build_lmdb())),
    "LmdbWorkerLocal": lambda: _shuffled(LmdbWorkerLocal(build_lmdb())),
    "H5Frames": lambda: H5Frames(build_h5()),
    "H5FramesPeek": lambda: _shuffled(H5FramesPeek(build_h5())),
    "H5WorkerInit": lambda: _shuffled(H5WorkerInit(build_h5())),
    "SqliteLabels": lambda: SqliteLabels(build_sqlite()),
    "SqliteLabelsClosed": lambda: SqliteLabelsClosed(build_sqlite()),
}
