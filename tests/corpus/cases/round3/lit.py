"""Lightning modules, a datamodule and callbacks (ddp_spawn pickles the trainer and all of these)."""
import csv
import os
import sys
import tempfile
import time
from collections import defaultdict
from functools import partial

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.tensorboard import SummaryWriter

from .common import Backbone, MetricsSink, Phase, cosine_warmup


def pad_collate(batch, pad_id=0):
    xs, ys = zip(*batch)
    return torch.stack(xs), torch.stack(ys)


def seed_worker(worker_id):
    torch.manual_seed(worker_id)


class LitClassifier(pl.LightningModule):
    """Clean: hparams, a loss module, example input, a manual-optimization flag, a warmup partial."""

    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
        self.example_input_array = torch.zeros(1, 4)
        self.automatic_optimization = False
        self.val_outputs = []
        self.phase = Phase.TRAIN
        self.warmup = partial(cosine_warmup, warmup=50)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.LambdaLR(opt, self.warmup)]


class LitWithScheduler(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 2)
        self.opt = torch.optim.SGD(self.layer.parameters(), lr=0.1)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda step: min(1.0, (step + 1) / 10))  # truth: pickle
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt)
        self.scaler = torch.amp.GradScaler("cpu")

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()


class LitTelemetry(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.encoder = Backbone()
        self.head = nn.Linear(32, 2)
        self.sink = MetricsSink()  # truth: pickle
        self.console = sys.stdout  # truth: pickle
        self.env = os.environ  # truth: pickle
        self.env_snapshot = dict(os.environ)
        self.started = time.time()
        self.clock = time.perf_counter

    def training_step(self, batch, batch_idx):
        return self.head(batch[0]).sum()


class LitTextDataModule(pl.LightningDataModule):
    def __init__(self, batch_size=2):
        super().__init__()
        self.batch_size = batch_size
        self.collate_fn = partial(pad_collate, pad_id=0)
        self.worker_init_fn = seed_worker
        self.train_ds = None

    def setup(self, stage=None):
        self.train_ds = TensorDataset(torch.zeros(4, 4), torch.zeros(4, dtype=torch.long))
        self.train_loader = DataLoader(self.train_ds, batch_size=self.batch_size, collate_fn=self.collate_fn)
        self.batch_iter = iter(self.train_loader)  # truth: pickle

    def train_dataloader(self):
        return self.train_loader


class LitImageDataModule(pl.LightningDataModule):
    def __init__(self):
        super().__init__()
        self.transform = lambda img: img.float() / 255.0  # truth: pickle
        self.data_dir = tempfile.gettempdir()
        self.splits = {"train": 0.8, "val": 0.2}

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.zeros(4, 3)), batch_size=2)


class TensorBoardImages(Callback):
    def __init__(self, every_n=10):
        super().__init__()
        self.every_n = every_n
        self.writer = SummaryWriter(log_dir=tempfile.mkdtemp())  # truth: pickle

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx % self.every_n == 0:
            self.writer.add_scalar("loss", float(outputs["loss"]), batch_idx)


class CsvHistory(Callback):
    def __init__(self):
        super().__init__()
        self.path = os.path.join(tempfile.mkdtemp(), "history.csv")
        self.file = open(self.path, "w", newline="")  # truth: pickle
        self.writer = csv.writer(self.file)  # truth: pickle
        self.history = defaultdict(list)

    def on_validation_epoch_end(self, trainer, pl_module):
        self.writer.writerow([trainer.current_epoch, trainer.callback_metrics.get("val_loss")])


class EarlyStopOnPlateau(Callback):
    """Clean: numbers, a comparison from torch, a format function."""

    def __init__(self, patience=3):
        super().__init__()
        self.patience = patience
        self.best = float("inf")
        self.wait = 0
        self.monitor_op = torch.lt
        self.fmt = "{:.4f}".format
        self.last_error = ValueError("not started")

    def on_validation_end(self, trainer, pl_module):
        pass


FACTORIES = {"LitTextDataModule": lambda: _setup(LitTextDataModule())}


def _setup(dm):
    dm.setup("fit")
    return dm
