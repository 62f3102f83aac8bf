"""Output heads.  Written at different times by different people, hence the import styles."""

import hashlib
import queue
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn as tnn
from torch import nn
from torch.nn import Module as M

N_CLASSES = 10


class ClassifierHead(M):
    def __init__(self, dim=32, n_classes=N_CLASSES, temperature=2.0):
        super().__init__()
        self.fc = tnn.Linear(dim, n_classes)
        self.calibrate = lambda logits: logits / temperature  # truth: pickle

    def forward(self, x):
        return self.calibrate(self.fc(x))


class RegressionHead(torch.nn.Module):
    """Tracks a running digest of the targets it has seen (for data-drift checks)."""

    def __init__(self, dim=32):
        super().__init__()
        self.fc = torch.nn.Linear(dim, 1)
        self.target_digest = hashlib.sha256()  # truth: pickle
        self.algo = hashlib.sha256().name

    def forward(self, x):
        return self.fc(x).squeeze(-1)

    def observe(self, y):
        self.target_digest.update(y.numpy().tobytes())


class ProjectionHead(nn.Linear):
    """A Linear that post-processes embeddings in a background thread."""

    def __init__(self, dim=32, out=16):
        super().__init__(dim, out)
        self.exporter = ThreadPoolExecutor(max_workers=1)  # truth: pickle

    def forward(self, x):
        y = super().forward(x)
        self.exporter.submit(lambda: y.detach().norm())
        return y


class HeadStack(tnn.Sequential):
    """Several heads run in order; pending results wait in a queue."""

    def __init__(self, dim=32):
        super().__init__(tnn.Linear(dim, dim), tnn.ReLU(), tnn.Linear(dim, N_CLASSES))
        self.pending = queue.SimpleQueue()  # truth: pickle


class MultiTaskHead(nn.ModuleDict):
    def __init__(self, dim=32, tasks=("cls", "box")):
        super().__init__({t: nn.Linear(dim, 4) for t in tasks})
        self.task_order = tuple(tasks)
        self.reducer = torch.stack

    def forward(self, x):
        return self.reducer([self[t](x) for t in self.task_order])
