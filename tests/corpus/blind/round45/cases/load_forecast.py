"""Day-ahead electricity load forecasting with calendar / holiday features and quantile outputs.

Config lives in YAML (read once with PyYAML for the data-prep step and once with OmegaConf for the
model), the training loop settings in a structured (dataclass) config. Features: hour / weekday /
month cyclic encodings, federal holidays, lagged load and rolling means. The model is a small MLP
with one output per (horizon step, quantile), trained with the pinball loss, and evaluated by a
rolling-origin backtest.
"""
import math
import os
import time
import uuid
from collections import namedtuple
from dataclasses import dataclass, field
from enum import Enum
from typing import List

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml
from omegaconf import OmegaConf
from pandas.tseries.holiday import USFederalHolidayCalendar
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_pinball_loss
from sklearn.preprocessing import StandardScaler

CONFIG_YAML = """
data:
  start: 2022-10-01
  days: 120
  freq: h
  tz: America/New_York
  peak_start: 17:00
split:
  train_end: 2023-01-15
  val_days: 14
features:
  lags: [1, 2, 24, 168]
  rolling: [24, 168]
  calendar: [hour, dayofweek, month, is_holiday, is_weekend]
model:
  hidden: 32
  dropout: 0.1
  horizon: 24
  quantiles: [0.1, 0.5, 0.9]
optim:
  lr: 1e-3
  weight_decay: 1.0e-4
  epochs: 2
  batch_size: 128
"""

Forecast = namedtuple("Forecast", ["issued", "horizon", "quantiles", "values"])


class Scaling(Enum):
    STANDARD = "standard"
    MINMAX = "minmax"
    NONE = "none"


@dataclass
class TrainConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 2
    batch_size: int = 128
    scaling: Scaling = Scaling.STANDARD
    quantiles: List[float] = field(default_factory=lambda: [0.1, 0.5, 0.9])
    clip_grad: float = 1.0


def load_config(text=CONFIG_YAML):
    return yaml.safe_load(text), OmegaConf.create(text)


def make_load_series(cfg):
    """Synthetic hourly system load (MW): daily + weekly cycle, temperature, holiday dips."""
    idx = pd.date_range(cfg.data.start, periods=24 * cfg.data.days, freq=cfg.data.freq, tz=cfg.data.tz)
    rng = np.random.default_rng(7)
    hour, dow = idx.hour.to_numpy(), idx.dayofweek.to_numpy()
    temp = 5 + 8 * np.sin(2 * np.pi * (idx.dayofyear.to_numpy() - 30) / 365) + rng.normal(0, 2, len(idx))
    load = (900 + 250 * np.sin(2 * np.pi * (hour - 7) / 24) - 120 * (dow >= 5)
            + 6 * np.abs(temp - 15) + rng.normal(0, 25, len(idx)))
    hol = holiday_index(idx)
    load[np.isin(idx.normalize().tz_localize(None), hol)] -= 150
    return pd.DataFrame({"load": load, "temp": temp}, index=idx)


def holiday_index(idx):
    return USFederalHolidayCalendar().holidays(idx.min().tz_localize(None), idx.max().tz_localize(None))


def calendar_features(idx, holidays):
    naive_days = idx.normalize().tz_localize(None)
    feats = pd.DataFrame(index=idx)
    feats["hour_sin"] = np.sin(2 * np.pi * idx.hour / 24)
    feats["hour_cos"] = np.cos(2 * np.pi * idx.hour / 24)
    feats["dow_sin"] = np.sin(2 * np.pi * idx.dayofweek / 7)
    feats["dow_cos"] = np.cos(2 * np.pi * idx.dayofweek / 7)
    feats["month"] = idx.month / 12.0
    feats["is_weekend"] = (idx.dayofweek >= 5).astype("float32")
    feats["is_holiday"] = naive_days.isin(holidays).astype("float32")
    feats["bridge_day"] = (naive_days + pd.Timedelta(days=1)).isin(holidays).astype("float32")
    return feats


def add_lags(frame, lags, rolling):
    out = frame.copy()
    for lag in lags:
        out[f"load_lag_{lag}"] = frame["load"].shift(lag)
    for w in rolling:
        out[f"load_roll_{w}"] = frame["load"].shift(1).rolling(w).mean()
    return out.dropna()


def build_design(cfg):
    frame = make_load_series(cfg)
    hol = holiday_index(frame.index)
    data = add_lags(frame, list(cfg.features.lags), list(cfg.features.rolling)).join(calendar_features(frame.index, hol))
    X = data.drop(columns=["load"])
    y = data["load"]
    return frame, X, y, hol


