"""How hazardous values reach an attribute: through locals, helpers and other methods."""

import logging
import os
import socket
import sqlite3
import tempfile

import lmdb
import torch
from torch import nn
from torch.utils.data import Dataset

from mlkit.data import open_index, open_log
from mlkit.data.io_utils import iter_records, scratch_dir


def _open_env(path):
    env = lmdb.open(path, map_size=1 << 20, readonly=False)
    return env


class LocalThenAttr(nn.Module):
    def __init__(self, log_dir=None):
        super().__init__()
        log_dir = log_dir or tempfile.mkdtemp()
        handler = logging.FileHandler(os.path.join(log_dir, "train.log"))
        fmt = logging.Formatter("%(message)s")
        handler.setFormatter(fmt)
        self.handler = handler  # truth: pickle
        self.formatter = fmt
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x)


class HelperFactories(Dataset):
    def __init__(self):
        self.index = open_index()  # truth: pickle
        self.audit = open_log()  # truth: pickle
        self.workdir = scratch_dir()
        self.env = _open_env(tempfile.mkdtemp())  # truth: pickle

    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise IndexError(i)


class MethodFactory(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.sink = self._open_sink()  # truth: pickle
        self.name = self._sink_name()

    @staticmethod
    def _open_sink():
        return open(os.devnull, "wb")

    def _sink_name(self):
        return "devnull"

    def forward(self, x):
        return self.fc(x)


class ChainedCalls(Dataset):
    def __init__(self):
        self.cur = sqlite3.connect(":memory:").cursor()  # truth: pickle
        self.tables = self.cur.execute("select name from sqlite_master").fetchall()

    def __len__(self):
        return len(self.tables)

    def __getitem__(self, i):
        return self.tables[i]


class StreamFromHelper(Dataset):
    def __init__(self, lines=("a\tb",)):
        self.parsed = iter_records(lines)  # truth: pickle
        self.materialised = list(iter_records(lines))

    def __len__(self):
        return len(self.materialised)

    def __getitem__(self, i):
        return self.materialised[i]


class TelemetryModel(nn.Module):
    """Sends metrics over UDP."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        self.udp = sock  # truth: pickle
        self.addr = ("127.0.0.1", 9)

    def forward(self, x):
        y = self.fc(x)
        try:
            self.udp.sendto(str(float(y.sum())).encode(), self.addr)
        except OSError:
            pass
        return y


class ConditionalLog(nn.Module):
    def __init__(self, log_path=os.devnull):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        if log_path:
            self.log = open(log_path, "a")  # truth: pickle
        else:
            self.log = None

    def forward(self, x):
        return self.fc(torch.as_tensor(x))
