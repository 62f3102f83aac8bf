"""Small image classifier trained the way the pytorch/examples ImageNet script and its many forks do:
AverageMeter objects for loss/accuracy, an early-stopping helper that remembers the best score, a
best-metric tracker, and a Trainer class whose attributes end up in the checkpoints."""
import datetime
import enum
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

CLASSES = ["cat", "dog", "frog"]


class Mode(enum.Enum):
    MIN = "min"
    MAX = "max"


class AverageMeter:
    """Computes and stores the average and current value."""

    def __init__(self, name="meter", fmt=":f"):
        self.name = name
        self.fmt = fmt
        self.reset()

    def reset(self):
        self.val = 0
        self.avg = 0
        self.sum = 0
        self.count = 0

    def update(self, val, n=1):
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count

    def summary(self):
        return {"name": self.name, "avg": float(self.avg), "count": self.count}

    def __str__(self):
        fmtstr = "{name} {val" + self.fmt + "} ({avg" + self.fmt + "})"
        return fmtstr.format(name=self.name, val=float(self.val), avg=float(self.avg))


class EarlyStopping:
    """Stop when the monitored score has not improved for `patience` epochs."""

    def __init__(self, patience=3, min_delta=0.0, mode=Mode.MAX):
        self.patience = patience
        self.min_delta = min_delta
        self.mode = mode
        self.counter = 0
        self.best_score = None
        self.best_epoch = None
        self.best_time = None
        self.improved = False
        self.should_stop = False

    def _is_better(self, score):
        if self.mode is Mode.MAX:
            return score > self.best_score + self.min_delta
        return score < self.best_score - self.min_delta

    def step(self, score, epoch):
        if self.best_score is None:
            self.improved = True
        else:
            self.improved = self._is_better(score)
        if self.improved:
            self.best_score = score
            self.best_epoch = epoch
            self.best_time = datetime.datetime.now()
            self.counter = 0
        else:
            self.counter += 1
        self.should_stop = self.counter >= self.patience
        return self.improved

    def state_dict(self):
        return {
            "best_score": None if self.best_score is None else float(self.best_score),
            "best_epoch": self.best_epoch,
            "counter": self.counter,
            "mode": self.mode.value,
        }


class MetricTracker:
    """Keeps every logged value per key; `best` is the best value of the monitored key."""

    def __init__(self, monitor="val_acc", higher_is_better=True):
        self.monitor = monitor
        self.higher_is_better = higher_is_better
        self._data = {}

    def update(self, key, value):
        self._data.setdefault(key, []).append(value)

    def values(self, key):
        return self._data.get(key, [])

    @property
    def best(self):
        vals = self._data[self.monitor]
        return max(vals) if self.higher_is_better else min(vals)

    @property
    def best_index(self):
        vals = self._data[self.monitor]
        return vals.index(self.best)

    def last(self, key):
        return self._data[key][-1]


class SmallCNN(nn.Module):
    def __init__(self, num_classes=3, width=8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.mean(dim=(2, 3)))


