"""Datasets as people write them for DataLoader(num_workers>0): some open their storage in
__init__ (and break spawn workers), some open it lazily in each worker."""
import functools
import itertools
import mmap
import os
import pickle
import zipfile

import h5py
import lmdb
import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from round4 import common
from round4.common import connect, open_lmdb, scratch_dir

try:
    import h5py as _h5
except ImportError:  # pragma: no cover
    _h5 = None


def _lmdb_root():
    root = scratch_dir("imgs-")
    env = open_lmdb(root)
    with env.begin(write=True) as txn:
        for i in range(4):
            txn.put(f"{i}".encode(), pickle.dumps(np.zeros(3)))
    env.close()
    return root


def _h5_file():
    path = os.path.join(scratch_dir("h5-"), "frames.h5")
    with h5py.File(path, "w") as fh:
        fh.create_dataset("frames", data=np.zeros((6, 2, 2), dtype=np.float32))
    return path


def _token_file():
    path = os.path.join(scratch_dir("tok-"), "tokens.bin")
    np.arange(64, dtype=np.uint16).tofile(path)
    return path


def _zip_file():
    path = os.path.join(scratch_dir("zip-"), "shards.zip")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.txt", "alpha")
        zf.writestr("b.txt", "beta")
    return path


def _shard_dir():
    root = scratch_dir("shards-")
    for name in ("s0.txt", "s1.txt"):
        with open(os.path.join(root, name), "w") as fh:
            fh.write("x\ny\n")
    return root


class LmdbImages(Dataset):
    def __init__(self, root=None):
        self.root = root or _lmdb_root()
        self.env = lmdb.open(self.root, readonly=True, lock=False, readahead=False, meminit=False)  # truth: pickle
        with self.env.begin(write=False) as txn:
            self.length = txn.stat()["entries"]

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        with self.env.begin() as txn:
            return pickle.loads(txn.get(str(i).encode()))


class LazyLmdbImages(Dataset):
    """Clean: the environment is opened in each worker on first use."""

    def __init__(self, root=None):
        self.root = root or _lmdb_root()
        self.env = None
        self.length = 4

    def _open(self):
        self.env = lmdb.open(self.root, readonly=True, lock=False)

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        if self.env is None:
            self._open()
        with self.env.begin() as txn:
            return pickle.loads(txn.get(str(i).encode()))


class H5Frames(Dataset):
    def __init__(self, path=None):
        self.path = path or _h5_file()
        self.h5 = h5py.File(self.path, "r")  # truth: pickle
        self.frames = self.h5["frames"]  # truth: pickle

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        return torch.from_numpy(self.frames[i])


class H5PerWorker(Dataset):
    """Clean: reads the length once, closes the file, reopens per worker."""

    def __init__(self, path=None):
        self.path = path or _h5_file()
        with h5py.File(self.path, "r") as fh:
            self.n = len(fh["frames"])
            self.shape = fh["frames"].shape[1:]
        self._file = None

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file["frames"][i]


class OptionalBackendDataset(Dataset):
    def __init__(self, path=None):
        self.path = path or _h5_file()
        self.backend = _h5  # truth: pickle

    def __len__(self):
        return 1

    def __getitem__(self, i):
        with self.backend.File(self.path, "r") as fh:
            return fh["frames"][i]


class ZipShards(Dataset):
    def __init__(self, path=None):
        self.path = path or _zip_file()
        self.archive = zipfile.ZipFile(self.path)  # truth: pickle
        self.names = self.archive.namelist()

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        return self.archive.read(self.names[i])


class CaptionsDB(Dataset):
    def __init__(self):
        self.conn = connect()  # truth: pickle
        self.cur = self.conn.cursor()  # truth: pickle
        self.ids = [r[0] for r in self.cur.execute("select k from kv")]

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.cur.execute("select v from kv where k=?", (self.ids[i],)).fetchone()


class MemmapTokens(Dataset):
    """Clean: np.memmap pickles (as a plain array copy)."""

    def __init__(self, path=None, block=8):
        self.path = path or _token_file()
        self.tokens = np.memmap(self.path, dtype=np.uint16, mode="r")
        self.block = block

    def __len__(self):
        return len(self.tokens) // self.block

    def __getitem__(self, i):
        return torch.from_numpy(self.tokens[i * self.block : (i + 1) * self.block].astype(np.int64))


class RawMmapTokens(Dataset):
    def __init__(self, path=None):
        self.path = path or _token_file()
        with open(self.path, "rb") as fh:
            self.buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)  # truth: pickle

    def __len__(self):
        return len(self.buf) // 2

    def __getitem__(self, i):
        return self.buf[2 * i : 2 * i + 2]


class ScanDirDataset(Dataset):
    def __init__(self, root=None):
        root = root or _shard_dir()
        self.entries = sorted(os.scandir(root), key=lambda e: e.name)  # truth: pickle
        self.paths = [e.path for e in self.entries]

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with open(self.paths[i]) as fh:
            return fh.read()


class ShardStream(IterableDataset):
    def __init__(self, root=None):
        root = root or _shard_dir()
        self.files = sorted(os.path.join(root, f) for f in os.listdir(root))
        self.order = iter(list(self.files))
        self.epochs = itertools.cycle(self.files)
        self.pending = self._lines()  # truth: pickle

    def _lines(self):
        for path in self.files:
            with open(path) as fh:
                yield from fh

    def __iter__(self):
        return self._lines()


class AugmentedDataset(Dataset):
    def __init__(self, data=None, transform=None):
        self.data = data if data is not None else np.random.rand(8, 3).astype(np.float32)
        self.transform = transform or (lambda x: x / 255.0)  # truth: pickle
        self.clip = functools.partial(np.clip, a_min=0.0, a_max=1.0)
        self.rng = np.random.default_rng(0)
        self.gen = torch.Generator().manual_seed(0)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.clip(self.transform(self.data[i]))


class ReopeningLmdb(Dataset):
    """Clean: leaves the environment out of its state and reopens it lazily after unpickling."""

    def __init__(self, root=None):
        self.root = root or _lmdb_root()
        self.env = common.open_lmdb(self.root, readonly=True)
        self.txn = self.env.begin()

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["env"], state["txn"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.env = self.txn = None

    def __len__(self):
        return 4

    def __getitem__(self, i):
        if self.txn is None:
            self.env = common.open_lmdb(self.root, readonly=True)
            self.txn = self.env.begin()
        return self.txn.get(str(i).encode())


class ForgetfulDataset(Dataset):
    """Its __getstate__ is meant to help, but hands back the live __dict__."""

    def __init__(self, path=None):
        self.path = path or _token_file()
        self.fh = open(self.path, "rb")  # truth: pickle

    def __getstate__(self):
        return self.__dict__

    def __len__(self):
        return 1

    def __getitem__(self, i):
        self.fh.seek(0)
        return self.fh.read(2)
