"""Camera-trap species classifier: argparse script with a class-based trainer.

Images are stand-ins (random crops); the metadata table mimics the usual
LILA / Snapshot Serengeti export: one row per image with species, site and
a day/night flag.
"""
import argparse
import math
import os
import time
from collections import OrderedDict, defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix, f1_score, top_k_accuracy_score
from sklearn.preprocessing import LabelEncoder
from torch.optim.swa_utils import AveragedModel

SPECIES = ["empty", "zebra", "wildebeest", "gazelle", "impala", "elephant", "hyena", "lion"]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="train a camera-trap classifier")
    p.add_argument("--data-dir", default="data/serengeti")
    p.add_argument("--out-dir", default="runs/ct")
    p.add_argument("--arch", default="tinyconv")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--val-sites", nargs="+", default=["S03", "S07"])
    return p.parse_args(argv)


def load_metadata(n=160, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "image_id": [f"img_{i:05d}" for i in range(n)],
        "species": rng.choice(SPECIES, size=n, p=[0.4, 0.15, 0.15, 0.1, 0.08, 0.05, 0.04, 0.03]),
        "site": rng.choice([f"S{i:02d}" for i in range(1, 10)], size=n),
        "hour": rng.integers(0, 24, size=n),
    })
    df["is_night"] = (df["hour"] < 6) | (df["hour"] > 19)
    return df


def site_split(df, val_sites):
    val_mask = df["site"].isin(val_sites)
    return df[~val_mask].reset_index(drop=True), df[val_mask].reset_index(drop=True)


def inverse_frequency_weights(labels, num_classes):
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    counts[counts == 0] = 1.0
    w = counts.sum() / (num_classes * counts)
    return w / w.mean()


