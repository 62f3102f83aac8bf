"""Background work attached to models and datasets: threads, processes, sockets, pools."""
import asyncio
import multiprocessing as mp
import queue
import selectors
import socket
import ssl
import struct
import subprocess
import threading
from multiprocessing.pool import ThreadPool

import torch
from sklearn.base import BaseEstimator
from torch import nn
from torch.utils.data import Dataset


def _bind_ephemeral():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


class PrefetchDataset(Dataset):
    def __init__(self, n=8):
        self.n = n
        self.buffer = queue.Queue(maxsize=4)  # truth: pickle
        self.filler = threading.Thread(target=self._fill, daemon=True)  # truth: pickle

    def _fill(self):
        for i in range(self.n):
            self.buffer.put(torch.full((2,), float(i)))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.buffer.get()


class ExternalDecoder(Dataset):
    def __init__(self):
        self.proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # truth: pickle

    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise IndexError(i)


class RemoteFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 2)
        self.sock, self.port = _bind_ephemeral()  # truth: pickle[sock]
        self.address = ("127.0.0.1", self.port)
        self.tls = ssl.create_default_context()  # truth: pickle
        self.header = struct.Struct("<IIf")  # truth: pickle
        self.fmt = "<IIf"
        self.selector = selectors.DefaultSelector()  # truth: pickle

    def forward(self, x):
        return self.head(x)


class AsyncServingModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.lock = asyncio.Lock()
        self.requests = asyncio.Queue()
        self.ready = asyncio.Event()
        self.loop = asyncio.new_event_loop()  # truth: pickle

    def forward(self, x):
        return self.fc(x)


class SharedCounts(Dataset):
    def __init__(self):
        self.guard = mp.Lock()  # truth: pickle
        self.seen = [0] * 4

    def __len__(self):
        return 4

    def __getitem__(self, i):
        with self.guard:
            self.seen[i] += 1
        return i


class PooledScorer(BaseEstimator):
    def __init__(self, n_threads=2):
        self.n_threads = n_threads
        self.pool = ThreadPool(n_threads)  # truth: pickle

    def predict(self, X):
        return self.pool.map(sum, X)


