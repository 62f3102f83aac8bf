"""A training script's model and dataset, with the slips that kill runs at checkpoint time."""

import logging
import sqlite3
import threading

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset


class Classifier(nn.Module):
    def __init__(self, n_in: int = 16, n_out: int = 4, log_path: str = "metrics.log") -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, 32), nn.ReLU(), nn.Linear(32, n_out))
        self.log = logging.getLogger(__name__)  # fine: loggers pickle by name
        self.metrics = open(log_path, "a")  # breaks torch.save(model)
        self.act = lambda t: torch.clamp(t, -5, 5)  # breaks pickle and spawn workers
        self._lock = threading.Lock()  # breaks everything but state_dict()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self._lock:
            y = self.act(self.body(x))
        self.metrics.write(f"{y.mean().item()}\n")
        return y


class SqlShards(Dataset):
    """DataLoader workers under spawn pickle the dataset: the connection goes with it."""

    def __init__(self, db_path: str = ":memory:") -> None:
        self.db_path = db_path
        self.conn = sqlite3.connect(db_path)
        self.labels = np.array(["cat", 1, None], dtype=object)  # weights-only formats fail

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int):
        return self.conn.execute("select ?", (i,)).fetchone()
