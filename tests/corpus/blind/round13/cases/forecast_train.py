"""Sliding-window forecaster (N-BEATS-ish MLP) trained on an hourly load series."""
import argparse
import datetime as dt
import enum
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from torch import nn


class Frequency(str, enum.Enum):
    HOURLY = "h"
    DAILY = "D"


class ScalerKind(enum.Enum):
    STANDARD = "standard"
    MINMAX = "minmax"


NOT_BUILT = {"Frequency": "an Enum: its members are built by value", "ScalerKind": "an Enum: its members are built by value"}


@dataclass
class WindowConfig:
    input_size: int = 24
    horizon: int = 6
    stride: int = 1
    freq: str = "h"


@dataclass
class ForecastConfig:
    window: WindowConfig = field(default_factory=WindowConfig)
    scaler: ScalerKind = ScalerKind.STANDARD
    lr: float = 1e-3
    output_dir: Path = Path("runs/forecast")


def make_series(n=200, freq="h"):
    idx = pd.date_range("2023-01-01", periods=n, freq=freq)
    t = np.arange(n)
    values = 10 + np.sin(2 * np.pi * t / 24) + 0.1 * np.random.default_rng(0).normal(size=n)
    return pd.DataFrame({"load": values}, index=idx)


def make_windows(values, input_size, horizon):
    xs, ys = [], []
    for i in range(len(values) - input_size - horizon + 1):
        xs.append(values[i:i + input_size])
        ys.append(values[i + input_size:i + input_size + horizon])
    return np.stack(xs).astype("float32"), np.stack(ys).astype("float32")


def mape(y_true, y_pred):
    return np.mean(np.abs((y_true - y_pred) / y_true)) * 100


class MLPForecaster(nn.Module):
    def __init__(self, input_size=24, horizon=6, hidden=16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_size, hidden), nn.ReLU(), nn.Linear(hidden, horizon))

    def forward(self, x):
        return self.net(x)


def fit_scaler(kind, train_values):
    scaler = StandardScaler() if kind is ScalerKind.STANDARD else MinMaxScaler()
    return scaler.fit(train_values.reshape(-1, 1))


def train_split(df, val_fraction=0.2):
    cut = int(len(df) * (1 - val_fraction))
    return df.iloc[:cut], df.iloc[cut:]


def save_forecaster(tmpdir):
    cfg = ForecastConfig()
    df = make_series()
    train_df, val_df = train_split(df)
    scaler = fit_scaler(cfg.scaler, train_df["load"].to_numpy())
    model = MLPForecaster(cfg.window.input_size, cfg.window.horizon)
    x, y = make_windows(scaler.transform(val_df[["load"]]).ravel(), cfg.window.input_size, cfg.window.horizon)
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).numpy()
    window_mapes = [mape(y[i], pred[i]) for i in range(len(y))]
    checkpoint = {
        "model_state_dict": model.state_dict(),
        "scaler": scaler,  # truth: weights_only
        "scaler_mean": scaler.mean_.tolist(),
        "scaler_scale": torch.from_numpy(scaler.scale_),
        "window": asdict(cfg.window),
        "last_train_timestamp": train_df.index[-1],  # truth: weights_only
        "val_start": str(val_df.index[0]),
        "val_mape": mape(y, pred),  # truth: weights_only
        "median_window_mape": statistics.median(window_mapes),  # truth: weights_only
        "worst_window_mape": max(float(m) for m in window_mapes),
    }
    path = os.path.join(tmpdir, "forecaster.pt")
    torch.save(checkpoint, path)
    return path


def save_forecaster_portable(tmpdir):
    cfg = ForecastConfig(window=WindowConfig(input_size=12, horizon=3))
    df = make_series(120)
    train_df, _ = train_split(df)
    scaler = fit_scaler(cfg.scaler, train_df["load"].to_numpy())
    model = MLPForecaster(12, 3)
    window = asdict(cfg.window)
    checkpoint = {
        "model_state_dict": model.state_dict(),
        "scaler_params": {"mean": float(scaler.mean_[0]), "scale": float(scaler.scale_[0])},
        "window": window,
        "scaler_kind": cfg.scaler.value,
        "last_train_timestamp": train_df.index[-1].isoformat(),
        "last_train_unix": train_df.index[-1].timestamp(),
        "freq": pd.infer_freq(train_df.index),
        "output_dir": str(cfg.output_dir),
        "n_train": len(train_df),
        "trained_at": time.time(),
    }
    path = os.path.join(tmpdir, "forecaster_portable.pt")
    torch.save(checkpoint, path)
    return path


