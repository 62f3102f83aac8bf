"""Experiment tracking glued onto models: metric files, TensorBoard, progress bars, hashes."""
import csv
import hashlib
import logging
import os
import sys
import threading
import time
from datetime import datetime

import torch.nn as nn
from tqdm.auto import tqdm

from round4.common import (
    RunLogger,
    StepCounterMixin,
    TransientStateModule,
    make_writer,
    scratch_dir,
)


class CSVMetricsModel(nn.Module):
    def __init__(self, log_dir=None):
        super().__init__()
        self.net = nn.Linear(16, 4)
        log_dir = log_dir or scratch_dir("csv-")
        self.metrics_path = os.path.join(log_dir, "metrics.csv")
        self.metrics_fh = open(self.metrics_path, "w", newline="")  # truth: pickle
        self.metrics_csv = csv.writer(self.metrics_fh)  # truth: pickle
        self.metrics_csv.writerow(["step", "loss"])

    def forward(self, x):
        return self.net(x)


class TensorBoardProbe(nn.Module):
    def __init__(self, every=10):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 8), nn.Tanh())
        self.every = every
        self.tb = make_writer("probe")  # truth: pickle

    def forward(self, x):
        h = self.encoder(x)
        self.tb.add_histogram("h", h)
        return h


class FingerprintedModel(nn.Module):
    """Hashes every batch it sees, to detect data-order drift between runs."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 1)
        self.config_hash = hashlib.sha256(b"head=4x1").hexdigest()
        self._batch_digest = hashlib.sha256()  # truth: pickle

    def forward(self, x):
        self._batch_digest.update(x.numpy().tobytes())
        return self.head(x)


class AuditedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.fmt = logging.Formatter("[audit] %(message)s")
        self.audit = logging.Logger("audit", level=logging.INFO)  # truth: pickle
        self.adapter = logging.LoggerAdapter(logging.getLogger("audit.net"), {"run": 1})
        self.logger = logging.getLogger(__name__)
        self.logger.addHandler(logging.NullHandler())
        self.console = logging.StreamHandler(sys.stderr)  # truth: pickle
        self.console.setFormatter(self.fmt)

    def forward(self, x):
        self.audit.info("forward")
        return self.fc(x)


class ProgressNet(nn.Module):
    def __init__(self, total=100, verbose=True):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.bar = tqdm(total=total, leave=False, file=sys.stderr)  # truth: pickle
        self.silent_bar = tqdm(total=total, disable=True)

    def forward(self, x):
        self.bar.update(1)
        return self.fc(x)


class TrackedClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.clf = nn.Linear(10, 3)
        self.tracker = RunLogger()  # truth: pickle

    def forward(self, x):
        out = self.clf(x)
        self.tracker.log(mean=float(out.mean()))
        return out


class TimedNet(StepCounterMixin, nn.Module):
    """Clean: timestamps and a reference to a builtin clock pickle fine."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.t0 = time.perf_counter()
        self.started = datetime.now()
        self.clock = time.perf_counter
        self.durations = []

    def forward(self, x):
        self.bump()
        return self.fc(x)


class RunMonitor(TransientStateModule):
    """Clean: the base class (another file) saves the writer and the lock as None."""

    _transient = ("writer", "lock")

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.writer = make_writer("monitor")
        self.lock = threading.Lock()

    def _restore(self):
        self.writer = make_writer("monitor")
        self.lock = threading.Lock()

    def forward(self, x):
        with self.lock:
            return self.fc(x)