def make_windows(X, y, horizon):
    xs, ys = [], []
    for t in range(0, len(X) - horizon, horizon):
        xs.append(X[t])
        ys.append(y[t:t + horizon])
    return torch.tensor(np.stack(xs), dtype=torch.float32), torch.tensor(np.stack(ys), dtype=torch.float32)


class QuantileLoss(nn.Module):
    def __init__(self, quantiles=(0.1, 0.5, 0.9)):
        super().__init__()
        self.register_buffer("q", torch.tensor(list(quantiles), dtype=torch.float32))

    def forward(self, pred, target):  # pred: (B, H, Q), target: (B, H)
        err = target.unsqueeze(-1) - pred
        return torch.maximum(self.q * err, (self.q - 1) * err).mean()


class MLPForecaster(nn.Module):
    def __init__(self, n_features=20, horizon=24, n_quantiles=3, hidden=32, dropout=0.1):
        super().__init__()
        self.horizon, self.n_quantiles = horizon, n_quantiles
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, horizon * n_quantiles))

    def forward(self, x):
        return self.net(x).view(-1, self.horizon, self.n_quantiles)


def fit(cfg, X, y, tcfg=None):
    tcfg = tcfg or TrainConfig()
    torch.manual_seed(0)
    xs, ys = make_windows(X, y, cfg.model.horizon)
    model = MLPForecaster(xs.shape[1], cfg.model.horizon, len(cfg.model.quantiles), cfg.model.hidden)
    crit = QuantileLoss(cfg.model.quantiles)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    losses = []
    for _ in range(tcfg.epochs):
        for i in range(0, len(xs), 32):
            loss = crit(model(xs[i:i + 32]), ys[i:i + 32])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.clip_grad)
            opt.step()
            losses.append(loss.item())
    return model, opt, crit, losses


def prepare(cfg, raw):
    frame, X, y, hol = build_design(cfg)
    cutoff = pd.Timestamp(raw["split"]["train_end"], tz=cfg.data.tz)
    x_scaler = StandardScaler().fit(X[X.index <= cutoff])
    y_mean, y_std = y[y.index <= cutoff].mean(), y[y.index <= cutoff].std()
    Xs = x_scaler.transform(X)
    ys = ((y - y_mean) / y_std).to_numpy()
    return frame, X, y, hol, cutoff, x_scaler, Xs, ys, y_mean, y_std


def rolling_origins(index, cutoff, n_folds, step_days):
    for k in range(n_folds):
        c = cutoff + pd.Timedelta(days=k * step_days)
        yield k, c, index <= c, (index > c) & (index <= c + pd.Timedelta(days=step_days))


def save_forecaster(tmpdir):
    raw, cfg = load_config()
    frame, X, y, hol, cutoff, x_scaler, Xs, ys, y_mean, y_std = prepare(cfg, raw)
    train = X.index <= cutoff
    model, opt, crit, losses = fit(cfg, Xs[train], ys[train])
    ckpt = {"model_state": model.state_dict(), "optimizer_state": opt.state_dict()}
    ckpt["quantiles"] = cfg.model.quantiles  # truth: weights_only
    ckpt["lags"] = list(cfg.features.lags)
    ckpt["feature_names"] = list(X.columns)
    ckpt["x_scaler"] = {"mean": x_scaler.mean_.tolist(), "scale": x_scaler.scale_.tolist(),
                        "n_seen": int(x_scaler.n_samples_seen_)}
    ckpt["target_mean"] = float(y_mean)
    ckpt["target_std"] = y_std.item()
    ckpt["train_end"] = raw["split"]["train_end"]  # truth: weights_only
    ckpt["lr"] = raw["optim"]["lr"]
    ckpt["peak_start"] = raw["data"]["peak_start"]
    ckpt["final_loss"] = losses[-1]
    ckpt["n_windows"] = len(losses)
    path = os.path.join(tmpdir, "forecaster.pt")
    torch.save(ckpt, path)
    return path


def save_feature_pipeline(tmpdir):
    raw, cfg = load_config()
    frame, X, y, hol = build_design(cfg)
    pipeline = {
        "holidays": hol,  # truth: weights_only
        "holiday_dates": hol.strftime("%Y-%m-%d").tolist(),
        "freq": frame.index.freq,  # truth: weights_only
        "freqstr": frame.index.freqstr,
        "inferred_freq": pd.infer_freq(frame.index[:48]),
        "tz_name": str(frame.index.tz),
        "calendar_columns": [c for c in X.columns if not c.startswith("load_")],
        "lag_columns": [c for c in X.columns if c.startswith("load_lag")],
        "horizon": pd.Timedelta(hours=cfg.model.horizon),  # truth: weights_only
        "horizon_hours": pd.Timedelta(hours=cfg.model.horizon).total_seconds() / 3600,
        "column_dtypes": X.dtypes.astype(str).to_dict(),
        "history_start": str(frame.index[0]),
        "last_observed": frame.index[-1].isoformat(),
        "holiday_share": float(X["is_holiday"].mean()),
        "max_lag": max(cfg.features.lags),
        "load_profile": frame.groupby(frame.index.hour)["load"].mean().round(1).to_dict(),
    }
    path = os.path.join(tmpdir, "feature_pipeline.pt")
    torch.save(pipeline, path)
    return path