class TinyConvNet(nn.Module):
    def __init__(self, num_classes=len(SPECIES), width=16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, width * 2, 3, padding=1), nn.BatchNorm2d(width * 2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(width * 2, num_classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class CameraTrapTrainer:
    """Keeps the run state the way most repos do: on the trainer object."""

    def __init__(self, args=None, num_classes=len(SPECIES)):
        self.args = args or parse_args([])
        self.model = TinyConvNet(num_classes)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.args.lr, weight_decay=0.05)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(self.args.epochs, 1))
        self.ema = AveragedModel(self.model)
        self.epoch = 0
        self.best_top1 = 0.0
        self.best_epoch = -1
        self.history = defaultdict(list)
        self.num_classes = num_classes

    def fake_batch(self, labels):
        g = torch.Generator().manual_seed(int(labels.sum()))
        x = torch.randn(len(labels), 3, self.args.img_size, self.args.img_size, generator=g)
        return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def train_one_epoch(self, labels, class_weights):
        self.model.train()
        losses = []
        crit = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=self.args.label_smoothing)
        for start in range(0, len(labels), self.args.batch_size):
            y = torch.as_tensor(labels[start:start + self.args.batch_size])
            x = self.fake_batch(y)
            loss = crit(self.model(x), y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.ema.update_parameters(self.model)
            losses.append(loss.item())
        self.scheduler.step()
        self.epoch += 1
        return float(np.mean(losses)), len(losses)

    @torch.no_grad()
    def evaluate(self, labels):
        self.model.eval()
        y = torch.as_tensor(labels)
        probs = F.softmax(self.model(self.fake_batch(y)), dim=1).numpy()
        preds = probs.argmax(1)
        top1 = np.mean(preds == labels)
        top3 = top_k_accuracy_score(labels, probs, k=3, labels=np.arange(self.num_classes))
        macro_f1 = f1_score(labels, preds, average="macro", zero_division=0)
        cm = confusion_matrix(labels, preds, labels=np.arange(self.num_classes))
        per_class = cm.diagonal() / np.maximum(cm.sum(1), 1)
        return {"top1": top1, "top3": top3, "macro_f1": macro_f1, "cm": cm, "per_class": per_class, "probs": probs}

    def track(self, metrics):
        for k in ("top1", "top3", "macro_f1"):
            self.history[k].append(metrics[k])
        if metrics["top1"] > self.best_top1:
            self.best_top1 = metrics["top1"]
            self.best_epoch = self.epoch
            return True
        return False


def expected_calibration_error(probs, labels, n_bins=10):
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return ece


def _prepare(args=None, epochs=1):
    args = args or parse_args([])
    df = load_metadata()
    le = LabelEncoder().fit(SPECIES)
    train_df, val_df = site_split(df, args.val_sites)
    y_train = le.transform(train_df["species"])
    y_val = le.transform(val_df["species"])
    weights = inverse_frequency_weights(y_train, len(le.classes_))
    trainer = CameraTrapTrainer(args, num_classes=len(le.classes_))
    metrics, is_best = None, False
    for _ in range(epochs):
        trainer.train_one_epoch(y_train, torch.from_numpy(weights).float())
        metrics = trainer.evaluate(y_val)
        is_best = trainer.track(metrics)
    return args, df, le, trainer, metrics, is_best, weights


def save_last_checkpoint(tmpdir):
    args, df, le, trainer, metrics, is_best, weights = _prepare()
    ckpt = {
        "epoch": trainer.epoch,
        "arch": args.arch,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "args": args,  # truth: weights_only
        "best_top1": trainer.best_top1,  # truth: weights_only
        "best_epoch": trainer.best_epoch,
        "lr": trainer.scheduler.get_last_lr()[0],
        "is_best": bool(is_best),
    }
    path = os.path.join(tmpdir, "last.pth")
    torch.save(ckpt, path)
    return path


def save_best_with_eval(tmpdir):
    args, df, le, trainer, metrics, is_best, weights = _prepare()
    ckpt = OrderedDict()
    ckpt["state_dict"] = trainer.model.state_dict()
    ckpt["classes"] = le.classes_.tolist()
    ckpt["class_to_idx"] = {str(c): i for i, c in enumerate(le.classes_)}
    ckpt["confusion"] = metrics["cm"]  # truth: weights_only
    ckpt["confusion_list"] = metrics["cm"].tolist()
    ckpt["top3"] = metrics["top3"]
    ckpt["macro_f1"] = metrics["macro_f1"]
    ckpt["per_class_recall"] = {str(name): float(r) for name, r in zip(le.classes_, metrics["per_class"])}
    ckpt["dataset"] = {
        "n_images": len(df),
        "n_sites": df["site"].nunique(),
        "night_fraction": float(df["is_night"].mean()),
        "species_counts": df["species"].value_counts().to_dict(),
        "val_sites": list(args.val_sites),
    }
    path = os.path.join(tmpdir, "best.pth")
    torch.save(ckpt, path)
    return path


def save_ema_weights(tmpdir):
    args, df, le, trainer, metrics, is_best, weights = _prepare()
    out = Path(tmpdir) / args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    payload = dict(
        ema_state=trainer.ema.state_dict(),
        ema_decay=args.ema_decay,
        n_averaged=int(trainer.ema.n_averaged),
        ema_model=trainer.ema,  # truth: weights_only
        out_dir=str(out),
        saved_at=time.time(),
    )
    path = out / "ema.pt"
    torch.save(payload, path)
    return str(path)


def save_calibrated(tmpdir):
    args, df, le, trainer, metrics, is_best, weights = _prepare()
    probs = metrics["probs"]
    y_val = probs.argmax(1)  # stand-in labels
    logits = np.log(np.clip(probs, 1e-8, 1.0))
    best_t, best_nll = 1.0, math.inf
    for t in np.linspace(0.5, 3.0, 11):
        scaled = torch.softmax(torch.from_numpy(logits / t), dim=1)
        nll = F.nll_loss(torch.log(scaled), torch.from_numpy(y_val)).item()
        if nll < best_nll:
            best_t, best_nll = t, nll
    ece = expected_calibration_error(probs, y_val)
    night_thresholds = {}
    for name, grp in df.groupby("is_night"):
        night_thresholds["night" if name else "day"] = round(float(grp["hour"].mean()) / 24.0, 3)
    calib = {"temperature": best_t, "nll": best_nll}  # truth: weights_only
    calib["ece"] = ece  # truth: weights_only
    calib["n_bins"] = 10
    ckpt = {
        "model": trainer.model.state_dict(),
        "calibration": calib,
        "thresholds": night_thresholds,
        "normalize": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "class_weights": torch.from_numpy(weights),
    }
    path = os.path.join(tmpdir, "calibrated.pth")
    torch.save(ckpt, path)
    return path


def save_export_bundle(tmpdir):
    args, df, le, trainer, metrics, is_best, weights = _prepare()
    val_sites = frozenset(args.val_sites)
    bundle = {
        "model": trainer.model.state_dict(),
        "input_size": (3, args.img_size, args.img_size),
        "mean_std": (np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)),  # truth: weights_only
        "labels": [str(c) for c in le.classes_],
        "holdout_sites": val_sites,  # truth: weights_only
        "train_sites": sorted(set(df["site"]) - val_sites),
        "data_root": Path(args.data_dir),  # truth: weights_only
        "data_root_str": os.fspath(Path(args.data_dir)),
        "exported": datetime.now(),  # truth: weights_only
        "exported_iso": datetime.now().isoformat(timespec="seconds"),
        "torch": str(torch.__version__),
    }
    path = os.path.join(tmpdir, "bundle.pt")
    torch.save(bundle, path)
    return path


def save_training_log(tmpdir):
    args, df, le, trainer, metrics, is_best, weights = _prepare(epochs=2)
    log = {
        "history": trainer.history,  # truth: weights_only
        "top1_curve": [float(v) for v in trainer.history["top1"]],
        "macro_f1_curve": list(trainer.history["macro_f1"]),
        "epochs_run": trainer.epoch,
        "steps_per_epoch": math.ceil(len(df) / args.batch_size),
    }
    path = os.path.join(tmpdir, "log.pt")
    torch.save(log, path)
    return path


def save_clean_resume(tmpdir):
    args, df, le, trainer, metrics, is_best, weights = _prepare()
    state = {"model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict()}
    state.update(
        epoch=trainer.epoch,
        best_top1=float(trainer.best_top1),
        hparams={k: (list(v) if isinstance(v, list) else v) for k, v in vars(args).items()},
        rng={"torch": torch.get_rng_state(), "numpy_seed": 0},
        class_weights=weights.tolist(),
        num_classes=int(len(le.classes_)),
    )
    path = os.path.join(tmpdir, "resume.pth")
    torch.save(state, path)
    return path


FACTORIES = {
    "CameraTrapTrainer": lambda: CameraTrapTrainer(parse_args(["--epochs", "1"])),
}


if __name__ == "__main__":
    out = parse_args().out_dir
    os.makedirs(out, exist_ok=True)
    print(save_last_checkpoint(out))
