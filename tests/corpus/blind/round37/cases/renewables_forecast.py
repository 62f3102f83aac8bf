"""Probabilistic day-ahead forecasting for a wind farm and a PV plant.

SCADA frames come in at 10-minute resolution and are resampled to hourly.  The model emits one
output per quantile and is trained with the pinball loss; validation is a rolling-origin backtest.
Calendar features use the pandas US federal holiday calendar (the farm's grid operator follows it).
"""
import dataclasses
import datetime as dt
import enum
import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from pandas.tseries.frequencies import to_offset
from pandas.tseries.holiday import USFederalHolidayCalendar
from sklearn.metrics import mean_pinball_loss
from sklearn.model_selection import TimeSeriesSplit

QUANTILES = (0.1, 0.5, 0.9)
FEATURES = ["wind_speed", "wind_dir_sin", "wind_dir_cos", "irradiance", "temp", "hour_sin", "hour_cos", "is_holiday"]


class Season(enum.Enum):
    WINTER = "DJF"
    SPRING = "MAM"
    SUMMER = "JJA"
    AUTUMN = "SON"


def season_of(ts):
    return [Season.WINTER, Season.WINTER, Season.SPRING, Season.SPRING, Season.SPRING, Season.SUMMER,
            Season.SUMMER, Season.SUMMER, Season.AUTUMN, Season.AUTUMN, Season.AUTUMN, Season.WINTER][ts.month - 1]


@dataclass
class ForecastConfig:
    site: str = "north_ridge"
    data_dir: Path = Path("/data/scada/north_ridge")
    resample: str = "1h"
    horizon_hours: int = 24
    quantiles: tuple = QUANTILES
    hidden: int = 32
    lr: float = 2e-3
    epochs: int = 5
    capacity_mw: float = 48.0


# ----------------------------------------------------------------------------- data

def load_scada(days=21, seed=0, start="2023-12-01"):
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=days * 144, freq="10min")
    ws = np.clip(8 + 3 * np.sin(np.arange(len(idx)) / 300) + rng.normal(0, 1.5, len(idx)), 0, None)
    wd = rng.uniform(0, 2 * np.pi, len(idx))
    irr = np.clip(np.sin((idx.hour + idx.minute / 60 - 6) / 12 * np.pi), 0, None) * 800
    power = np.clip(48 * (ws / 13) ** 3, 0, 48) + irr / 200 + rng.normal(0, 0.5, len(idx))
    return pd.DataFrame({"wind_speed": ws, "wind_dir_sin": np.sin(wd), "wind_dir_cos": np.cos(wd),
                         "irradiance": irr, "temp": rng.normal(4, 3, len(idx)), "power": power}, index=idx)


class CalendarFeatures:
    def __init__(self, start="2023-01-01", end="2024-12-31"):
        self.calendar = USFederalHolidayCalendar()
        self.holidays = self.calendar.holidays(start=start, end=end)

    def transform(self, df):
        out = df.copy()
        out["hour_sin"] = np.sin(2 * np.pi * out.index.hour / 24)
        out["hour_cos"] = np.cos(2 * np.pi * out.index.hour / 24)
        out["is_holiday"] = out.index.normalize().isin(self.holidays).astype(np.float32)
        return out


def resample_hourly(df, rule="1h"):
    agg = {c: "mean" for c in df.columns}
    agg["power"] = "mean"
    hourly = df.resample(rule).agg(agg)
    return hourly.interpolate(limit=2).dropna()


def make_windows(frame, horizon=24):
    X = frame[FEATURES].to_numpy(np.float32)
    y = frame["power"].to_numpy(np.float32)
    return X[:-horizon], y[horizon:]


def pinball(y, q_pred, q):
    diff = y - q_pred
    return np.mean(np.maximum(q * diff, (q - 1) * diff))


# ----------------------------------------------------------------------------- model

class QuantileMLP(nn.Module):
    def __init__(self, n_in=len(FEATURES), hidden=32, quantiles=QUANTILES):
        super().__init__()
        self.register_buffer("q", torch.tensor(quantiles))
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, len(quantiles)))

    def forward(self, x):
        out = self.body(x)
        return torch.cat([out[:, :1], out[:, :1] + torch.cumsum(nn.functional.softplus(out[:, 1:]), 1)], 1)

    def loss(self, pred, y):
        diff = y[:, None] - pred
        return torch.maximum(self.q * diff, (self.q - 1) * diff).mean()


