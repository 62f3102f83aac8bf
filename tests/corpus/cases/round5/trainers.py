"""Lightning modules: checkpoints, deepcopy of the best model, DDP spawn."""
import logging
import os
import weakref

import lightning as L
from torch import nn

from round5.common import make_pool


class HparamModule(L.LightningModule):
    """Clean: hyperparameters, a loss module, a named logger and a NullHandler."""

    def __init__(self, lr=1e-3, hidden=8):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.Linear(hidden, 1))
        self.loss_fn = nn.MSELoss()
        self.text_log = logging.getLogger("trainer")
        self.quiet = logging.NullHandler()

    def training_step(self, batch, batch_idx):
        return self.loss_fn(self.net(batch), batch[:, :1])


class FileLogModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 1)
        handlers = {}
        handlers["file"] = logging.FileHandler(os.devnull)
        self.handlers = handlers  # truth: pickle

    def training_step(self, batch, batch_idx):
        return self.net(batch).sum()


class PooledModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 1)
        self.pool = make_pool(2)  # truth: pickle

    def training_step(self, batch, batch_idx):
        return self.net(batch).sum()


class EmaModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 1)
        self.owner = weakref.ref(self.net)  # truth: pickle

    def training_step(self, batch, batch_idx):
        return self.owner()(batch).sum()


class StepModule(L.LightningModule):
    """Clean: a bound method of itself and a staticmethod."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 1)
        self.step_fn = self.training_step
        self.norm = StepModule.normalize

    @staticmethod
    def normalize(x):
        return x / x.norm()

    def training_step(self, batch, batch_idx):
        return self.net(self.norm(batch)).sum()


class ScheduleModule(L.LightningModule):
    def __init__(self, warmup=100):
        super().__init__()
        self.net = nn.Linear(4, 1)
        self.schedule = self._make_schedule(warmup)  # truth: pickle

    def _make_schedule(self, warmup):
        def factor(step):
            return min(1.0, step / warmup)

        return factor

    def training_step(self, batch, batch_idx):
        return self.net(batch).sum() * self.schedule(batch_idx)
