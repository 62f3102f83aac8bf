"""Concurrency primitives on models and datasets."""

import concurrent.futures as cf
import multiprocessing
import queue as q
import threading
from threading import Lock as _Lock

import torch
from torch import nn
from torch.utils.data import Dataset

MAX_INFLIGHT = 4


def make_pool(n=2):
    """A module-level factory, used by several classes."""
    return cf.ThreadPoolExecutor(max_workers=n, thread_name_prefix="infer")


def make_rng(seed=0):
    return torch.Generator().manual_seed(seed)


class BatchedInference(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.pool = make_pool()  # truth: pickle
        self.generator = make_rng()

    def forward(self, x):
        return self.pool.submit(self.fc, x).result()


class GatedDataset(Dataset):
    def __init__(self):
        self.items = list(range(8))
        self.slots = threading.BoundedSemaphore(MAX_INFLIGHT)  # truth: pickle
        self.local = threading.local()  # truth: pickle

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        with self.slots:
            return self.items[i]


class TupleState(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.tag, self.mutex = "tuple", _Lock()  # truth: pickle[mutex]
        self.guard: threading.RLock = threading.RLock()  # truth: pickle
        setattr(self, "ready", threading.Event())  # truth: pickle

    def forward(self, x):
        with self.mutex:
            return self.fc(x)


class WorkerPoolModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.procs = cf.ProcessPoolExecutor(max_workers=1)  # truth: pickle
        self.mp_lock = multiprocessing.Lock()  # truth: pickle

    def forward(self, x):
        return self.fc(x)


class ResettableCounter(nn.Module):
    def __init__(self):
        super().__init__()
        self.reset()

    def reset(self):
        self.count = 0
        self.ticks = (t for t in range(1000))  # truth: pickle
        self.inbox = q.Queue()  # truth: pickle

    def forward(self, x):
        self.count += next(self.ticks)
        return x


class TimedFlush(nn.Module):
    def __init__(self, every=30.0):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.timer = threading.Timer(every, self.flush)  # truth: pickle
        self.cond = threading.Condition(threading.Lock())  # truth: pickle

    def flush(self):
        pass

    def forward(self, x):
        return self.fc(x)
