"""Patient-level k-fold CT slice classification.

Plain torch. The cohort table stands in for a DICOM index CSV (one row per slice); the folds
are split by patient (StratifiedGroupKFold), the HU window and the z-score statistics come
from the training fold only, and the cross-entropy is class-balanced.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torch.utils.data import DataLoader, Dataset


class Modality(str, Enum):
    CT, MR, CR = "CT", "MR", "CR"


@dataclasses.dataclass
class WindowSpec:
    level: float = 40.0
    width: float = 400.0

    def bounds(self):
        return self.level - self.width / 2, self.level + self.width / 2


@dataclasses.dataclass
class FoldSplit:
    fold: int
    train_idx: np.ndarray
    val_idx: np.ndarray
    val_patients: list


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="patient-level k-fold slice classifier")
    p.add_argument("--data-root", type=Path, default=Path("/data/lidc"))
    p.add_argument("--modality", type=Modality, default=Modality.CT)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--window-level", type=float, default=40.0)
    p.add_argument("--window-width", type=float, default=400.0)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def make_cohort(n_patients=12, slices=3, size=16, seed=0):
    rng = np.random.default_rng(seed)
    rows, images = [], []
    for p in range(n_patients):
        label = int(p % 3 == 0)
        for s in range(slices):
            images.append(rng.normal(-300.0 + 200.0 * label, 250.0, size=(size, size)).astype("float32"))
            rows.append({"patient_id": f"P{p:03d}", "slice": s, "label": label,
                         "study_date": pd.Timestamp("2019-01-07") + pd.Timedelta(days=7 * p)})
    return pd.DataFrame(rows), np.stack(images)


def patient_folds(df, k, seed):
    sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = []
    for fold, (tr, va) in enumerate(sgkf.split(df, df["label"], groups=df["patient_id"])):
        folds.append(FoldSplit(fold, tr, va, sorted(df.iloc[va]["patient_id"].unique())))
    return folds


def window_and_stats(images, window):
    lo, hi = window.bounds()
    clipped = np.clip(images, lo, hi)
    stats = {"p0_5": np.percentile(clipped, 0.5), "p99_5": np.percentile(clipped, 99.5),
             "mean": clipped.mean(), "std": clipped.std()}
    return clipped, stats


class SliceDataset(Dataset):
    def __init__(self, images, labels, mean, std):
        self.x = torch.from_numpy((images - mean) / (std + 1e-6)).float().unsqueeze(1)
        self.y = torch.tensor(np.array(labels), dtype=torch.long)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class SmallCNN(nn.Module):
    def __init__(self, num_classes=2, width=8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(width, width * 2, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width * 2, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


class FoldTrainer:
    def __init__(self, model, split, args, class_weights):
        self.model = model
        self.split = split
        self.args = args
        self.opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        self.criterion = nn.CrossEntropyLoss(weight=torch.tensor(class_weights, dtype=torch.float32))
        self.epoch = 0
        self.best_auc = -1.0
        self.best_epoch = None
        self.last_train_loss = None
        self.val_probs = None

    def train_epoch(self, loader):
        self.model.train()
        losses = []
        for x, y in loader:
            self.opt.zero_grad()
            loss = self.criterion(self.model(x), y)
            loss.backward(); self.opt.step()
            losses.append(loss.item())
        self.epoch += 1
        self.last_train_loss = np.mean(losses)
        return self.last_train_loss

    @torch.no_grad()
    def evaluate(self, loader):
        self.model.eval()
        probs, ys = [], []
        for x, y in loader:
            probs.append(torch.softmax(self.model(x), dim=1)[:, 1])
            ys.append(y)
        probs, ys = torch.cat(probs).numpy(), torch.cat(ys).numpy()
        self.val_probs = probs
        auc = roc_auc_score(ys, probs) if len(set(ys.tolist())) > 1 else 0.5
        if auc > self.best_auc:
            self.best_auc, self.best_epoch = auc, self.epoch
        return {"auc": auc, "acc": ((probs > 0.5) == ys).mean(), "n": len(ys)}


def run_fold(args, df, images, split):
    window = WindowSpec(args.window_level, args.window_width)
    tr_img, stats = window_and_stats(images[split.train_idx], window)
    va_img = np.clip(images[split.val_idx], *window.bounds())
    y_tr = df["label"].to_numpy()[split.train_idx]
    weights = compute_class_weight("balanced", classes=np.array([0, 1]), y=y_tr)
    train_ds = SliceDataset(tr_img, y_tr, stats["mean"], stats["std"])
    val_ds = SliceDataset(va_img, df["label"].to_numpy()[split.val_idx], stats["mean"], stats["std"])
    trainer = FoldTrainer(SmallCNN(), split, args, weights)
    g = torch.Generator().manual_seed(args.seed + split.fold)
    for _ in range(args.epochs):
        trainer.train_epoch(DataLoader(train_ds, batch_size=args.batch_size, shuffle=True, generator=g))
    metrics = trainer.evaluate(DataLoader(val_ds, batch_size=args.batch_size))
    return trainer, metrics, stats, weights


def save_fold_checkpoint(tmpdir):
    args = parse_args([])
    torch.manual_seed(args.seed)
    df, images = make_cohort(seed=args.seed)
    split = patient_folds(df, args.folds, args.seed)[0]
    trainer, metrics, stats, weights = run_fold(args, df, images, split)
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "fold": split.fold,
        "epoch": trainer.epoch,
        "train_loss": trainer.last_train_loss,  # truth: weights_only
        "loss_finite": np.isfinite(trainer.last_train_loss),  # truth: weights_only
        "val_auc": metrics["auc"],
        "best_auc": trainer.best_auc,
        "val_acc": metrics["acc"],  # truth: weights_only
        "n_val": metrics["n"],
        "best_epoch": trainer.best_epoch,
        "val_patients": split.val_patients,
        "class_weights": weights,  # truth: weights_only
        "class_weights_t": trainer.criterion.weight,
        "norm": {"mean": float(stats["mean"]), "std": stats["std"].item()},
        "modality": args.modality.value,
        "data_root": str(args.data_root),
    }
    path = os.path.join(tmpdir, f"fold{split.fold}.pt")
    torch.save(ckpt, path)
    return path


def save_cv_summary(tmpdir):
    args = parse_args(["--folds", "3"])
    torch.manual_seed(args.seed)
    df, images = make_cohort(seed=args.seed)
    splits = patient_folds(df, args.folds, args.seed)
    fold_aucs, oof = [], np.zeros(len(df), dtype="float32")
    for split in splits:
        trainer, metrics, _, _ = run_fold(args, df, images, split)
        fold_aucs.append(metrics["auc"])
        oof[split.val_idx] = trainer.val_probs
    mean_auc = np.mean(fold_aucs)
    summary = dict(
        fold_aucs=fold_aucs,
        mean_auc=mean_auc,  # truth: weights_only
        std_auc=float(np.std(fold_aucs)),
        best_fold=int(np.argmax(fold_aucs)),
        oof_auc=roc_auc_score(df["label"], oof),
        oof_probs=torch.from_numpy(oof),
        prevalence=float(df["label"].mean()),
        n_patients=df["patient_id"].nunique(),
        first_study=df["study_date"].min(),  # truth: weights_only
        last_study=df["study_date"].max().isoformat(),
        folds=[{"fold": s.fold, "val_patients": s.val_patients} for s in splits],
    )
    summary["finished_at"] = dt.datetime.now()  # truth: weights_only
    summary["finished_unix"] = dt.datetime.now().timestamp()
    path = os.path.join(tmpdir, "cv_summary.pt")
    torch.save(summary, path)
    return path


def save_preprocessing_state(tmpdir):
    args = parse_args(["--window-level", "-600", "--window-width", "1500"])  # lung window
    window = WindowSpec(args.window_level, args.window_width)
    df, images = make_cohort(seed=args.seed)
    split = patient_folds(df, args.folds, args.seed)[0]
    _, stats = window_and_stats(images[split.train_idx], window)
    state = {"version": 2, "window_bounds": window.bounds()}
    state.update(window=window)  # truth: weights_only
    state["clip_percentiles"] = (stats["p0_5"], stats["p99_5"])  # truth: weights_only
    state["mean"] = stats["mean"].item()
    state["std"] = float(stats["std"])
    state["modality"] = args.modality  # truth: weights_only
    state["modality_name"] = f"{args.modality.value}"
    state["train_patients"] = df.iloc[split.train_idx]["patient_id"].unique()  # truth: weights_only
    state["train_patients_n"] = len(sorted(df.iloc[split.train_idx]["patient_id"].unique()))
    state["window_dict"] = dataclasses.asdict(window)
    state["spacing_mm"] = (0.7, 0.7, 2.5)
    path = os.path.join(tmpdir, "preprocessing.pt")
    torch.save(state, path)
    return path


def save_export_bundle(tmpdir):
    """What goes to the inference server: weights plus plain metadata only."""
    args = parse_args([])
    window = WindowSpec(args.window_level, args.window_width)
    model = SmallCNN()
    bundle = {
        "state_dict": model.state_dict(),
        "window": dataclasses.asdict(window),
        "modality": args.modality.name,
        "classes": ["benign", "malignant"],
        "input_hw": (16, 16),
        "torch": str(torch.__version__),
        "exported": dt.date.today().isoformat(),
    }
    path = os.path.join(tmpdir, "export.pt")
    torch.save(bundle, path)
    return path


def _dataset():
    df, images = make_cohort(n_patients=3, slices=1)
    return SliceDataset(images, df["label"], 0.0, 1.0)


FACTORIES = {
    "Modality": lambda: Modality("CT"),
    "FoldSplit": lambda: FoldSplit(0, np.arange(3), np.arange(3, 5), ["P000"]),
    "SliceDataset": _dataset,
    "FoldTrainer": lambda: FoldTrainer(SmallCNN(), FoldSplit(0, np.arange(3), np.arange(3, 5), ["P000"]),
                                       parse_args([]), np.array([0.75, 1.5])),
}
