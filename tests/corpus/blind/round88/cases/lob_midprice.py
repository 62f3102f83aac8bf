"""Mid-price movement forecasting from limit-order-book snapshots.

DeepLOB-style conv + LSTM classifier over windows of order-book features, with the FI-2010
smoothed labelling (down / stationary / up over a horizon of k events), a toy cost-aware backtest
of the resulting signal, and the usual resume checkpoints.

    python lob_midprice.py --levels 5 --horizon 10 --seq-len 32 --epochs 20
"""
import argparse
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import stats
from sklearn.metrics import accuracy_score, classification_report, cohen_kappa_score, confusion_matrix, f1_score
from sklearn.utils.class_weight import compute_class_weight
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader, Dataset, Subset

LABELS = ("down", "stationary", "up")
TICK = 0.01


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="LOB mid-price movement classifier")
    p.add_argument("--data-dir", type=Path, default=Path("data/lob"))
    p.add_argument("--out-dir", type=Path, default=Path("checkpoints/lob"))
    p.add_argument("--levels", type=int, default=5)
    p.add_argument("--horizon", type=int, default=10)
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--cost-bps", type=float, default=0.5)
    p.add_argument("--n-events", type=int, default=1500)
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- data

def simulate_lob(n_events, levels, seed=0):
    """A synthetic 100ms snapshot stream with `levels` price levels a side."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([-1, 0, 1], size=n_events, p=[0.3, 0.4, 0.3])
    mid = 100.0 + np.cumsum(steps) * TICK
    half_spread = rng.integers(1, 3, size=n_events) * TICK
    idx = pd.date_range("2024-03-04 09:30:00", periods=n_events, freq="100ms")
    cols = {}
    for lvl in range(1, levels + 1):
        cols[f"ask_px_{lvl}"] = np.round(mid + half_spread + (lvl - 1) * TICK, 2)
        cols[f"bid_px_{lvl}"] = np.round(mid - half_spread - (lvl - 1) * TICK, 2)
        cols[f"ask_sz_{lvl}"] = rng.integers(1, 50, size=n_events) * 100
        cols[f"bid_sz_{lvl}"] = rng.integers(1, 50, size=n_events) * 100
    return pd.DataFrame(cols, index=idx)


def compute_features(book, levels):
    feats = pd.DataFrame(index=book.index)
    feats["mid"] = (book["ask_px_1"] + book["bid_px_1"]) / 2
    feats["spread"] = book["ask_px_1"] - book["bid_px_1"]
    bid_depth = book[[f"bid_sz_{l}" for l in range(1, levels + 1)]].sum(axis=1)
    ask_depth = book[[f"ask_sz_{l}" for l in range(1, levels + 1)]].sum(axis=1)
    feats["imbalance"] = (bid_depth - ask_depth) / (bid_depth + ask_depth)
    feats["microprice"] = (book["ask_px_1"] * book["bid_sz_1"] + book["bid_px_1"] * book["ask_sz_1"]) / (
        book["bid_sz_1"] + book["ask_sz_1"])
    # order-flow imbalance at the touch (Cont, Kukanov & Stoikov)
    d_bid = np.where(book["bid_px_1"].diff() >= 0, book["bid_sz_1"], 0) - np.where(
        book["bid_px_1"].diff() <= 0, book["bid_sz_1"].shift(), 0)
    d_ask = np.where(book["ask_px_1"].diff() <= 0, book["ask_sz_1"], 0) - np.where(
        book["ask_px_1"].diff() >= 0, book["ask_sz_1"].shift(), 0)
    feats["ofi"] = np.nan_to_num(d_bid - d_ask) / 1e4
    feats["log_ret"] = np.log(feats["mid"]).diff().fillna(0.0)
    for l in range(1, levels + 1):
        feats[f"depth_ratio_{l}"] = book[f"bid_sz_{l}"] / (book[f"bid_sz_{l}"] + book[f"ask_sz_{l}"])
    return feats


def label_midprice_moves(mid, horizon, alpha=None):
    """FI-2010 labels: mean of the next `horizon` mids against the current mid."""
    fwd = mid[::-1].rolling(horizon).mean()[::-1].shift(-1)
    ret = (fwd - mid) / mid
    if alpha is None:
        alpha = np.nanquantile(np.abs(ret.to_numpy()), 0.33)
    labels = np.where(ret > alpha, 2, np.where(ret < -alpha, 0, 1))
    labels[ret.isna().to_numpy()] = -1
    return labels, alpha, ret


class ZScoreNormalizer:
    """Per-feature z-score fitted on the training days only."""

    def __init__(self):
        self.mean_ = None
        self.std_ = None
        self.columns = []

    def fit(self, frame):
        values = frame.to_numpy(dtype=np.float64)
        self.mean_ = values.mean(axis=0)
        self.std_ = values.std(axis=0) + 1e-8
        self.columns = list(frame.columns)
        return self

    def transform(self, frame):
        return ((frame[self.columns].to_numpy(dtype=np.float64) - self.mean_) / self.std_).astype(np.float32)

    def state(self):
        return {"mean": torch.from_numpy(self.mean_).float(), "std": torch.from_numpy(self.std_).float(),
                "columns": list(self.columns)}


class LOBWindows(Dataset):
    def __init__(self, features, labels, seq_len):
        self.x = torch.from_numpy(features)
        self.y = torch.from_numpy(labels.astype(np.int64))
        self.seq_len = seq_len
        self.index = np.arange(seq_len - 1, len(labels))[labels[seq_len - 1:] >= 0]

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        t = int(self.index[i])
        return self.x[t - self.seq_len + 1: t + 1], self.y[t]


@dataclass
class LOBSplits:
    book: pd.DataFrame
    features: pd.DataFrame
    normalizer: ZScoreNormalizer
    alpha: float
    train: LOBWindows
    val: LOBWindows
    val_fwd_ret: np.ndarray
    train_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n_features(self):
        return len(self.normalizer.columns)


def prepare_data(args, n_events=None):
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    book = simulate_lob(n_events or args.n_events, args.levels, seed=args.seed)
    feats = compute_features(book, args.levels)
    labels, alpha, ret = label_midprice_moves(feats["mid"], args.horizon)
    cut = int(len(feats) * 0.8)
    # the label threshold comes from the training part only; validation reuses it
    labels_tr, alpha, _ = label_midprice_moves(feats["mid"].iloc[:cut], args.horizon)
    labels_va, _, ret_va = label_midprice_moves(feats["mid"].iloc[cut:], args.horizon, alpha=alpha)
    model_cols = [c for c in feats.columns if c not in ("mid", "microprice")]
    norm = ZScoreNormalizer().fit(feats[model_cols].iloc[:cut])
    x_tr = norm.transform(feats[model_cols].iloc[:cut])
    x_va = norm.transform(feats[model_cols].iloc[cut:])
    train = LOBWindows(x_tr, labels_tr, args.seq_len)
    val = LOBWindows(x_va, labels_va, args.seq_len)
    fwd = np.nan_to_num(ret_va.to_numpy()[val.index])
    return LOBSplits(book=book, features=feats, normalizer=norm, alpha=alpha, train=train, val=val,
                     val_fwd_ret=fwd, train_labels=labels_tr[labels_tr >= 0])


# ----------------------------------------------------------------------------- model

class DeepLOBLite(nn.Module):
    def __init__(self, n_features=11, hidden=32, n_classes=3):
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Sequential(
            nn.Conv1d(n_features, hidden, kernel_size=3, padding=1), nn.LeakyReLU(0.01),
            nn.Conv1d(hidden, hidden, kernel_size=3, padding=1), nn.LeakyReLU(0.01),
        )
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):  # x: (B, T, F)
        h = self.conv(x.transpose(1, 2)).transpose(1, 2)
        out, _ = self.lstm(h)
        return self.head(out[:, -1])


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    logits, ys = [], []
    for xb, yb in loader:
        logits.append(model(xb))
        ys.append(yb)
    logits, y = torch.cat(logits), torch.cat(ys)
    probs = logits.softmax(-1).numpy()
    pred = probs.argmax(1)
    y_np = y.numpy()
    metrics = {
        "acc": accuracy_score(y_np, pred),
        "f1_macro": f1_score(y_np, pred, average="macro", labels=[0, 1, 2], zero_division=0),
        "kappa": cohen_kappa_score(y_np, pred, labels=[0, 1, 2]),
        "ce": F.cross_entropy(logits, y).item(),
    }
    cm = confusion_matrix(y_np, pred, labels=[0, 1, 2])
    return metrics, cm, probs


def information_coefficient(probs, fwd_ret):
    signal = probs[:, 2] - probs[:, 0]
    return stats.spearmanr(signal, fwd_ret).statistic


def backtest(signal, mid, cost_bps):
    """Hold sign(signal) one unit for one step; pay cost_bps on every change of position."""
    pos = pd.Series(np.sign(np.round(signal, 3)), index=mid.index)
    step_pnl = pos.shift().fillna(0.0) * mid.diff().fillna(0.0)
    costs = pos.diff().abs().fillna(0.0) * mid * cost_bps * 1e-4
    pnl = (step_pnl - costs).cumsum()
    rets = pnl.diff().dropna()
    sharpe = rets.mean() / (rets.std() + 1e-12) * math.sqrt(len(rets))
    max_dd = (pnl.cummax() - pnl).max()
    moved = mid.diff().shift(-1).fillna(0.0) != 0
    hit_rate = accuracy_score(np.sign(mid.diff().shift(-1).fillna(0.0))[moved], pos[moved])
    return pnl, sharpe, max_dd, hit_rate


class Trainer:
    def __init__(self, model, args, class_weights=None):
        self.model = model
        self.args = args
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        self.scheduler = ReduceLROnPlateau(self.optimizer, mode="min", factor=0.5, patience=2)
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.criterion = nn.CrossEntropyLoss(weight=weight)
        self.history = {"train_loss": [], "val_loss": [], "val_f1": []}
        self.best_f1 = -1.0
        self.best_epoch = -1
        self.best_confusion = None
        self.val_ic = None
        self.last_train_loss = None
        self.epoch = 0

    def train_one_epoch(self, loader):
        self.model.train()
        losses = []
        for xb, yb in loader:
            self.optimizer.zero_grad()
            loss = self.criterion(self.model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            losses.append(loss.item())
        return np.mean(losses)

    def fit(self, train_loader, val_loader, val_fwd_ret):
        for epoch in range(self.args.epochs):
            self.last_train_loss = self.train_one_epoch(train_loader)
            metrics, cm, probs = evaluate(self.model, val_loader)
            self.scheduler.step(self.last_train_loss)  # plateau on the (smoother) train loss
            self.history["train_loss"].append(float(self.last_train_loss))
            self.history["val_loss"].append(metrics["ce"])
            self.history["val_f1"].append(metrics["f1_macro"])
            if metrics["f1_macro"] > self.best_f1:
                self.best_f1 = metrics["f1_macro"]
                self.best_epoch = epoch
                self.best_confusion = cm
                self.val_ic = information_coefficient(probs, val_fwd_ret)
            self.epoch = epoch + 1
        return self.history

    def save_checkpoint(self, path, **extra):
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_f1": self.best_f1,
            "best_epoch": self.best_epoch,
            "history": self.history,
        }
        state.update(extra)
        torch.save(state, path)
        return path


def loaders(splits, batch_size):
    g = torch.Generator().manual_seed(0)
    return (DataLoader(splits.train, batch_size=batch_size, shuffle=True, generator=g),
            DataLoader(splits.val, batch_size=batch_size * 2))


def _small_args(*extra):
    return parse_args(["--epochs", "1", "--seq-len", "16", "--n-events", "900", "--data-dir", "data/lob_small", *extra])


FACTORIES = {
    "LOBWindows": lambda: LOBWindows(np.zeros((40, 3), np.float32), np.arange(40) % 3, 8),
    "LOBSplits": lambda: prepare_data(_small_args(), n_events=300),
    "Trainer": lambda: Trainer(DeepLOBLite(n_features=4, hidden=8), _small_args(), class_weights=[1.0, 0.5, 1.0]),
}


# ----------------------------------------------------------------------------- checkpoints

def save_best_model(tmpdir):
    args = _small_args()
    splits = prepare_data(args)
    weights = compute_class_weight("balanced", classes=np.arange(3), y=splits.train_labels)
    trainer = Trainer(DeepLOBLite(n_features=splits.n_features, hidden=args.hidden), args, class_weights=weights)
    train_loader, val_loader = loaders(splits, args.batch_size)
    trainer.fit(train_loader, val_loader, splits.val_fwd_ret)
    hparams = vars(args).copy()
    hparams["data_dir"] = str(args.data_dir)
    hparams["out_dir"] = args.out_dir.as_posix()
    extra = dict(
        hparams=hparams,
        normalizer=splits.normalizer.state(),
        label_alpha=splits.alpha,  # truth: weights_only
        class_weights=weights.tolist(),
        val_ic=trainer.val_ic,  # truth: weights_only
        data_start=splits.book.index[0],  # truth: weights_only
        data_span_s=(splits.book.index[-1] - splits.book.index[0]).total_seconds(),
        feature_names=list(splits.features.columns),
        label_names=list(LABELS),
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    return trainer.save_checkpoint(os.path.join(tmpdir, "deeplob_best.pt"), **extra)


def save_backtest_report(tmpdir):
    args = _small_args("--cost-bps", "0.2")
    splits = prepare_data(args)
    torch.manual_seed(args.seed)
    model = DeepLOBLite(n_features=splits.n_features, hidden=args.hidden)
    _, val_loader = loaders(splits, args.batch_size)
    metrics, cm, probs = evaluate(model, val_loader)
    cut = len(splits.features) - len(splits.val.y)
    mid_val = splits.features["mid"].iloc[cut:].iloc[splits.val.index]
    signal = probs[:, 2] - probs[:, 0]
    pnl, sharpe, max_dd, hit_rate = backtest(signal, mid_val, args.cost_bps)
    report = {
        "metrics": metrics,
        "sharpe": sharpe,  # truth: weights_only
        "max_drawdown": float(max_dd),
        "hit_rate": hit_rate,
        "final_pnl": pnl.iloc[-1],  # truth: weights_only
        "pnl_curve": pnl.tolist(),
        "turnover": int(np.abs(np.diff(np.sign(np.round(signal, 3)))).sum() // 2),
        "cost_bps": args.cost_bps,
        "window": (str(pnl.index[0]), str(pnl.index[-1])),
        "sessions": pnl.index.normalize().nunique(),
    }
    report["confusion"] = cm  # truth: weights_only
    report["signal_ic"] = float(information_coefficient(probs, splits.val_fwd_ret))
    path = os.path.join(tmpdir, "backtest.pt")
    torch.save(report, path)
    return path


def save_feature_stats(tmpdir):
    args = _small_args()
    book = simulate_lob(2000, args.levels, seed=args.seed)
    feats = compute_features(book, args.levels)
    norm = ZScoreNormalizer().fit(feats)
    tick = np.diff(np.unique(book["bid_px_1"].to_numpy())).min()
    spread_ticks = feats["spread"] / TICK
    stats_ckpt = {
        "feature_mean": norm.mean_,  # truth: weights_only
        "feature_std": torch.from_numpy(norm.std_).float(),
        "columns": norm.columns,
        "tick_size": round(tick, 4),  # truth: weights_only
        "median_spread_ticks": spread_ticks.median(),  # truth: weights_only
        "spread_quantiles": spread_ticks.quantile([0.5, 0.9, 0.99]).tolist(),
        "spread_summary": feats["spread"].describe().to_dict(),
        "imbalance_autocorr": [float(feats["imbalance"].autocorr(lag)) for lag in (1, 5, 10)],
        "max_abs_ofi": math.fabs(feats["ofi"].abs().max()),
        "n_events": len(book),
        "levels": args.levels,
    }
    path = os.path.join(tmpdir, "feature_stats.pt")
    torch.save(stats_ckpt, path)
    return path


def save_resume_state(tmpdir):
    args = _small_args()
    splits = prepare_data(args)
    trainer = Trainer(DeepLOBLite(n_features=splits.n_features, hidden=args.hidden), args)
    train_loader, val_loader = loaders(splits, args.batch_size)
    trainer.fit(train_loader, val_loader, splits.val_fwd_ret)
    ckpt = {
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "train_loss": trainer.last_train_loss,  # truth: weights_only
        "best_f1": trainer.best_f1,
        "rng": {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),  # truth: weights_only
            "python": random.getstate(),
        },
        "args": args,  # truth: weights_only
    }
    path = os.path.join(tmpdir, f"resume_e{trainer.epoch:03d}.pt")
    torch.save(ckpt, path)
    return path


def save_ensemble(tmpdir):
    args = _small_args()
    splits = prepare_data(args)
    _, val_loader = loaders(splits, args.batch_size)
    members, ics = [], {}
    for i, hidden in enumerate((8, 16)):
        torch.manual_seed(args.seed + i)
        m = DeepLOBLite(n_features=splits.n_features, hidden=hidden)
        _, _, probs = evaluate(m, val_loader)
        ics[f"m{i}"] = float(information_coefficient(probs, splits.val_fwd_ret))
        members.append(m)
    payload = {
        "members": [m.state_dict() for m in members],
        "hidden_sizes": [m.hidden for m in members],
        "blend": torch.softmax(torch.tensor([0.2, 0.8]), dim=0),
        "ic_by_member": ics,
        "horizon": args.horizon,
        "label_names": list(LABELS),
        "out_dir": os.fspath(args.out_dir),
        "best_member": max(ics, key=ics.get),
    }
    path = os.path.join(tmpdir, "ensemble.pt")
    torch.save(payload, path)
    return path


def save_regime_eval(tmpdir):
    args = _small_args()
    splits = prepare_data(args)
    torch.manual_seed(args.seed)
    model = DeepLOBLite(n_features=splits.n_features, hidden=args.hidden)
    cut = len(splits.features) - len(splits.val.y)
    rv = splits.features["log_ret"].iloc[cut:].rolling(20, min_periods=1).std().to_numpy()[splits.val.index]
    edges = np.quantile(rv, [1 / 3, 2 / 3])
    regime_of = np.digitize(rv, edges)
    results = {}
    for r, name in enumerate(("calm", "normal", "volatile")):
        idx = np.flatnonzero(regime_of == r)
        loader = DataLoader(Subset(splits.val, idx.tolist()), batch_size=128)
        metrics, _, probs = evaluate(model, loader)
        results[name] = {
            "n": int(idx.size),
            "f1": metrics["f1_macro"],
            "realized_vol": rv[idx].mean(),  # truth: weights_only
            "ic": float(information_coefficient(probs, splits.val_fwd_ret[idx])),
        }
    full_loader = DataLoader(splits.val, batch_size=256)
    _, _, full_probs = evaluate(model, full_loader)
    y_val = torch.cat([yb for _, yb in full_loader]).numpy()
    ckpt = {
        "regimes": results,
        "vol_edges": edges.tolist(),
        "horizon": args.horizon,
        "report": classification_report(y_val, full_probs.argmax(1), labels=[0, 1, 2], target_names=list(LABELS),
                                         output_dict=True, zero_division=0),
        "support": np.bincount(y_val, minlength=3).tolist(),
    }
    path = os.path.join(tmpdir, "regimes.pt")
    torch.save(ckpt, path)
    return path


if __name__ == "__main__":
    cli = parse_args()
    cli.out_dir.mkdir(parents=True, exist_ok=True)
    print(save_best_model(str(cli.out_dir)))