class PlateauStopper:
    def __init__(self, patience=3):
        self.patience = patience
        self.best = float("inf")
        self.wait = 0

    def __call__(self, val):
        if val < self.best:
            self.best, self.wait = val, 0
            return False
        self.wait += 1
        return self.wait >= self.patience

    def state_dict(self):
        return dict(best=self.best, wait=self.wait, patience=self.patience)


class ForecastTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or ForecastConfig()
        self.model = QuantileMLP(hidden=self.cfg.hidden, quantiles=self.cfg.quantiles)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=2, gamma=0.5)
        self.stopper = PlateauStopper()
        self.rng = np.random.default_rng(0)
        self.val_losses = []
        self.best_val = float("inf")
        self.best_pinball = None
        self.started = dt.datetime.now()
        self.elapsed = dt.timedelta(0)

    def fit(self, X, y, X_val, y_val):
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        for epoch in range(self.cfg.epochs):
            perm = torch.from_numpy(self.rng.permutation(len(Xt)))
            for chunk in perm.split(64):
                self.optimizer.zero_grad()
                loss = self.model.loss(self.model(Xt[chunk]), yt[chunk])
                loss.backward()
                self.optimizer.step()
            self.scheduler.step()
            metrics = self.evaluate(X_val, y_val)
            self.val_losses.append(metrics["mean_pinball"])
            if metrics["mean_pinball"] < self.best_val:
                self.best_val = metrics["mean_pinball"]
                self.best_pinball = np.mean([metrics[f"pinball_q{int(q * 100)}"] for q in self.cfg.quantiles])
            if self.stopper(metrics["mean_pinball"]):
                break
        self.elapsed = dt.datetime.now() - self.started
        return self

    @torch.no_grad()
    def predict(self, X):
        return self.model(torch.from_numpy(X)).numpy()

    def evaluate(self, X, y):
        pred = self.predict(X)
        out = {}
        for j, q in enumerate(self.cfg.quantiles):
            out[f"pinball_q{int(q * 100)}"] = float(pinball(y, pred[:, j], q))
        out["mean_pinball"] = sum(out.values()) / len(out)
        out["coverage_80"] = np.mean((y >= pred[:, 0]) & (y <= pred[:, -1]))
        out["sharpness"] = float(np.mean(pred[:, -1] - pred[:, 0]))
        out["crps_approx"] = 2 * out["mean_pinball"]
        return out


def build_frame(days=21, seed=0):
    cal = CalendarFeatures()
    frame = cal.transform(resample_hourly(load_scada(days=days, seed=seed)))
    return frame, cal


# ----------------------------------------------------------------------------- checkpoints

def save_quantile_model(tmpdir):
    cfg = ForecastConfig(epochs=3)
    frame, _ = build_frame()
    X, y = make_windows(frame, cfg.horizon_hours)
    cut = int(0.8 * len(X))
    trainer = ForecastTrainer(cfg).fit(X[:cut], y[:cut], X[cut:], y[cut:])
    metrics = trainer.evaluate(X[cut:], y[cut:])
    pred = trainer.predict(X[cut:])
    losses = [pinball(y[cut:], pred[:, j], q) for j, q in enumerate(cfg.quantiles)]

    ckpt = {"model": trainer.model.state_dict(), "quantiles": cfg.quantiles}
    ckpt["pinball"] = {f"q{int(q * 100)}": float(l) for q, l in zip(cfg.quantiles, losses)}
    ckpt["pinball_series"] = pd.Series(losses, index=list(cfg.quantiles))  # truth: weights_only
    ckpt["sklearn_pinball_median"] = mean_pinball_loss(y[cut:], pred[:, 1], alpha=0.5)
    ckpt["best_val"] = trainer.best_val
    ckpt["best_pinball"] = trainer.best_pinball  # truth: weights_only
    ckpt["coverage_80"] = float(metrics["coverage_80"])
    ckpt["sharpness"] = metrics["sharpness"]
    ckpt["crps_approx"] = metrics["crps_approx"]
    ckpt["train_end"] = frame.index[cut]  # truth: weights_only
    ckpt["train_end_iso"] = frame.index[cut].isoformat()
    ckpt["freq"] = pd.infer_freq(frame.index[:48])
    ckpt["horizon"] = pd.Timedelta(hours=cfg.horizon_hours)  # truth: weights_only
    ckpt["horizon_steps"] = int(pd.Timedelta(hours=cfg.horizon_hours) / pd.Timedelta(cfg.resample))
    path = os.path.join(tmpdir, "quantile_mlp.pt")
    torch.save(ckpt, path)
    return path