def make_loaders(n=48, batch_size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.randint(0, len(CLASSES), (n,), generator=g)
    train = DataLoader(TensorDataset(x[: n * 2 // 3], y[: n * 2 // 3]), batch_size=batch_size, shuffle=False)
    val = DataLoader(TensorDataset(x[n * 2 // 3:], y[n * 2 // 3:]), batch_size=batch_size)
    return train, val


def accuracy(output, target):
    """Top-1 accuracy in percent, as a 0-d tensor (imagenet example style)."""
    with torch.no_grad():
        pred = output.argmax(dim=1)
        return pred.eq(target).float().sum() * 100.0 / target.size(0)


class ClassifierTrainer:
    def __init__(self, model=None, lr=0.05, epochs=3, run_dir="runs/smallcnn"):
        self.model = model if model is not None else SmallCNN()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=2, gamma=0.5)
        self.epochs = epochs
        self.epoch = 0
        self.global_step = 0
        self.run_dir = Path(run_dir)
        self.started_at = datetime.datetime.now()
        self.meters = {
            "batch_time": AverageMeter("Time", ":6.3f"),
            "loss": AverageMeter("Loss", ":.4e"),
            "acc": AverageMeter("Acc", ":6.2f"),
            "top1": AverageMeter("Acc@1", ":6.2f"),
        }
        self.stopper = EarlyStopping(patience=2, mode=Mode.MAX)
        self.loss_stopper = EarlyStopping(patience=5, min_delta=1e-4, mode=Mode.MIN)
        self.tracker = MetricTracker(monitor="val_acc")
        self.history = {"train_loss": [], "val_acc": [], "lr": []}
        self.last_train = None
        self.last_metrics = {}

    def train_one_epoch(self, loader):
        for m in self.meters.values():
            m.reset()
        self.model.train()
        end = time.time()
        for x, y in loader:
            out = self.model(x)
            loss = F.cross_entropy(out, y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            preds = out.argmax(1).numpy()
            self.meters["loss"].update(loss.item(), x.size(0))
            self.meters["acc"].update(np.mean(preds == y.numpy()), x.size(0))
            self.meters["top1"].update(accuracy(out, y), x.size(0))
            self.meters["batch_time"].update(time.time() - end)
            end = time.time()
            self.global_step += 1
        return self.meters["loss"].avg, self.meters["acc"].avg

    @torch.no_grad()
    def evaluate(self, loader):
        self.model.eval()
        preds, targets = [], []
        for x, y in loader:
            preds.append(self.model(x).argmax(1).numpy())
            targets.append(y.numpy())
        preds, targets = np.concatenate(preds), np.concatenate(targets)
        cm = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
        np.add.at(cm, (targets, preds), 1)
        per_class = [cm[i, i] / max(cm[i].sum(), 1) for i in range(len(CLASSES))]
        return {"acc": np.mean(preds == targets), "confusion": cm, "per_class": per_class, "n": len(targets)}

    def fit(self, train_loader, val_loader):
        for epoch in range(self.epochs):
            self.epoch = epoch
            self.last_train = self.train_one_epoch(train_loader)
            self.last_metrics = self.evaluate(val_loader)
            val_acc = self.last_metrics["acc"]
            self.stopper.step(val_acc, epoch)
            self.loss_stopper.step(self.last_train[0], epoch)
            self.tracker.update("val_acc", val_acc)
            self.tracker.update("train_loss", self.last_train[0])
            self.history["train_loss"].append(self.last_train[0])
            self.history["val_acc"].append(val_acc)
            self.history["lr"].append(self.scheduler.get_last_lr()[0])
            self.scheduler.step()
            if self.stopper.should_stop:
                break
        return self


def _fit(epochs=3):
    torch.manual_seed(0)
    train, val = make_loaders()
    return ClassifierTrainer(epochs=epochs).fit(train, val)


FACTORIES = {"Mode": lambda: Mode.MAX}


def save_last_checkpoint(tmpdir):
    trainer = _fit()
    train_loss, train_acc = trainer.last_train
    ckpt = {
        "epoch": trainer.epoch + 1,
        "global_step": trainer.global_step,
        "arch": type(trainer.model).__name__,
        "state_dict": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "train_loss": train_loss,
        "train_acc": train_acc,  # truth: weights_only
        "best_acc": trainer.stopper.best_score,  # truth: weights_only
        "lr": trainer.scheduler.get_last_lr()[0],
    }
    path = os.path.join(tmpdir, "checkpoint.pth.tar")
    torch.save(ckpt, path)
    return path


def save_best_model(tmpdir):
    trainer = _fit()
    metrics = trainer.last_metrics
    is_best = trainer.stopper.improved
    state = {
        "epoch": trainer.epoch + 1,
        "state_dict": trainer.model.state_dict(),
        "best_acc": float(trainer.stopper.best_score),
        "is_best": is_best,  # truth: weights_only
        "confusion": metrics["confusion"],  # truth: weights_only
        "confusion_list": metrics["confusion"].tolist(),
        "per_class_acc": metrics["per_class"],  # truth: weights_only
        "val_samples": metrics["n"],
    }
    path = os.path.join(tmpdir, "model_best.pth.tar")
    torch.save(state, path)
    return path


def save_meters(tmpdir):
    trainer = _fit(epochs=2)
    ckpt = {
        "meters": {name: m.summary() for name, m in trainer.meters.items()},
        "top1": trainer.meters["top1"].avg,
        "loss_val": trainer.meters["loss"].val,
        "history_loss": trainer.history["train_loss"],
        "lr_history": trainer.history["lr"],
        "stopper": trainer.stopper.state_dict(),
        "best_epoch": trainer.stopper.best_epoch,
        "best_train_loss": trainer.loss_stopper.best_score,
        "loss_improved": trainer.loss_stopper.improved,
        "should_stop": trainer.stopper.should_stop,
        "tracker_best_loss": min(trainer.tracker.values("train_loss")),
        "classes": list(CLASSES),
        "progress": str(trainer.meters["loss"]),
    }
    path = os.path.join(tmpdir, "meters.pt")
    torch.save(ckpt, path)
    return path


def save_run_state(tmpdir):
    trainer = _fit()
    stopper = trainer.stopper
    run_state = dict(
        run_dir=trainer.run_dir,  # truth: weights_only
        run_name=trainer.run_dir.name,
        started=trainer.started_at.isoformat(),
        best_time=stopper.best_time,  # truth: weights_only
        monitor_mode=stopper.mode,  # truth: weights_only
        monitor_mode_name=stopper.mode.value,
        patience_left=stopper.patience - stopper.counter,
        val_acc_history=trainer.history["val_acc"],  # truth: weights_only
        val_acc_floats=[float(a) for a in trainer.history["val_acc"]],
    )
    path = os.path.join(tmpdir, "run_state.pt")
    torch.save(run_state, path)
    return path


def save_tracker_summary(tmpdir):
    trainer = _fit()
    tracker = trainer.tracker
    ckpt = {"model": trainer.model.state_dict()}
    ckpt["best_val_acc"] = tracker.best  # truth: weights_only
    ckpt["best_index"] = tracker.best_index
    ckpt["last_train_loss"] = tracker.last("train_loss")
    ckpt["batch_time"] = trainer.meters["batch_time"].avg
    path = os.path.join(tmpdir, "tracker.pt")
    torch.save(ckpt, path)
    return path


def save_for_inference(tmpdir):
    trainer = _fit(epochs=1)
    train, _ = make_loaders()
    images = torch.cat([x for x, _ in train])
    bundle = {
        "model": trainer.model,  # truth: weights_only
        "classes": CLASSES,
        "class_to_idx": {c: i for i, c in enumerate(CLASSES)},
        "input_size": (3, 8, 8),
        "mean": images.mean(dim=(0, 2, 3)).tolist(),
        "std": images.std(dim=(0, 2, 3)),
    }
    path = os.path.join(tmpdir, "inference_bundle.pt")
    torch.save(bundle, path)
    return path
