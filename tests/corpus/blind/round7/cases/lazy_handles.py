"""Datasets that open their storage lazily - or think they do - and ones that close it."""
import gzip
import io
import os
import sqlite3
import tempfile

import h5py
import lmdb
import numpy as np
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from nets_common import open_catalog

LMDB_DIR = tempfile.mkdtemp(prefix="r7-lmdb-")
H5_PATH = os.path.join(tempfile.mkdtemp(prefix="r7-h5-"), "feats.h5")
with h5py.File(H5_PATH, "w") as _f:
    _f.create_dataset("x", data=np.zeros((4, 2), dtype="float32"))


class LmdbFrames(Dataset):
    def __init__(self, root=LMDB_DIR):
        self.root = root
        self._env = None
        self.length = self._count()

    @property
    def env(self):
        if self._env is None:
            self._env = lmdb.open(self.root, readonly=False, lock=False)  # truth: pickle
        return self._env

    def _count(self):
        with self.env.begin() as txn:
            return txn.stat()["entries"]

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        with self.env.begin() as txn:
            return txn.get(str(i).encode())


class LmdbFramesWorkerSafe(Dataset):
    """Clean: the environment is only opened in __getitem__, in the worker."""

    def __init__(self, root=LMDB_DIR, length=4):
        self.root = root
        self.length = length
        self._env = None

    def _open(self):
        self._env = lmdb.open(self.root, readonly=True, lock=False)

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        if self._env is None:
            self._open()
        with self._env.begin() as txn:
            return txn.get(str(i).encode())


class H5Features(Dataset):
    def __init__(self, path=H5_PATH):
        self.path = path
        self.h5 = None

    def _file(self):
        if self.h5 is None:
            self.h5 = h5py.File(self.path, "r")  # truth: pickle
        return self.h5

    def __len__(self):
        return len(self._file()["x"])

    def __getitem__(self, i):
        return self._file()["x"][i]


FACTORIES = {}


def _built_h5_features():
    ds = H5Features()
    len(ds)  # the sampler asks for the length in the parent process
    return ds


FACTORIES["H5Features"] = _built_h5_features


class H5FeaturesWorkerInit(Dataset):
    """Clean: worker_init_fn opens the file in each worker; the parent only reads the shape once."""

    def __init__(self, path=H5_PATH):
        self.path = path
        self.h5 = None
        with h5py.File(path, "r") as f:
            self.n = f["x"].shape[0]

    def open_in_worker(self):
        self.h5 = h5py.File(self.path, "r")

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.h5["x"][i]


def h5_worker_init(worker_id):
    info = get_worker_info()
    info.dataset.open_in_worker()


class CatalogDataset(Dataset):
    def __init__(self):
        self._conn = None
        self.labels = self.connection.execute("select label from items").fetchall()

    @property
    def connection(self):
        if self._conn is None:
            self._conn = open_catalog()  # truth: pickle
        return self._conn

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.labels[i]


class CatalogDatasetDeferred(Dataset):
    """Clean: the same property, but only __getitem__ reaches it."""

    def __init__(self):
        self._conn = None
        self.labels = ["a", "b"]

    @property
    def connection(self):
        if self._conn is None:
            self._conn = open_catalog()
        return self._conn

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.connection.execute("select 1").fetchone()


class ShardStream(IterableDataset):
    """Clean: the gzip handle is opened inside __iter__ (in the worker)."""

    def __init__(self):
        self.path = os.devnull
        self.reader = None

    def __iter__(self):
        self.reader = gzip.open(self.path, "rb")
        yield from ()


class VocabFromFile(Dataset):
    """Clean: reads the vocab then closes the handle through a helper that drops it."""

    def __init__(self, path=__file__):
        self.fh = open(path)
        self.vocab = [line.strip() for line in self.fh][:5]
        self._release()

    def _release(self):
        if self.fh is not None:
            self.fh.close()
        self.fh = None

    def __len__(self):
        return len(self.vocab)

    def __getitem__(self, i):
        return self.vocab[i]


class VocabFromFileKept(Dataset):
    def __init__(self, path=__file__):
        self.fh = open(path)  # truth: pickle
        self.vocab = self.fh.read().splitlines()[:5]
        self.fh.close()

    def __len__(self):
        return len(self.vocab)

    def __getitem__(self, i):
        return self.vocab[i]


class ManifestDataset(Dataset):
    def __init__(self, path=__file__):
        with open(path) as manifest:
            self.manifest = manifest  # truth: pickle
            self.rows = manifest.readlines()[:3]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


class SqlLabels(Dataset):
    """Clean: the connection is closed and dropped by a helper before __init__ returns."""

    def __init__(self):
        self.db = sqlite3.connect(":memory:")
        self.db.execute("create table t (x)")
        self.rows = self.db.execute("select * from t").fetchall()
        self.close()

    def close(self):
        self.db.close()
        self.db = None

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


class SqlLabelsClosedKept(Dataset):
    def __init__(self):
        self.db = sqlite3.connect(":memory:")  # truth: pickle
        self.rows = []
        self.shutdown()

    def shutdown(self):
        self.db.close()

    def __len__(self):
        return 0

    def __getitem__(self, i):
        return self.rows[i]


class BufferedText(Dataset):
    def __init__(self):
        self.buffer = io.StringIO("a\nb\n")  # truth: pickle
        self.lines = self.buffer.getvalue().splitlines()
        self.buffer.close()
        self.scratch = io.BytesIO(b"header")

    def __len__(self):
        return len(self.lines)

    def __getitem__(self, i):
        return self.lines[i]


class TeardownInInit(Dataset):
    """Clean: a teardown helper sets both handles to None."""

    def __init__(self):
        self.log = open(os.devnull, "w")
        self.cache = lmdb.open(tempfile.mkdtemp(prefix="r7-cache-"), lock=False)
        self.log.write("init\n")
        self._teardown()

    def _teardown(self):
        for name in ("log", "cache"):
            handle = getattr(self, name)
            if handle is not None:
                handle.close()
            setattr(self, name, None)

    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise IndexError(i)