def save_backtest(tmpdir):
    raw, cfg = load_config()
    frame, X, y, hol, cutoff, x_scaler, Xs, ys, y_mean, y_std = prepare(cfg, raw)
    qs = list(cfg.model.quantiles)
    folds, maes = {}, []
    for k, c, train, test in rolling_origins(X.index, cutoff, n_folds=2, step_days=7):
        model, _, _, _ = fit(cfg, Xs[train], ys[train], TrainConfig(epochs=1))
        xt, yt = make_windows(Xs[test], ys[test], cfg.model.horizon)
        with torch.no_grad():
            pred = model(xt).numpy() * float(y_std) + float(y_mean)
        truth = yt.numpy() * float(y_std) + float(y_mean)
        lo, med, hi = pred[..., 0].ravel(), pred[..., 1].ravel(), pred[..., 2].ravel()
        flat = truth.ravel()
        maes.append(mean_absolute_error(flat, med))
        folds[f"fold_{k}"] = {
            "cutoff": c.isoformat(),
            "pinball": {f"q{int(q * 100)}": mean_pinball_loss(flat, pred[..., i].ravel(), alpha=q)
                        for i, q in enumerate(qs)},
            "coverage_80": ((flat >= lo) & (flat <= hi)).mean(),  # truth: weights_only
            "mae": maes[-1],
            "mape": mean_absolute_percentage_error(flat, med),
            "n_points": int(flat.size),
            "crossing_rate": float((lo > hi).mean()),
        }
    summary = {
        "folds": folds,
        "mean_mae": sum(maes) / len(maes),
        "worst_fold": int(np.argmax(maes)),
        "horizon": cfg.model.horizon,
        "quantiles": qs,
        "step_days": 7,
    }
    path = os.path.join(tmpdir, "backtest.pt")
    torch.save(summary, path)
    return path


def save_run_config(tmpdir):
    raw, cfg = load_config()
    tcfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), {"lr": 3e-4, "epochs": 5})
    ckpt = {}
    ckpt["config"] = OmegaConf.to_container(cfg, resolve=True)
    ckpt["train_config"] = OmegaConf.to_container(tcfg, enum_to_str=True)
    ckpt["scaling"] = tcfg.scaling  # truth: weights_only
    ckpt["model_config"] = OmegaConf.to_container(cfg.model)
    ckpt["yaml"] = OmegaConf.to_yaml(cfg)
    ckpt["run_id"] = uuid.uuid4().hex
    ckpt["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    ckpt["split"] = {"train_end": str(raw["split"]["train_end"]), "val_days": raw["split"]["val_days"]}
    path = os.path.join(tmpdir, "run_config.pt")
    torch.save(ckpt, path)
    return path


def save_latest_forecast(tmpdir):
    raw, cfg = load_config()
    frame, X, y, hol, cutoff, x_scaler, Xs, ys, y_mean, y_std = prepare(cfg, raw)
    model, _, _, _ = fit(cfg, Xs[:500], ys[:500], TrainConfig(epochs=1))
    with torch.no_grad():
        pred = model(torch.tensor(Xs[-1:], dtype=torch.float32))[0] * float(y_std) + float(y_mean)
    fc = Forecast(issued=X.index[-1].isoformat(), horizon=cfg.model.horizon,
                  quantiles=tuple(cfg.model.quantiles), values=pred)
    path = os.path.join(tmpdir, "latest_forecast.pt")
    torch.save(fc, path)  # truth: weights_only
    return path


def save_quantile_head(tmpdir):
    raw, cfg = load_config()
    model = MLPForecaster(n_features=21, horizon=cfg.model.horizon, n_quantiles=len(cfg.model.quantiles))
    crit = QuantileLoss(cfg.model.quantiles)
    state = {"model": model.state_dict(), "loss": crit.state_dict()}
    state["meta"] = {"horizon": cfg.model.horizon, "quantiles": crit.q.tolist(),
                     "n_params": sum(p.numel() for p in model.parameters()),
                     "log_scale": math.log(cfg.model.hidden)}
    path = os.path.join(tmpdir, "quantile_head.pt")
    torch.save(state, path)
    return path


FACTORIES = {
    "Scaling": lambda: Scaling.STANDARD,
    "QuantileLoss": lambda: QuantileLoss(load_config()[1].model.quantiles),
}
