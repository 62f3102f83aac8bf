"""LSTM autoencoder for multivariate sensor anomaly detection (SMD / SWaT style windows).

Train: python sensor_anomaly.py --epochs 20 --window 64 --out runs/ae
"""
import argparse
import os
import statistics
import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score
from sklearn.preprocessing import StandardScaler

N_SENSORS = 4
WINDOW = 8


@dataclass
class AnomalyConfig:
    n_sensors: int = N_SENSORS
    window: int = WINDOW
    hidden: int = 8
    lr: float = 1e-3
    threshold_quantile: float = 0.95
    patience: int = 3
    run_dir: str = "runs/ae"


class LSTMAutoencoder(nn.Module):
    def __init__(self, n_sensors=N_SENSORS, hidden=8):
        super().__init__()
        self.encoder = nn.LSTM(n_sensors, hidden, batch_first=True)
        self.decoder = nn.Linear(hidden, n_sensors)

    def forward(self, x):
        h, _ = self.encoder(x)
        return self.decoder(h)


def make_sensor_frame(n=64, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    df = pd.DataFrame({f"s{i}": np.sin(t / (3 + i)) + 0.1 * rng.standard_normal(n) for i in range(N_SENSORS)})
    df["label"] = 0
    df.loc[50:53, "s1"] += 3.0
    df.loc[50:53, "label"] = 1
    df["timestamp"] = pd.date_range("2024-01-01", periods=n, freq="min")
    return df


def sliding_windows(x, window=WINDOW):
    return np.stack([x[i:i + window] for i in range(len(x) - window + 1)]).astype("float32")


def reconstruction_errors(model, windows):
    with torch.no_grad():
        xb = torch.from_numpy(windows)
        err = (model(xb) - xb).pow(2).mean(dim=(1, 2))
    return err.numpy()


def fit_threshold(errors, q):
    return np.quantile(errors, q)


def point_adjust(preds, labels):
    """Point-adjust protocol: a detected point inside an anomaly segment marks the whole segment."""
    preds = preds.copy()
    in_seg, start = False, 0
    for i, y in enumerate(list(labels) + [0]):
        if y and not in_seg:
            in_seg, start = True, i
        elif not y and in_seg:
            in_seg = False
            if preds[start:i].any():
                preds[start:i] = 1
    return preds


class AnomalyTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or AnomalyConfig()
        torch.manual_seed(0)
        self.model = LSTMAutoencoder(self.cfg.n_sensors, self.cfg.hidden)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, patience=2)
        self.scaler = StandardScaler()
        self.epoch = 0
        self.best_loss = float("inf")
        self.bad_epochs = 0
        self.loss_history = []
        self.recent = deque(maxlen=5)
        self.threshold = None
        self.errors = None

    def fit(self, df, epochs=2):
        cols = [f"s{i}" for i in range(self.cfg.n_sensors)]
        values = self.scaler.fit_transform(df[cols].values)
        windows = sliding_windows(values, self.cfg.window)
        xb = torch.from_numpy(windows)
        for _ in range(epochs):
            self.optimizer.zero_grad()
            loss = (self.model(xb) - xb).pow(2).mean()
            loss.backward()
            self.optimizer.step()
            self.scheduler.step(loss.item())
            self.loss_history.append(loss.item())
            self.recent.append(loss.item())
            if loss.item() < self.best_loss:
                self.best_loss, self.bad_epochs = loss.item(), 0
            else:
                self.bad_epochs += 1
            self.epoch += 1
        self.errors = reconstruction_errors(self.model, windows)
        self.threshold = fit_threshold(self.errors, self.cfg.threshold_quantile)
        self.labels = df["label"].values[self.cfg.window - 1:]
        return self.errors

    def state(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
        }

    def save_checkpoint(self, path, extra=None):
        ckpt = self.state()
        if extra:
            ckpt.update(extra)
        torch.save(ckpt, path)
        return path


def parse_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--window", type=int, default=WINDOW)
    p.add_argument("--hidden", type=int, default=8)
    p.add_argument("--out", default="runs/ae")
    p.add_argument("--quantile", type=float, default=0.95)
    return p.parse_args(argv)


