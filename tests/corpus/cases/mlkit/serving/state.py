"""Objects with their own pickling protocol (they are sent to worker processes)."""

import os
import socket
import sqlite3
import threading

import torch
from torch import nn


class FeatureStore:
    """Pickles without its connection; workers reconnect."""

    def __init__(self, path=":memory:"):
        self.path = path
        self.conn = sqlite3.connect(path)
        self.lock = threading.Lock()

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])


class PredictionServer:
    """Its __getstate__ is there for documentation only: it returns everything."""

    def __init__(self, port=0):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # truth: pickle

    def __getstate__(self):
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)


class RemoteModel:
    """Rebuilt from its address on unpickling."""

    def __init__(self, host="localhost", port=0):
        self.host, self.port = host, port
        self.sock = socket.socket()

    def __reduce__(self):
        return (type(self), (self.host, self.port))


class ReconnectingClient:
    """Only __setstate__: rebuilds the lock, but __getstate__ was forgotten."""

    def __init__(self):
        self.endpoint = "tcp://localhost:5555"
        self.lock = threading.Lock()  # truth: pickle

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.lock = threading.Lock()


class StreamingScorer(nn.Module):
    """Drops the attributes listed in TRANSIENT; __setstate__ re-creates them."""

    TRANSIENT = ("_fh", "_lock")

    def __init__(self, log_path=os.devnull):
        super().__init__()
        self.fc = nn.Linear(4, 1)
        self.log_path = log_path
        self._fh = open(log_path, "a")
        self._lock = threading.Lock()

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in self.TRANSIENT}

    def __setstate__(self, state):
        super().__setstate__(state)
        self._fh = open(self.log_path, "a")
        self._lock = threading.Lock()

    def forward(self, x):
        with self._lock:
            return self.fc(x)


class CheckpointableEncoder(nn.Module):
    """__reduce_ex__ rebuilds the module from its config and weights."""

    def __init__(self, dim=8):
        super().__init__()
        self.dim = dim
        self.proj = nn.Linear(dim, dim)
        self.log_file = open(os.devnull, "w")

    def __reduce_ex__(self, protocol):
        return (_rebuild_encoder, (self.dim, self.state_dict()))

    def forward(self, x):
        return self.proj(x)


def _rebuild_encoder(dim, state):
    enc = CheckpointableEncoder(dim)
    enc.load_state_dict(state)
    return enc


class CopyingState:
    """Copies __dict__ and forgets to drop anything."""

    def __init__(self):
        self.cache = {}
        self.mutex = threading.RLock()  # truth: pickle

    def __getstate__(self):
        state = dict(self.__dict__)
        return state


class DeletingState(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))
        self.pipe_r, self.pipe_w = os.pipe()
        self.stream = os.fdopen(self.pipe_w, "w")

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["stream"]
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self.stream = None
