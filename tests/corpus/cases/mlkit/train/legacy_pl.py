"""Older experiments, still on the `pytorch_lightning` package name."""

import collections
import logging
import os
import threading

import pytorch_lightning as ptl
import torch
from pytorch_lightning.callbacks import Callback as PLCallback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class LegacyRegressor(ptl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(3, 1)
        self.env = os.environ  # truth: pickle
        self.run_name = os.environ.get("RUN_NAME", "debug")

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)


class GradNormLogger(PLCallback):
    def __init__(self, log_path=os.devnull):
        self.history = collections.deque(maxlen=100)
        handler = logging.FileHandler(log_path)
        handler.setLevel(logging.INFO)
        self.handler = handler  # truth: pickle
        self.logger = logging.getLogger("gradnorm")

    def on_after_backward(self, trainer, pl_module):
        total = sum(p.grad.norm() for p in pl_module.parameters() if p.grad is not None)
        self.history.append(float(total))


class LegacyDataModule(ptl.LightningDataModule):
    def __init__(self, batch_size=4):
        super().__init__()
        self.batch_size = batch_size
        self.split_rng = torch.Generator().manual_seed(0)
        self.train_ds = None

    def setup(self, stage=None):
        x = torch.randn(16, 3)
        self.train_ds = TensorDataset(x, x.sum(dim=1, keepdim=True))
        self.ready = threading.Condition()  # truth: pickle

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, generator=self.split_rng)


def _setup_datamodule():
    dm = LegacyDataModule()
    dm.setup("fit")
    return dm


FACTORIES = {"LegacyDataModule": _setup_datamodule}