def save_threshold_checkpoint(tmpdir):
    trainer = AnomalyTrainer()
    trainer.fit(make_sensor_frame())
    preds = (trainer.errors > trainer.threshold).astype(int)
    path = os.path.join(tmpdir, "ae_last.pt")
    return trainer.save_checkpoint(path, {
        "threshold": trainer.threshold,  # truth: weights_only
        "threshold_float": float(trainer.threshold),
        "f1": f1_score(trainer.labels, preds, zero_division=0),
        "n_flagged": int(preds.sum()),
        "config": asdict(trainer.cfg),
        "best_loss": trainer.best_loss,
        "bad_epochs": trainer.bad_epochs,
    })


def save_scaler_checkpoint(tmpdir):
    trainer = AnomalyTrainer()
    trainer.fit(make_sensor_frame())
    ckpt = trainer.state()
    ckpt["scaler"] = trainer.scaler  # truth: weights_only
    ckpt["scaler_mean"] = trainer.scaler.mean_.tolist()
    ckpt["scaler_scale"] = torch.from_numpy(trainer.scaler.scale_)
    ckpt["sensor_std"] = trainer.scaler.scale_.max()  # truth: weights_only
    ckpt["loss_history"] = trainer.loss_history
    ckpt["recent_losses"] = list(trainer.recent)
    ckpt["recent_mean"] = statistics.mean(trainer.recent)
    path = os.path.join(tmpdir, "ae_scaler.pt")
    torch.save(ckpt, path)
    return path


def save_cli_run(tmpdir):
    args = parse_args(["--epochs", "1", "--out", tmpdir])
    cfg = AnomalyConfig(window=args.window, hidden=args.hidden, threshold_quantile=args.quantile,
                        run_dir=str(args.out))
    trainer = AnomalyTrainer(cfg)
    trainer.fit(make_sensor_frame(), epochs=args.epochs)
    started = datetime.now(timezone.utc)
    meta = dict(
        args=args,  # truth: weights_only
        hparams=vars(args),
        out_dir=Path(args.out),  # truth: weights_only
        run_dir=str(args.out),
        started=started.isoformat(),
        wall=time.time(),
    )
    path = Path(args.out) / "ae_cli.pt"
    torch.save({"state": trainer.state(), "meta": meta}, path)
    return str(path)


def save_eval_report(tmpdir):
    trainer = AnomalyTrainer()
    trainer.fit(make_sensor_frame())
    raw = (trainer.errors > trainer.threshold).astype(int)
    adjusted = point_adjust(raw, trainer.labels)
    p, r, f, _ = precision_recall_fscore_support(trainer.labels, adjusted, average="binary", zero_division=0)
    report = {}
    report["auc"] = roc_auc_score(trainer.labels, trainer.errors)
    report["precision"] = p
    report["recall"] = float(r)
    report["f1_pa"] = f
    report["errors"] = torch.as_tensor(trainer.errors)
    report["segments"] = defaultdict(list)  # truth: weights_only
    path = os.path.join(tmpdir, "ae_eval.pt")
    torch.save({"model": trainer.model.state_dict(), "report": report}, path)
    return path


def save_per_sensor_stats(tmpdir):
    df = make_sensor_frame()
    stats = {}
    for col in [c for c in df.columns if c.startswith("s")]:
        stats[col] = float(df[col].std())
    by_label = df.groupby("label")["s1"].mean().to_dict()
    state = {
        "sensor_std": stats,
        "s1_by_label": by_label,
        "n_rows": len(df),
        "anomaly_rate": df["label"].mean(),  # truth: weights_only
        "first_ts": str(df["timestamp"].iloc[0]),
        "last_ts": df["timestamp"].iloc[-1],  # truth: weights_only
    }
    path = os.path.join(tmpdir, "sensor_stats.pt")
    torch.save(state, path)
    return path


def save_weights_only(tmpdir):
    """Clean export for deployment: tensors and plain numbers only."""
    trainer = AnomalyTrainer()
    trainer.fit(make_sensor_frame())
    path = Path(tmpdir) / "ae_deploy.pt"
    torch.save({
        "model": trainer.model.state_dict(),
        "threshold": trainer.threshold.item(),
        "window": trainer.cfg.window,
        "mean": torch.tensor(trainer.scaler.mean_, dtype=torch.float32),
        "scale": trainer.scaler.scale_.tolist(),
        "quantile": trainer.cfg.threshold_quantile,
        "epoch": trainer.epoch,
    }, path)
    return str(path)


if __name__ == "__main__":
    a = parse_args()
    tr = AnomalyTrainer(AnomalyConfig(window=a.window, hidden=a.hidden, run_dir=str(a.out)))
    tr.fit(make_sensor_frame(), epochs=a.epochs)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    tr.save_checkpoint(Path(a.out) / "last.pt")
