"""Lightning callbacks."""

import logging
import tempfile
import time

from lightning.pytorch.callbacks import Callback
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm


class ImageLogger(Callback):
    def __init__(self, every_n=100):
        self.every_n = every_n
        self.writer = SummaryWriter(log_dir=tempfile.mkdtemp())  # truth: pickle

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx % self.every_n == 0:
            self.writer.add_images("batch", batch[0][:4], trainer.global_step)


class EpochProgress(Callback):
    def __init__(self, total=100):
        self.bar = tqdm(total=total, leave=False, desc="epochs")  # truth: pickle

    def on_train_epoch_end(self, trainer, pl_module):
        self.bar.update(1)


class QuietProgress(Callback):
    """Clean: a disabled bar holds no stream or lock."""

    def __init__(self, total=100):
        self.bar = tqdm(total=total, disable=True)

    def on_train_epoch_end(self, trainer, pl_module):
        self.bar.update(1)


class StepTimer(Callback):
    def __init__(self):
        self.clock = time.perf_counter
        self.console = logging.StreamHandler()  # truth: pickle
        self.started = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.started = self.clock()


class SaveEveryN(Callback):
    def __init__(self, n=1000):
        self.n = n
        self.save_function = lambda trainer: trainer.save_checkpoint(f"step-{n}.ckpt")  # truth: pickle

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % self.n == 0:
            self.save_function(trainer)
