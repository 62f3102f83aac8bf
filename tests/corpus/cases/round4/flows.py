"""How values reach attributes: local variables, with-blocks, setattr, tuples, annotations."""
import csv
import io
import itertools
import os
import tempfile
import threading
from typing import List, Optional

import numpy as np
from torch import nn
from torch.utils.data import Dataset


def _header_file():
    fd, path = tempfile.mkstemp(suffix=".bin")
    os.write(fd, b"HDR1payload")
    os.close(fd)
    return path


class HeaderOnly(Dataset):
    """Clean: the file is read, closed and dropped before __init__ ends."""

    def __init__(self, path=None):
        self.path = path or _header_file()
        self.fh = open(self.path, "rb")
        self.header = self.fh.read(4)
        self.fh.close()
        self.fh = None

    def __len__(self):
        return 1

    def __getitem__(self, i):
        with open(self.path, "rb") as fh:
            return fh.read()


class KeptClosedFile(Dataset):
    def __init__(self, path=None):
        self.path = path or _header_file()
        with open(self.path, "rb") as fh:
            self.header = fh.read(4)
            self.source = fh  # truth: pickle

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.header


class VerboseNet(nn.Module):
    def __init__(self, verbose=True):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.trace = open(os.devnull, "a") if verbose else None  # truth: pickle

    def forward(self, x):
        if self.trace:
            self.trace.write("fwd\n")
        return self.fc(x)


class BufferedRows(nn.Module):
    def __init__(self):
        super().__init__()
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["epoch", "loss"])
        self.buf = buf
        self.rows = writer  # truth: pickle

    def forward(self, x):
        return x


class DynamicSink(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        setattr(self, "sink", open(os.devnull, "w"))  # truth: pickle
        setattr(self, "sink_name", os.devnull)

    def forward(self, x):
        return self.fc(x)


class PairedState(nn.Module):
    def __init__(self):
        super().__init__()
        self.rng, self.ticks = np.random.default_rng(0), (i for i in itertools.count())  # truth: pickle[ticks]
        self.names: List[str] = []
        self.best: Optional[float] = None
        self.mutex: threading.Lock = threading.Lock()  # truth: pickle
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        next(self.ticks)
        return self.fc(x)


class ScratchSpace(Dataset):
    def __init__(self):
        self.workdir = tempfile.TemporaryDirectory()
        self.spill = tempfile.NamedTemporaryFile(dir=self.workdir.name)  # truth: pickle

    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise IndexError(i)


class LazySequences(nn.Module):
    def __init__(self, lines=("  a ", "b  ", "", " c")):
        super().__init__()
        self.cleaned = map(str.strip, lines)
        self.nonempty = filter(None, lines)
        self.pairs = zip(lines, range(len(lines)))
        self.counter = itertools.count(1)
        self.chunks = itertools.islice(lines, 2)
        self.shouted = map(lambda s: s.upper(), lines)  # truth: pickle

    def forward(self, x):
        return x


