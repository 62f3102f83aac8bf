"""Image and array datasets backed by files on disk."""

import os
import tarfile
import tempfile
import zipfile
from gzip import open as gz_open

import h5py
import numpy as np
import torch
from torch.utils import data


def _fixture(name, writer):
    """Write a small file once per process; the datasets below read it."""
    path = os.path.join(tempfile.gettempdir(), f"mlkit-{os.getpid()}-{name}")
    if not os.path.exists(path):
        writer(path)
    return path


def _h5(path):
    with h5py.File(path, "w") as fh:
        fh.create_dataset("frames", data=np.zeros((4, 3, 8, 8), dtype="float32"))


def _zip(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("img_000.raw", b"\0" * 192)


def _npz(path):
    np.savez(path, images=np.zeros((2, 3, 8, 8)), labels=np.arange(2))


def _npy(path):
    np.save(path, np.zeros((4, 8), dtype="float32"))


def _tar(path):
    with tarfile.open(path, "w") as tf:
        tf.add(_fixture("shard.npy", _npy), arcname="0.npy")


def _gz(path):
    with gz_open(path, "wt") as fh:
        fh.write("0\tcat\n1\tdog\n")


class H5Frames(data.Dataset):
    def __init__(self):
        self.path = _fixture("frames.h5", _h5)
        self.file = h5py.File(self.path, "r")  # truth: pickle
        self.frames = self.file["frames"]  # truth: pickle
        self.n = self.file["frames"].shape[0]

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.from_numpy(self.frames[i])


class LazyH5Frames(data.Dataset):
    """The recommended pattern: open the file in each worker, on first use."""

    def __init__(self):
        self.path = _fixture("frames.h5", _h5)
        with h5py.File(self.path, "r") as fh:
            self.n = len(fh["frames"])
        self._file = None

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return torch.from_numpy(self._file["frames"][i])


class ZipImages(data.Dataset):
    def __init__(self):
        self.archive = zipfile.ZipFile(_fixture("imgs.zip", _zip))  # truth: pickle
        self.members = self.archive.namelist()

    def __len__(self):
        return len(self.members)

    def __getitem__(self, i):
        raw = self.archive.read(self.members[i])
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8)


class NpzArrays(data.Dataset):
    """np.load of an .npz keeps the zip archive open."""

    def __init__(self):
        self.arrays = np.load(_fixture("arrays.npz", _npz))  # truth: pickle
        self.keys = list(self.arrays.files)

    def __len__(self):
        return len(self.arrays["labels"])

    def __getitem__(self, i):
        return self.arrays["images"][i], self.arrays["labels"][i]


class MemmapFeatures(data.Dataset):
    """Clean: memory-mapped arrays pickle (as copies)."""

    def __init__(self):
        path = _fixture("feats.npy", _npy)
        self.features = np.load(path, mmap_mode="r")
        self.raw = np.memmap(path, dtype="uint8", mode="r")

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return torch.from_numpy(np.array(self.features[i]))


class TarShards(data.Dataset):
    def __init__(self):
        self.tar = tarfile.open(_fixture("shards.tar", _tar))  # truth: pickle
        self.names = self.tar.getnames()

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        return self.tar.extractfile(self.names[i]).read()


class GzipLabels(data.Dataset):
    def __init__(self):
        self.stream = gz_open(_fixture("labels.tsv.gz", _gz), "rt")  # truth: pickle

    def __len__(self):
        return 2

    def __getitem__(self, i):
        self.stream.seek(0)
        return self.stream.readlines()[i].split("\t")


class HeaderOnly(data.Dataset):
    """Clean: reads the header, then keeps only plain values."""

    def __init__(self):
        path = _fixture("labels.tsv.gz", _gz)
        with gz_open(path, "rt") as fh:
            self.header = fh.readline()
            self.rest = fh.read().splitlines()
        self.fd = os.open(path, os.O_RDONLY)
        os.close(self.fd)
        self.opener = open

    def __len__(self):
        return len(self.rest)

    def __getitem__(self, i):
        return self.rest[i]


class CachedLines(data.Dataset):
    """Keeps the handle of a `with` block (closed by now, still unpicklable)."""

    def __init__(self, path=os.devnull):
        with open(path) as fh:
            self.lines = fh.readlines()
            self.source = fh  # truth: pickle

    def __len__(self):
        return len(self.lines)

    def __getitem__(self, i):
        return self.lines[i]