def save_config_snapshot(tmpdir):
    cfg = ForecastConfig(window=WindowConfig(freq=Frequency.HOURLY))
    df = make_series(48)
    step = df.index[1] - df.index[0]
    ckpt = {}
    ckpt["config"] = cfg  # truth: weights_only
    ckpt["window"] = asdict(WindowConfig(horizon=cfg.window.horizon))
    ckpt["freq"] = cfg.window.freq  # truth: weights_only
    ckpt["scaler_kind"] = cfg.scaler  # truth: weights_only
    ckpt["step"] = step  # truth: weights_only
    ckpt["step_seconds"] = step.total_seconds()
    ckpt["horizon_delta"] = dt.timedelta(hours=cfg.window.horizon)  # truth: weights_only
    ckpt["horizon_hours"] = cfg.window.horizon
    ckpt["freq_name"] = Frequency.HOURLY.name
    path = os.path.join(tmpdir, "config_snapshot.pt")
    torch.save(ckpt, path)
    return path


class ForecastTrainer:
    def __init__(self, input_size=24, horizon=6, patience=3):
        self.model = MLPForecaster(input_size, horizon)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=1e-4)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, patience=1)
        self.scaler = StandardScaler()
        self.patience = patience
        self.bad_epochs = 0
        self.best_val = float("inf")
        self.val_history = []
        self.last_train_time = None
        self.started = dt.datetime.now()

    def fit_epoch(self, df):
        values = self.scaler.fit_transform(df[["load"]]).ravel()
        x, y = make_windows(values, 24, 6)
        loss = nn.functional.mse_loss(self.model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        val = df["load"].iloc[-24:].std()
        self.scheduler.step(val)
        self.val_history.append(val)
        if val < self.best_val:
            self.best_val, self.bad_epochs = val, 0
        else:
            self.bad_epochs += 1
        self.last_train_time = df.index.max()
        return loss.item()


def save_early_stopping_state(tmpdir):
    trainer = ForecastTrainer()
    df = make_series(96)
    losses = [trainer.fit_epoch(df) for _ in range(2)]
    state = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "early_stopping": {
            "best_val": trainer.best_val,  # truth: weights_only
            "bad_epochs": trainer.bad_epochs,
            "patience": trainer.patience,
        },
        "val_history": [float(v) for v in trainer.val_history],
        "mean_train_loss": statistics.mean(losses),
        "last_train_time": trainer.last_train_time,  # truth: weights_only
        "started": trainer.started,  # truth: weights_only
        "elapsed": (dt.datetime.now() - trainer.started).total_seconds(),
    }
    path = os.path.join(tmpdir, "early_stop.pt")
    torch.save(state, path)
    return path


def parse_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=Path("data/load.csv"))
    p.add_argument("--input-size", type=int, default=24)
    p.add_argument("--horizon", type=int, default=6)
    p.add_argument("--lr", type=float, default=1e-3)
    return p.parse_args(argv)


def save_with_args(tmpdir):
    args = parse_args([])
    model = MLPForecaster(args.input_size, args.horizon)
    df = make_series(72)
    y = df["load"].to_numpy()[-6:]
    naive = df["load"].to_numpy()[-12:-6]
    run_meta = {
        "args": args,  # truth: weights_only
        "naive_mape": float(mape(y, naive)),
        "output_dir": Path("runs") / "forecast",  # truth: weights_only
    }
    ckpt = {"model": model.state_dict(), "input_size": args.input_size, "horizon": args.horizon}
    ckpt.update(run_meta)
    ckpt["data_file"] = args.data.name
    ckpt["series_quantiles"] = np.quantile(y, [0.1, 0.5, 0.9]).tolist()
    path = os.path.join(tmpdir, "with_args.pt")
    torch.save(ckpt, path)
    return path
