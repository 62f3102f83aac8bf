"""Models that grab pieces of the interpreter or of C libraries."""

import contextvars
import hashlib
import importlib
import os
import sys
import zlib

import numpy
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset


class FingerprintedModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.hasher = hashlib.md5()  # truth: pickle
        self.fingerprint = hashlib.sha256(b"weights-v1").hexdigest()

    def forward(self, x):
        self.hasher.update(x.numpy().tobytes())
        return self.fc(x)


class CompressedCache(Dataset):
    def __init__(self):
        self.blob = zlib.compress(b"x" * 100)
        self.compressor = zlib.compressobj(6)  # truth: pickle
        self.checksum = zlib.crc32(self.blob)

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return zlib.decompress(self.blob)


class PluggableBackend(nn.Module):
    """Loads its serializer by name at run time."""

    def __init__(self, backend="json"):
        super().__init__()
        self.backend_name = backend
        self.serializer = importlib.import_module(backend)  # truth: pickle

    def forward(self, x):
        return x


class ArrayBackend(nn.Module):
    def __init__(self, use_numpy=True):
        super().__init__()
        self.xp = np if use_numpy else torch  # truth: pickle

    def forward(self, x):
        return x


class FunctionalAlias(nn.Module):
    def __init__(self):
        super().__init__()
        self.F = F  # truth: pickle
        self.np_version = numpy.__version__

    def forward(self, x):
        return self.F.relu(x)


class EnvAware(Dataset):
    def __init__(self):
        self.environ = os.environ  # truth: pickle
        self.debug = self.environ.get("DEBUG") == "1"

    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise IndexError(i)


class ConsoleReporter(nn.Module):
    def __init__(self):
        super().__init__()
        self.out = sys.stdout  # truth: pickle
        self.encoding = sys.stdout.encoding

    def forward(self, x):
        print(x.shape, file=self.out)
        return x


class RequestContext(nn.Module):
    def __init__(self):
        super().__init__()
        self.snapshot = contextvars.copy_context()  # truth: pickle

    def forward(self, x):
        return x
