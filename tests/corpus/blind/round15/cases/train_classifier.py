"""Image classification training in the torchvision-references / timm style: tracker, EMA, AMP, mixup."""
import argparse
import copy
import datetime
import enum
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------- utils.py
class utils:  # stands in for the references' utils.py module
    @staticmethod
    def is_main_process():
        return True

    @staticmethod
    def save_on_master(*args, **kwargs):
        if utils.is_main_process():
            torch.save(*args, **kwargs)


class SmoothedValue:
    def __init__(self, window_size=20):
        self.values = []
        self.window_size = window_size

    def update(self, v):
        self.values.append(v)
        self.values = self.values[-self.window_size:]

    @property
    def avg(self):
        return statistics.fmean(self.values) if self.values else 0.0

    @property
    def median(self):
        return np.median(self.values)


def accuracy(output, target, topk=(1,)):
    with torch.no_grad():
        maxk = max(topk)
        _, pred = output.topk(maxk, 1, True, True)
        correct = pred.t().eq(target.view(1, -1).expand_as(pred.t()))
        return [correct[:k].reshape(-1).float().sum(0) * 100.0 / target.size(0) for k in topk]


NOT_BUILT = {"MixupMode": "an Enum: its members exist, nobody calls MixupMode()"}


# ---------------------------------------------------------------- config
class MixupMode(enum.Enum):
    BATCH = "batch"
    PAIR = "pair"
    ELEM = "elem"


@dataclass
class MixupConfig:
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    prob: float = 1.0
    mode: str = "batch"
    label_smoothing: float = 0.1
    cutmix_minmax: list = field(default_factory=list)


def get_args_parser(add_help=True):
    parser = argparse.ArgumentParser(description="PyTorch Classification Training", add_help=add_help)
    parser.add_argument("--model", default="tiny", type=str)
    parser.add_argument("--epochs", default=2, type=int)
    parser.add_argument("--lr", default=0.1, type=float)
    parser.add_argument("--output-dir", default="./out", type=Path)
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--model-ema-decay", type=float, default=0.9998)
    return parser


# ---------------------------------------------------------------- model / ema
class TinyNet(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class ModelEma(nn.Module):
    def __init__(self, model=None, decay=0.9998):
        super().__init__()
        self.module = copy.deepcopy(model if model is not None else TinyNet()).eval()
        self.decay = decay

    @torch.no_grad()
    def update(self, model):
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values()):
            e.copy_(self.decay * e + (1.0 - self.decay) * m)


class BestTracker:
    def __init__(self, metric="top1"):
        self.metric = metric
        self.best = float("-inf")
        self.best_epoch = -1
        self.history = []

    def step(self, epoch, value):
        self.history.append(value)
        if value > self.best:
            self.best = value
            self.best_epoch = epoch
            return True
        return False


class Trainer:
    def __init__(self, args=None, num_classes=5):
        self.args = args if args is not None else get_args_parser().parse_args([])
        torch.manual_seed(0)
        self.model = TinyNet(num_classes)
        self.model_ema = ModelEma(self.model, decay=self.args.model_ema_decay)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.args.lr, momentum=0.9)
        self.lr_scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.1)
        self.scaler = torch.amp.GradScaler("cpu", enabled=self.args.amp)
        self.tracker = BestTracker()
        self.ema_tracker = BestTracker("ema_top1")
        self.loss_meter = SmoothedValue()
        self.epoch = 0

    def train_one_epoch(self, images, targets):
        self.model.train()
        for x, y in zip(images.split(4), targets.split(4)):
            with torch.autocast("cpu", enabled=self.args.amp):
                loss = F.cross_entropy(self.model(x), y, label_smoothing=0.1)
            self.optimizer.zero_grad()
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.model_ema.update(self.model)
            self.loss_meter.update(loss.item())
        self.lr_scheduler.step()

    def evaluate(self, images, targets):
        self.model.eval()
        with torch.no_grad():
            logits = self.model(images)
        acc1, acc3 = accuracy(logits, targets, topk=(1, 3))
        preds = logits.argmax(1).numpy()
        per_class = {int(c): np.mean(preds[targets.numpy() == c] == c) for c in np.unique(targets.numpy())}
        return acc1, acc3, per_class

    def fit(self, epochs=2):
        g = torch.Generator().manual_seed(0)
        images = torch.randn(16, 3, 8, 8, generator=g)
        targets = torch.randint(0, 5, (16,), generator=g)
        for epoch in range(epochs):
            self.epoch = epoch
            self.train_one_epoch(images, targets)
            acc1, acc3, per_class = self.evaluate(images, targets)
            self.tracker.step(epoch, acc1.item())
            with torch.no_grad():
                ema_preds = self.model_ema.module(images).argmax(1).numpy()
            self.ema_tracker.step(epoch, np.mean(ema_preds == targets.numpy()) * 100)
            self.last_top3 = acc3
            self.last_per_class = per_class
        return images, targets


