"""LightningModules for the main experiments."""

import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import lightning.pytorch as pl
import torch
from lightning import LightningModule
from torch import nn
from torch.nn import functional as F
from torch.utils.tensorboard import SummaryWriter

from mlkit.nets import ConvBlock


class LitClassifier(pl.LightningModule):
    def __init__(self, n_classes=10, lr=1e-3, metrics_path=os.devnull):
        super().__init__()
        self.lr = lr
        self.backbone = ConvBlock(3, 16)
        self.head = nn.Linear(16, n_classes)
        self.loss_fn = nn.CrossEntropyLoss()
        self.metrics_out = open(metrics_path, "a")  # truth: pickle

    def forward(self, x):
        return self.head(self.backbone(x).mean(dim=(2, 3)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.metrics_out.write(f"{batch_idx},{loss.item()}\n")
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class LitAutoencoder(LightningModule):
    def __init__(self, dim=64, decay=0.95):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, 16), nn.ReLU())
        self.decoder = nn.Linear(16, dim)
        self.lr_schedule = lambda epoch: decay**epoch  # truth: pickle

    def training_step(self, batch, batch_idx):
        return F.mse_loss(self.decoder(self.encoder(batch)), batch)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        return [opt], [torch.optim.lr_scheduler.LambdaLR(opt, self.lr_schedule)]


class LitWithSetup(pl.LightningModule):
    """Creates its TensorBoard writer when the trainer calls setup()."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(8, 1)
        self.writer = None

    def setup(self, stage=None):
        self.log_dir = tempfile.mkdtemp(prefix="tb-")
        self.writer = SummaryWriter(log_dir=self.log_dir)  # truth: pickle

    def training_step(self, batch, batch_idx):
        loss = self.net(batch).pow(2).mean()
        self.writer.add_scalar("loss", loss.item(), batch_idx)
        return loss


class LitAsyncEval(pl.LightningModule):
    """Runs slow evaluation off the training thread; the pool is not checkpointed."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(8, 2)
        self._pool = ThreadPoolExecutor(max_workers=2)
        self._results_lock = threading.Lock()
        self.results = []

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_pool"]
        del state["_results_lock"]
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._pool = ThreadPoolExecutor(max_workers=2)
        self._results_lock = threading.Lock()

    def training_step(self, batch, batch_idx):
        return self.net(batch).sum()


class LitWithOptimizer(pl.LightningModule):
    """Clean: an optimizer, parameter list and a bound method pickle."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 4)
        self.params = list(self.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=3e-4)
        self.project = self.net.forward
        self.act = F.gelu

    def training_step(self, batch, batch_idx):
        return self.act(self.project(batch)).sum()


def _build_with_setup():
    module = LitWithSetup()
    module.setup("fit")
    return module


FACTORIES = {"LitWithSetup": _build_with_setup}