def save_preprocessing(tmpdir):
    frame, cal = build_frame(seed=1)
    stats = frame[FEATURES].agg(["mean", "std"])
    bundle = dict(
        feature_names=list(FEATURES),
        feature_mean=stats.loc["mean"].to_dict(),
        feature_std=stats.loc["std"].tolist(),
        holidays=cal.holidays,  # truth: weights_only
        holiday_dates=[d.strftime("%Y-%m-%d") for d in cal.holidays],
        resample_rule="1h",
        resample_offset=to_offset("1h").freqstr,
        capacity_mw=float(frame["power"].max()),
        capacity_factor=float(frame["power"].mean() / frame["power"].max()),
        hourly_profile=frame.groupby(frame.index.hour)["power"].mean().round(3).to_dict(),
        first_timestamp=frame.index[0].value,
        n_rows=len(frame),
    )
    path = os.path.join(tmpdir, "preprocessing.pt")
    torch.save(bundle, path)
    return path


def save_backtest(tmpdir):
    cfg = ForecastConfig(epochs=2)
    frame, _ = build_frame(days=28, seed=2)
    X, y = make_windows(frame, cfg.horizon_hours)
    cv = TimeSeriesSplit(n_splits=3)
    folds = []
    for k, (tr, te) in enumerate(cv.split(X)):
        trainer = ForecastTrainer(cfg).fit(X[tr], y[tr], X[te], y[te])
        m = trainer.evaluate(X[te], y[te])
        origin = frame.index[te[0]]
        folds.append({"fold": k, "origin": origin.isoformat(), "season_name": season_of(origin).value,
                      "mean_pinball": m["mean_pinball"], "coverage_80": float(m["coverage_80"])})
    table = pd.DataFrame(folds)

    result = {"folds": folds, "n_folds": len(folds)}
    result["worst_fold"] = max(folds, key=lambda f: f["mean_pinball"])
    result["table"] = table.to_dict("list")
    result["mean_over_folds"] = table["mean_pinball"].mean()  # truth: weights_only
    result["median_over_folds"] = float(table["mean_pinball"].median())
    result["season"] = season_of(frame.index[0])  # truth: weights_only
    result["season_code"] = season_of(frame.index[0]).name
    result["splitter"] = type(cv).__name__
    result["splitter_params"] = {"n_splits": cv.n_splits, "gap": cv.gap, "test_size": cv.test_size}
    path = os.path.join(tmpdir, "backtest.pt")
    torch.save(result, path)
    return path


def save_forecaster_resume(tmpdir):
    cfg = ForecastConfig(epochs=2)
    frame, _ = build_frame(seed=3)
    X, y = make_windows(frame)
    trainer = ForecastTrainer(cfg).fit(X, y, X, y)

    ckpt = {}
    ckpt["config"] = cfg  # truth: weights_only
    ckpt["config_dict"] = {**dataclasses.asdict(cfg), "data_dir": str(cfg.data_dir)}
    ckpt["model"] = trainer.model.state_dict()
    ckpt["optimizer"] = trainer.optimizer.state_dict()
    ckpt["scheduler"] = trainer.scheduler.state_dict()
    ckpt["stopper"] = trainer.stopper.state_dict()
    ckpt["val_losses"] = trainer.val_losses
    ckpt["rng_state"] = trainer.rng.bit_generator.state
    ckpt["elapsed"] = trainer.elapsed  # truth: weights_only
    ckpt["elapsed_s"] = trainer.elapsed.total_seconds()
    ckpt.update(epoch=len(trainer.val_losses), wall_time=time.time(), started=trainer.started.isoformat())
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(ckpt, path)
    return path


def save_ensemble(tmpdir):
    """Three seeds, saved as whole modules: the serving box just calls torch.load(...)."""
    members = nn.ModuleList(QuantileMLP(hidden=16) for _ in range(3))
    path = os.path.join(tmpdir, "ensemble.pt")
    torch.save(members, path)  # truth: weights_only
    return path


def save_ensemble_weights(tmpdir):
    members = [QuantileMLP(hidden=16) for _ in range(3)]
    path = os.path.join(tmpdir, "ensemble_weights.pt")
    torch.save({"members": [m.state_dict() for m in members], "hidden": 16,
                "quantiles": list(QUANTILES), "dtype": torch.float32}, path)
    return path


FACTORIES = {"Season": lambda: Season.WINTER}
