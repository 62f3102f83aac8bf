"""Lightning modules, a data module and callbacks (ddp_spawn pickles the trainer and all of them)."""
import functools
import os
import queue
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.tensorboard import SummaryWriter

from round4.common import scratch_dir


def warmup(step, steps=100):
    return min(1.0, (step + 1) / steps)


def pad_collate(batch, pad_id=0):
    return torch.stack([b[0] for b in batch])


class PlainClassifier(pl.LightningModule):
    """Clean: loss modules, functional activations and example inputs."""

    def __init__(self, n_in=8, n_out=3):
        super().__init__()
        self.net = nn.Linear(n_in, n_out)
        self.loss_fn = nn.CrossEntropyLoss()
        self.activation = F.gelu
        self.example_input_array = torch.zeros(1, n_in)
        self.val_outputs = []

    def forward(self, x):
        return self.activation(self.net(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self(x), y)


class WriterModule(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 1)
        self.save_function = lambda path: None  # truth: pickle
        self.writer = None

    def setup(self, stage=None):
        self.writer = SummaryWriter(scratch_dir("lit-tb-"))  # truth: pickle

    def training_step(self, batch, batch_idx):
        loss = self.net(batch).sum()
        self.writer.add_scalar("loss", loss.item(), batch_idx)
        return loss


class SelfFeedingModule(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 1)
        self.loader = DataLoader(TensorDataset(torch.zeros(4, 2)), batch_size=2)
        self.batches = iter(self.loader)  # truth: pickle

    def training_step(self, batch, batch_idx):
        (extra,) = next(self.batches)
        return self.net(extra).sum()


class WarmupModule(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 4)

    def configure_optimizers(self):
        self.opt = torch.optim.AdamW(self.parameters(), lr=1e-3)
        self.warm = LambdaLR(self.opt, lr_lambda=warmup)
        self.decay = LambdaLR(self.opt, lr_lambda=lambda epoch: 0.95**epoch)  # truth: pickle
        return [self.opt], [self.warm, self.decay]


class FeatureDataModule(pl.LightningDataModule):
    def __init__(self, batch_size=4):
        super().__init__()
        self.batch_size = batch_size
        self.collate = functools.partial(pad_collate, pad_id=0)
        self.executor = ProcessPoolExecutor(max_workers=1)  # truth: pickle

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.zeros(8, 2)), batch_size=self.batch_size, collate_fn=self.collate)


class GradNormLogger(Callback):
    def __init__(self, log_dir=None):
        self.log_dir = log_dir or scratch_dir("cb-")
        self.out = open(os.path.join(self.log_dir, "grad_norms.txt"), "a")  # truth: pickle
        self.every_n = 50
        self.pending = queue.Queue()  # truth: pickle
        self.uploader = threading.Thread(target=self._drain, daemon=True)  # truth: pickle

    def _drain(self):
        while True:
            self.pending.get()

    def on_after_backward(self, trainer, pl_module):
        if trainer.global_step % self.every_n == 0:
            total = sum(p.grad.norm().item() for p in pl_module.parameters() if p.grad is not None)
            self.out.write(f"{trainer.global_step} {total}\n")


class EpochTimer(Callback):
    """Clean: a list of durations and a builtin clock."""

    def __init__(self):
        self.durations = []
        self.clock = time.monotonic
        self._start = None

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = self.clock()

    def on_train_epoch_end(self, trainer, pl_module):
        self.durations.append(self.clock() - self._start)


class StagedModule(pl.LightningModule):
    """Clean: transient attributes have a naming convention that __getstate__ honours."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(3, 3)
        self._tmp_queue = queue.Queue()
        self._tmp_lock = threading.Lock()

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_tmp_")}

    def __setstate__(self, state):
        super().__setstate__(state)
        self._tmp_queue = queue.Queue()
        self._tmp_lock = threading.Lock()

    def training_step(self, batch, batch_idx):
        return self.net(batch).sum()


def _configured(cls):
    def build():
        module = cls()
        module.configure_optimizers()
        return module

    return build


def _set_up(cls):
    def build():
        module = cls()
        module.setup("fit")
        return module

    return build


FACTORIES = {"WarmupModule": _configured(WarmupModule), "WriterModule": _set_up(WriterModule)}
