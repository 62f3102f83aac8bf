"""Shared plumbing of the experiment code: factories, a vocabulary, a run logger and a base
module that knows which of its attributes must not be saved."""
import logging
import os
import sqlite3
import tempfile
from collections import defaultdict

import lmdb
from torch import nn
from torch.utils.tensorboard import SummaryWriter

LOG = logging.getLogger("round4")


def scratch_dir(prefix="r4-"):
    return tempfile.mkdtemp(prefix=prefix)


def open_lmdb(path=None, readonly=False):
    path = path or scratch_dir("lmdb-")
    return lmdb.open(path, map_size=1 << 22, readonly=readonly, lock=False)


def make_writer(run="default"):
    return SummaryWriter(log_dir=os.path.join(scratch_dir("tb-"), run))


def connect(path=":memory:"):
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("create table if not exists kv (k text primary key, v blob)")
    return conn


def identity(x):
    return x


class RunLogger:
    """Appends one line per step to a text file (kept open for speed)."""

    def __init__(self, path=os.devnull):
        self.path = path
        self.fh = open(path, "a")

    def log(self, **metrics):
        self.fh.write(" ".join(f"{k}={v}" for k, v in metrics.items()) + "\n")


class Vocab:
    """Token <-> id maps; unknown tokens map to <unk>."""

    def __init__(self, tokens=("<unk>", "<pad>")):
        self.itos = list(tokens)
        self.stoi = defaultdict(lambda: 0)
        self.stoi.update({t: i for i, t in enumerate(self.itos)})

    def __len__(self):
        return len(self.itos)


class TransientStateModule(nn.Module):
    """Base: attributes named in `_transient` are saved as None and rebuilt by `_restore()`."""

    _transient = ()

    def __getstate__(self):
        state = dict(self.__dict__)
        for name in self._transient:
            if name in state:
                state[name] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._restore()

    def _restore(self):
        pass


class StepCounterMixin:
    """Adds a global step counter to any module."""

    def bump(self):
        self.global_step = getattr(self, "global_step", 0) + 1
        return self.global_step


NOT_BUILT = {
    "RunLogger": "plain helper, not a model: never pickled by checkpointing on its own",
    "Vocab": "plain helper, not a model: never pickled by checkpointing on its own",
}
