"""Electricity theft detection from smart-meter readings (SGCC-style daily kWh).

Wide & Deep CNN (Zheng et al., 2018): the wide branch sees the raw daily series, the deep
branch sees the same series folded into a (weeks x 7) image so that weekly periodicity is a
2-D pattern.  An IsolationForest on hand-made features is the unsupervised baseline.

    python electricity_theft.py --data-dir data/sgcc --epochs 30 --out runs/wdcnn
"""
import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.ensemble import IsolationForest
from sklearn.metrics import (average_precision_score, confusion_matrix, f1_score,
                             precision_recall_curve, roc_auc_score)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

log = logging.getLogger("theft")

INTERVALS_PER_DAY = 96  # 15-minute readings
ATTACKS = ("scaling", "night_zeroing", "capping")


def build_parser():
    p = argparse.ArgumentParser(description="Wide & Deep CNN electricity theft detector")
    p.add_argument("--data-dir", type=Path, default=Path("data/sgcc"))
    p.add_argument("--out", type=Path, default=Path("runs/wdcnn"))
    p.add_argument("--n-meters", type=int, default=60)
    p.add_argument("--n-weeks", type=int, default=4)
    p.add_argument("--theft-ratio", type=float, default=0.2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--wide-hidden", type=int, default=32)
    p.add_argument("--deep-channels", type=int, default=8)
    p.add_argument("--seed", type=int, default=7)
    return p


# ----------------------------------------------------------------------------- data

def synth_meter_readings(n_meters, n_days, theft_ratio, seed):
    """Long table of 15-minute kWh readings; thieves under-report with one of three attacks."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2023-03-06", periods=n_days * INTERVALS_PER_DAY, freq="15min", name="ts")
    hour = np.asarray(index.hour + index.minute / 60.0)
    weekend = np.asarray(index.dayofweek >= 5, dtype=float)
    profile = 0.25 + 0.2 * np.sin((hour - 7) / 24 * 2 * np.pi) ** 2 + 0.15 * weekend
    n_thieves = int(round(theft_ratio * n_meters))
    frames = []
    for m in range(n_meters):
        kwh = rng.gamma(4.0, 0.25) * profile * rng.lognormal(0.0, 0.15, len(index))
        attack = "none"
        if m < n_thieves:
            attack = ATTACKS[m % len(ATTACKS)]
            start = int(rng.integers(INTERVALS_PER_DAY * 3, len(index) // 2))
            if attack == "scaling":
                kwh[start:] *= rng.uniform(0.2, 0.6)
            elif attack == "night_zeroing":
                night = (hour < 6) & (np.arange(len(index)) >= start)
                kwh[night] = 0.0
            else:
                kwh[start:] = np.minimum(kwh[start:], np.quantile(kwh, 0.3))
        frames.append(pd.DataFrame({"meter_id": f"M{m:04d}", "kwh": kwh,
                                    "theft": int(m < n_thieves), "attack": attack}, index=index))
    return pd.concat(frames)


def daily_matrix(readings):
    """meters x days table of daily consumption, and the per-meter label."""
    daily = (readings.groupby(["meter_id", pd.Grouper(freq="1D")])["kwh"].sum()
             .unstack("ts").sort_index())
    labels = readings.groupby("meter_id")["theft"].max().reindex(daily.index)
    return daily, labels


def engineer_features(daily):
    """Hand-made per-meter features for the IsolationForest baseline."""
    X = daily.to_numpy()
    weeks = X.reshape(len(X), -1, 7)
    feats = pd.DataFrame(index=daily.index)
    feats["mean"] = X.mean(axis=1)
    feats["std"] = X.std(axis=1)
    feats["cv"] = feats["std"] / (feats["mean"] + 1e-6)
    feats["min_ratio"] = X.min(axis=1) / (feats["mean"] + 1e-6)
    feats["skew"] = stats.skew(X, axis=1)
    feats["trend"] = [stats.linregress(np.arange(X.shape[1]), row).slope for row in X]
    feats["late_drop"] = X[:, -7:].mean(axis=1) / (X[:, :7].mean(axis=1) + 1e-6)
    feats["week_to_week"] = np.abs(np.diff(weeks.mean(axis=2), axis=1)).mean(axis=1)
    return feats


def split_and_scale(daily, labels, seed):
    X = daily.to_numpy(dtype=np.float64)
    y = labels.to_numpy()
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_va), y_tr, y_va, scaler


# ----------------------------------------------------------------------------- model

class WideDeepCNN(nn.Module):
    def __init__(self, n_days=28, wide_hidden=32, deep_channels=8):
        super().__init__()
        self.n_days = n_days
        self.n_weeks = n_days // 7
        self.wide = nn.Sequential(nn.Linear(n_days, wide_hidden), nn.ReLU())
        self.deep = nn.Sequential(
            nn.Conv2d(1, deep_channels, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(deep_channels, deep_channels, kernel_size=3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
        )
        self.head = nn.Linear(wide_hidden + deep_channels, 1)

    def forward(self, x):
        wide = self.wide(x)
        deep = self.deep(x.view(-1, 1, self.n_weeks, 7))
        return self.head(torch.cat([wide, deep], dim=1)).squeeze(1)


# ----------------------------------------------------------------------------- metrics

def detection_metrics(y_true, scores):
    """AUC, AP, the F1-optimal threshold and the F1 reached there."""
    auc = roc_auc_score(y_true, scores)
    ap = average_precision_score(y_true, scores)
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    best = int(np.argmax(f1[:-1]))
    return auc, ap, thresholds[best], f1[best]


def map_at_k(y_true, scores, k=50):
    """MAP@k as used on the SGCC benchmark: mean precision at the ranks of the true thieves."""
    order = np.argsort(-np.asarray(scores))[:k]
    hits = np.asarray(y_true)[order]
    precisions = [hits[: i + 1].mean() for i in range(len(hits)) if hits[i]]
    return sum(precisions) / len(precisions) if precisions else 0.0


# ----------------------------------------------------------------------------- training

class TheftTrainer:
    def __init__(self, model=None, lr=3e-3, pos_weight=1.0, device="cpu"):
        self.model = model if model is not None else WideDeepCNN()
        self.device = torch.device(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=1e-5)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="max",
                                                                    factor=0.5, patience=2)
        self.criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([float(pos_weight)]))
        self.history = []
        self.best_auc = 0.0
        self.best_state = None
        self.epoch = 0

    def train_epoch(self, loader):
        self.model.train()
        losses = []
        for xb, yb in loader:
            self.optimizer.zero_grad()
            loss = self.criterion(self.model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
            self.optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses))

    @torch.no_grad()
    def predict(self, X):
        self.model.eval()
        return torch.sigmoid(self.model(torch.as_tensor(X, dtype=torch.float32))).numpy()

    def fit(self, loader, X_val, y_val, epochs):
        for _ in range(epochs):
            loss = self.train_epoch(loader)
            auc, ap, _, _ = detection_metrics(y_val, self.predict(X_val))
            self.scheduler.step(auc)
            self.history.append({"epoch": self.epoch, "loss": loss, "val_auc": auc, "val_ap": ap,
                                 "lr": self.optimizer.param_groups[0]["lr"]})
            log.info("epoch %d loss %.4f auc %.4f", self.epoch, loss, auc)
            if auc > self.best_auc:
                self.best_auc = auc
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.epoch += 1
        return self.history

    def save_checkpoint(self, path, extra=None):
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_auc": self.best_auc,
            "history": self.history,
        }
        if self.best_state is not None:
            state["best_model"] = self.best_state
        if extra:
            state.update(extra)
        torch.save(state, path)
        return path


def run_training(args):
    """Synthesise readings, train the Wide & Deep CNN; everything the save functions need."""
    torch.manual_seed(args.seed)
    readings = synth_meter_readings(args.n_meters, args.n_weeks * 7, args.theft_ratio, args.seed)
    daily, labels = daily_matrix(readings)
    X_tr, X_va, y_tr, y_va, scaler = split_and_scale(daily, labels, args.seed)
    pos_weight = (y_tr == 0).sum() / y_tr.sum()
    model = WideDeepCNN(daily.shape[1], args.wide_hidden, args.deep_channels)
    trainer = TheftTrainer(model, lr=args.lr, pos_weight=pos_weight)
    ds = TensorDataset(torch.tensor(X_tr, dtype=torch.float32), torch.tensor(y_tr, dtype=torch.float32))
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(args.seed))
    trainer.fit(loader, X_va, y_va, args.epochs)
    return readings, daily, labels, trainer, scaler, (X_va, y_va), pos_weight


# ----------------------------------------------------------------------------- checkpoints

def save_wide_deep_checkpoint(tmpdir):
    args = build_parser().parse_args(["--epochs", "2", "--out", str(Path(tmpdir) / "wdcnn")])
    _, daily, _, trainer, scaler, (X_va, y_va), pos_weight = run_training(args)
    auc, ap, thr, f1_best = detection_metrics(y_va, trainer.predict(X_va))
    extra = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "data_dir": args.data_dir,  # truth: weights_only
        "run_name": args.out.name,
        "n_days": daily.shape[1],
        "threshold": thr,  # truth: weights_only
        "val_auc": auc,
        "val_ap": ap,
        "val_f1": float(f1_best),
        "pos_weight": pos_weight,  # truth: weights_only
        "scaler": {"mean": torch.from_numpy(scaler.mean_), "scale": scaler.scale_.tolist()},
        "torch_version": str(torch.__version__),
    }
    return trainer.save_checkpoint(Path(tmpdir) / "wdcnn_last.pt", extra)


def save_isolation_forest_baseline(tmpdir):
    args = build_parser().parse_args([])
    readings = synth_meter_readings(args.n_meters, args.n_weeks * 7, args.theft_ratio, args.seed)
    daily, labels = daily_matrix(readings)
    feats = engineer_features(daily)
    iso = IsolationForest(n_estimators=50, contamination=args.theft_ratio, random_state=args.seed)
    pred = iso.fit_predict(feats.to_numpy())
    scores = -iso.score_samples(feats.to_numpy())
    ckpt = {
        "detector": iso,  # truth: weights_only
        "detector_params": iso.get_params(),
        "offset": iso.offset_,  # truth: weights_only
        "feature_columns": feats.columns,  # truth: weights_only
        "feature_order": list(feats.columns),
        "feature_stats": feats.describe().to_dict(),
        "contamination": args.theft_ratio,
        "auc": roc_auc_score(labels.to_numpy(), scores),
        "anomaly_rate": (pred == -1).mean(),  # truth: weights_only
        "n_flagged": int((pred == -1).sum()),
    }
    path = Path(tmpdir) / "iforest.pt"
    torch.save(ckpt, path)
    return str(path)


def save_threshold_report(tmpdir):
    args = build_parser().parse_args(["--epochs", "2"])
    readings, daily, labels, trainer, scaler, _, _ = run_training(args)
    X_all = scaler.transform(daily.to_numpy())
    y = labels.to_numpy()
    scores = trainer.predict(X_all)
    _, _, thr, _ = detection_metrics(y, scores)
    pred = (scores >= thr).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred).ravel()
    attack_of = readings.groupby("meter_id")["attack"].first().reindex(daily.index)
    by_attack = {}
    for attack in ATTACKS:
        sel = (attack_of == attack).to_numpy()
        by_attack[attack] = {"recall": float(pred[sel].mean()) if sel.any() else 0.0,
                             "n_meters": int(sel.sum())}
    order = np.argsort(-scores)
    report = dict(
        confusion=confusion_matrix(y, pred),  # truth: weights_only
        counts={"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": tp},  # truth: weights_only
        support=int(tp + fn),
        by_attack=by_attack,
        map_at_20=map_at_k(y, scores, 20),  # truth: weights_only
        precision_at_10=float(y[order[:10]].mean()),
        f1=f1_score(y, pred),
        theft_rate=labels.mean(),  # truth: weights_only
        n_meters=labels.size,
        evaluated_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    path = Path(tmpdir) / "threshold_report.pt"
    torch.save(report, path)
    return str(path)


def save_daily_profile_cache(tmpdir):
    args = build_parser().parse_args(["--n-meters", "30"])
    readings = synth_meter_readings(args.n_meters, args.n_weeks * 7, args.theft_ratio, args.seed)
    daily, labels = daily_matrix(readings)
    cache = {}
    cache["daily_kwh"] = torch.tensor(daily.to_numpy(), dtype=torch.float32)
    cache["meter_ids"] = daily.index.tolist()
    cache["days"] = daily.columns.tolist()  # truth: weights_only
    cache["labels"] = torch.as_tensor(labels.to_numpy())
    cache["interval"] = readings.index[1] - readings.index[0]  # truth: weights_only
    cache["interval_minutes"] = (readings.index[1] - readings.index[0]).total_seconds() / 60
    cache["peak_load_at"] = readings["kwh"].idxmax()  # truth: weights_only
    cache["peak_load_kwh"] = readings["kwh"].max().item()
    cache["zero_days"] = (daily < 1e-3).sum(axis=1).to_dict()
    cache["first_day"] = daily.columns[0].isoformat()
    cache["created"] = pd.Timestamp.now(tz="UTC").isoformat()
    path = Path(tmpdir) / "daily_cache.pt"
    torch.save(cache, path)
    return str(path)


def save_best_model_only(tmpdir):
    args = build_parser().parse_args(["--epochs", "2"])
    _, daily, _, trainer, _, _, _ = run_training(args)
    model = WideDeepCNN(daily.shape[1], args.wide_hidden, args.deep_channels)
    model.load_state_dict(trainer.best_state)
    model.eval()
    path = Path(tmpdir) / "wdcnn_best_model.pt"
    torch.save(
        model,  # truth: weights_only
        path,
    )
    return str(path)


def save_resume_state(tmpdir):
    args = build_parser().parse_args(["--epochs", "2", "--lr", "1e-3"])
    _, _, labels, trainer, _, _, _ = run_training(args)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    aucs = [h["val_auc"] for h in trainer.history]
    extra = dict(
        rng={"numpy": np.random.default_rng(args.seed).bit_generator.state,
             "torch": torch.get_rng_state()},
        class_balance={"pos_weight": n_neg / n_pos, "n_pos": n_pos, "n_neg": n_neg},
        lr_now=trainer.optimizer.param_groups[0]["lr"],
        best_epoch=int(np.argmax(aucs)),
        val_auc_history=aucs,
        week_shape=(args.n_weeks, 7),
        device=trainer.device,
        hparams=vars(build_parser().parse_args(["--lr", "1e-3"])) | {"data_dir": str(args.data_dir),
                                                                     "out": str(args.out)},
    )
    return trainer.save_checkpoint(Path(tmpdir) / "resume.pt", extra)