def save_train_checkpoint(tmpdir):
    args = get_args_parser().parse_args(["--output-dir", tmpdir])
    trainer = Trainer(args)
    trainer.fit(args.epochs)
    checkpoint = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "lr_scheduler": trainer.lr_scheduler.state_dict(),
        "epoch": trainer.epoch,
        "args": args,  # truth: weights_only
        "model_ema": trainer.model_ema.state_dict(),
        "best_acc1": trainer.tracker.best,
        "best_epoch": trainer.tracker.best_epoch,
    }
    if args.amp:
        checkpoint["scaler"] = trainer.scaler.state_dict()
    path = os.path.join(tmpdir, f"model_{trainer.epoch}.pth")
    utils.save_on_master(checkpoint, path)
    return path


def save_best_with_scaler(tmpdir):
    args = get_args_parser().parse_args(["--amp", "--output-dir", tmpdir])
    trainer = Trainer(args)
    trainer.fit(1)
    checkpoint = {
        "model": trainer.model.state_dict(),
        "scaler": trainer.scaler,  # truth: weights_only
        "lr_scheduler": trainer.lr_scheduler,  # truth: weights_only
        "top3": trainer.last_top3,
        "best_ema_acc1": trainer.ema_tracker.best,  # truth: weights_only
        "best_ema_epoch": trainer.ema_tracker.best_epoch,
        "loss_median": trainer.loss_meter.median,  # truth: weights_only
        "loss_avg": trainer.loss_meter.avg,
        "output_dir": args.output_dir,  # truth: weights_only
        "output_dir_str": str(args.output_dir),
    }
    path = str(Path(tmpdir) / "checkpoint_best.pth")
    utils.save_on_master(checkpoint, path)
    return path


def save_mixup_run(tmpdir):
    mixup = MixupConfig(mode=MixupMode.PAIR.value)
    trainer = Trainer()
    trainer.fit(1)
    ckpt = {"state_dict_ema": trainer.model_ema.module.state_dict()}
    ckpt["mixup"] = asdict(mixup)
    ckpt["mixup_cfg"] = mixup  # truth: weights_only
    ckpt["mixup_mode"] = MixupMode.PAIR  # truth: weights_only
    ckpt["worst_class_acc"] = min(trainer.last_per_class.values())  # truth: weights_only
    ckpt["per_class_acc_list"] = [float(v) for v in trainer.last_per_class.values()]
    ckpt["history"] = list(trainer.tracker.history)
    ckpt["saved_at"] = datetime.datetime.now()  # truth: weights_only
    ckpt["saved_at_iso"] = datetime.datetime.now().isoformat()
    path = os.path.join(tmpdir, "mixup.pth")
    torch.save(ckpt, path)
    return path


def save_ema_export(tmpdir):
    """Clean export: EMA weights plus plain metadata."""
    trainer = Trainer()
    trainer.fit(1)
    meta = dict(
        arch=trainer.args.model,
        best_top1=round(trainer.tracker.best, 3),
        best_epoch=trainer.tracker.best_epoch,
        ema_decay=trainer.model_ema.decay,
        lr=trainer.lr_scheduler.get_last_lr()[0],
        args=vars(trainer.args) | {"output_dir": str(trainer.args.output_dir)},
        mixup=asdict(MixupConfig()),
    )
    path = os.path.join(tmpdir, "ema_export.pth")
    torch.save({"state_dict": trainer.model_ema.module.state_dict(), "meta": meta}, path)
    return path
