"""Hotel room-night demand forecasting: quantile LSTM over daily booking aggregates.

Configs are dataclasses (as in the team's `configs/` package); features are built with pandas and
scikit-learn; the trainer writes its own checkpoints with torch.save.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error
from sklearn.preprocessing import LabelEncoder, StandardScaler


class Granularity(Enum):
    DAILY = "D"
    WEEKLY = "W"


@dataclass
class DataConfig:
    source: str = "data/hotel_bookings.csv"
    target: str = "room_nights"
    lookback: int = 28
    horizon: int = 7
    granularity: Granularity = Granularity.DAILY
    holidays: tuple = ("2017-01-01", "2017-04-16", "2017-07-04", "2017-12-25")
    val_fraction: float = 0.2


@dataclass
class ModelConfig:
    hidden: int = 32
    layers: int = 1
    dropout: float = 0.0
    quantiles: tuple = (0.1, 0.5, 0.9)


@dataclass
class TrainConfig:
    lr: float = 3e-3
    epochs: int = 3
    batch_size: int = 32
    seed: int = 17
    out_dir: Path = field(default_factory=lambda: Path("runs/hotel"))


def make_bookings(seed=0, start="2016-07-01", days=420):
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=days, freq="D")
    rows = []
    for hotel, base in (("City Hotel", 80), ("Resort Hotel", 45)):
        season = 1 + 0.3 * np.sin(2 * np.pi * (dates.dayofyear.to_numpy() - 150) / 365)
        weekend = np.where(dates.dayofweek.to_numpy() >= 5, 1.15 if hotel == "Resort Hotel" else 0.9, 1.0)
        nights = rng.poisson(base * season * weekend)
        for d, n in zip(dates, nights):
            rows.append({
                "arrival_date": d,
                "hotel": hotel,
                "market_segment": str(rng.choice(["Online TA", "Offline TA/TO", "Direct", "Groups"])),
                "room_nights": int(n),
                "adr": float(rng.normal(95 if hotel == "City Hotel" else 120, 15)),
                "lead_time": int(rng.integers(0, 300)),
                "is_canceled": int(rng.random() < 0.3),
            })
    return pd.DataFrame(rows)


def add_calendar(df, holidays):
    out = df.copy()
    out["dow"] = out["arrival_date"].dt.dayofweek
    out["month"] = out["arrival_date"].dt.month
    out["is_holiday"] = out["arrival_date"].dt.strftime("%Y-%m-%d").isin(set(holidays)).astype(int)
    return out


class FeatureBuilder:
    numeric = ("adr", "lead_time", "dow", "month", "is_holiday")

    def __init__(self):
        self.scaler = StandardScaler()
        self.hotel_encoder = LabelEncoder()
        self.segment_encoder = LabelEncoder()
        self.columns = []

    def fit(self, df):
        self.hotel_encoder.fit(df["hotel"])
        self.segment_encoder.fit(df["market_segment"])
        self.scaler.fit(df[list(self.numeric)].to_numpy(dtype=np.float64))
        self.columns = list(self.numeric) + ["hotel_id", "segment_id"]
        return self

    def transform(self, df):
        num = self.scaler.transform(df[list(self.numeric)].to_numpy(dtype=np.float64))
        cat = np.stack([self.hotel_encoder.transform(df["hotel"]),
                        self.segment_encoder.transform(df["market_segment"])], axis=1)
        return np.concatenate([num, cat], axis=1).astype(np.float32)


def make_windows(features, target, lookback, horizon):
    xs, ys = [], []
    for t in range(lookback, len(target) - horizon + 1):
        xs.append(features[t - lookback:t])
        ys.append(target[t:t + horizon])
    return np.stack(xs), np.stack(ys).astype(np.float32)


class QuantileLSTM(nn.Module):
    def __init__(self, n_features=7, hidden=32, layers=1, horizon=7, quantiles=(0.1, 0.5, 0.9)):
        super().__init__()
        self.quantiles = list(quantiles)
        self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, horizon * len(quantiles))
        self.horizon = horizon

    def forward(self, x):
        h, _ = self.lstm(x)
        return self.head(h[:, -1]).view(-1, self.horizon, len(self.quantiles))


def pinball_loss(pred, y, quantiles):
    losses = []
    for i, q in enumerate(quantiles):
        err = y - pred[..., i]
        losses.append(torch.max(q * err, (q - 1) * err).mean())
    return torch.stack(losses).mean()


class ForecastTrainer:
    def __init__(self, data_cfg=None, model_cfg=None, train_cfg=None):
        self.data_cfg = data_cfg or DataConfig()
        self.model_cfg = model_cfg or ModelConfig()
        self.train_cfg = train_cfg or TrainConfig()
        self.features = FeatureBuilder()
        self.model = None
        self.opt = None
        self.epoch = 0
        self.best_val = math.inf
        self.log = []

    def prepare(self, df):
        df = add_calendar(df, self.data_cfg.holidays)
        city = df[df["hotel"] == "City Hotel"].sort_values("arrival_date").reset_index(drop=True)
        self.features.fit(city)
        X = self.features.transform(city)
        y = city[self.data_cfg.target].to_numpy(dtype=np.float32)
        self.y_mean, self.y_std = y.mean(), y.std()
        Xw, yw = make_windows(X, (y - self.y_mean) / self.y_std, self.data_cfg.lookback, self.data_cfg.horizon)
        cut = int(len(Xw) * (1 - self.data_cfg.val_fraction))
        return (torch.from_numpy(Xw[:cut]), torch.from_numpy(yw[:cut])), (torch.from_numpy(Xw[cut:]), torch.from_numpy(yw[cut:]))

    def build(self, n_features, lr=None):
        torch.manual_seed(self.train_cfg.seed)
        m = self.model_cfg
        self.model = QuantileLSTM(n_features, m.hidden, m.layers, self.data_cfg.horizon, m.quantiles)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr or self.train_cfg.lr)
        return self.model

    def fit_epoch(self, train):
        X, y = train
        self.model.train()
        total, n = 0.0, 0
        for i in range(0, len(X), self.train_cfg.batch_size):
            xb, yb = X[i:i + self.train_cfg.batch_size], y[i:i + self.train_cfg.batch_size]
            self.opt.zero_grad()
            loss = pinball_loss(self.model(xb), yb, self.model_cfg.quantiles)
            loss.backward()
            self.opt.step()
            total += loss.item() * len(xb)
            n += len(xb)
        self.epoch += 1
        return total / n, n

    @torch.no_grad()
    def validate(self, val):
        X, y = val
        self.model.eval()
        q = self.model(X).numpy() * self.y_std + self.y_mean
        truth = y.numpy() * self.y_std + self.y_mean
        median = q[..., 1]
        covered = (truth >= q[..., 0]) & (truth <= q[..., 2])
        out = {
            "mae": mean_absolute_error(truth.ravel(), median.ravel()),
            "mape": mean_absolute_percentage_error(truth.ravel() + 1, median.ravel() + 1),
            "wape": np.abs(truth - median).sum() / np.abs(truth).sum(),
            "coverage": covered.mean(),
            "pinball": pinball_loss(torch.from_numpy(q), torch.from_numpy(truth), self.model_cfg.quantiles).item(),
        }
        self.log.append({k: float(v) for k, v in out.items()})
        self.best_val = min(self.best_val, out["mae"])
        return out

    def checkpoint_payload(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "epoch": self.epoch,
            "best_val_mae": self.best_val,
            "log": list(self.log),
        }


def save_forecaster(tmpdir):
    data_cfg, model_cfg, train_cfg = DataConfig(), ModelConfig(), TrainConfig(epochs=2)
    trainer = ForecastTrainer(data_cfg, model_cfg, train_cfg)
    train, val = trainer.prepare(make_bookings(seed=1))
    trainer.build(train[0].shape[-1])
    for _ in range(train_cfg.epochs):
        loss, n_seen = trainer.fit_epoch(train)
    metrics = trainer.validate(val)
    fb = trainer.features
    ckpt = trainer.checkpoint_payload()
    ckpt["config"] = {
        "data": {**asdict(data_cfg), "granularity": data_cfg.granularity.value},
        "model": asdict(model_cfg),
        "train": {**asdict(train_cfg), "out_dir": str(train_cfg.out_dir)},
    }
    ckpt["freq"] = data_cfg.granularity  # truth: weights_only
    ckpt["train_loss"] = loss
    ckpt["val"] = {
        "mae": metrics["mae"],
        "mape": metrics["mape"],
        "wape": metrics["wape"],  # truth: weights_only
        "coverage_80": metrics["coverage"].item(),
        "pinball": metrics["pinball"],
    }
    ckpt["target_norm"] = {"mean": float(trainer.y_mean), "std": trainer.y_std}  # truth: weights_only
    ckpt["scaler"] = {
        "mean": fb.scaler.mean_.tolist(),
        "scale": fb.scaler.scale_.tolist(),
        "n_samples_seen": fb.scaler.n_samples_seen_,  # truth: weights_only
    }
    ckpt["hotels"] = fb.hotel_encoder.classes_.tolist()
    ckpt["segments"] = list(fb.segment_encoder.classes_)
    ckpt["feature_columns"] = list(fb.columns)
    torch.save(ckpt, Path(tmpdir) / "forecaster.pt")
    return str(Path(tmpdir) / "forecaster.pt")


def demand_profile(df):
    """Seasonality summaries that the serving side uses as priors."""
    return {
        "dow_mean": df.groupby(df["arrival_date"].dt.dayofweek)["room_nights"].mean().to_dict(),
        "month_total": df.groupby(df["arrival_date"].dt.month)["room_nights"].sum().to_dict(),
        "segment_share": df["market_segment"].value_counts(normalize=True).to_dict(),
        "adr_stats": df["adr"].agg(["mean", "std", "min", "max"]).to_dict(),
    }


def save_calendar_priors(tmpdir):
    cfg = DataConfig()
    df = add_calendar(make_bookings(seed=2), cfg.holidays)
    city = df[df["hotel"] == "City Hotel"]
    first, last = df["arrival_date"].min(), df["arrival_date"].max()
    horizon = pd.Timedelta(days=cfg.horizon)
    ckpt = {
        "train_start": first,  # truth: weights_only
        "train_end": str(last.date()),
        "n_days": (last - first).days + 1,
        "horizon": horizon,  # truth: weights_only
        "horizon_days": horizon.days,
        "holidays": list(cfg.holidays),
        "holiday_dates": [dt.date.fromisoformat(h) for h in cfg.holidays],  # truth: weights_only
        "lead_time_p90": city["lead_time"].quantile(0.9),  # truth: weights_only
        "lead_time_quantiles": city["lead_time"].quantile([0.5, 0.9]).tolist(),
        "adr_by_hotel": df.groupby("hotel")["adr"].median(),  # truth: weights_only
        "max_nights_by_hotel": df.groupby("hotel")["room_nights"].max().to_dict(),
        "dow_weights": dict(zip(["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                city.groupby("dow")["room_nights"].mean())),
        "n_bookings": city["room_nights"].size,
    }
    ckpt.update(demand_profile(city))
    path = Path(tmpdir) / "calendar_priors.pt"
    torch.save(ckpt, path)
    return str(path)


def lr_sweep(trainer, train, val, grid):
    results = {}
    for lr in grid:
        lr = float(lr)
        trainer.build(train[0].shape[-1], lr=lr)
        trainer.fit_epoch(train)
        results[f"{lr:.0e}"] = float(trainer.validate(val)["mae"])
    best = min(results, key=results.get)
    return results, best


def save_sweep_best(tmpdir):
    trainer = ForecastTrainer(train_cfg=TrainConfig(epochs=1))
    bookings = make_bookings(seed=3, days=300)
    train, val = trainer.prepare(bookings)
    grid = np.logspace(-3.5, -2, 3)
    results, best = lr_sweep(trainer, train, val, grid)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(trainer.opt, factor=0.5, patience=0)
    for _ in range(2):
        trainer.fit_epoch(train)
        plateau.step(trainer.validate(val)["wape"])
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "plateau": plateau.state_dict(),
        "sweep": results,
        "best_lr": float(best),
        "lr_grid": grid,  # truth: weights_only
        "cancel_rate": bookings["is_canceled"].mean(),  # truth: weights_only
        "cancelled_total": int(bookings["is_canceled"].sum()),
        "seed_state": np.random.default_rng(trainer.train_cfg.seed).bit_generator.state,
    }
    path = Path(tmpdir) / "sweep_best.pt"
    torch.save(ckpt, path)
    return str(path)


def save_serving_bundle(tmpdir):
    data_cfg, model_cfg = DataConfig(granularity=Granularity.WEEKLY), ModelConfig(hidden=16)
    trainer = ForecastTrainer(data_cfg, model_cfg, TrainConfig(epochs=1))
    train, val = trainer.prepare(make_bookings(seed=4, days=260))
    trainer.build(train[0].shape[-1])
    loss, _ = trainer.fit_epoch(train)
    metrics = trainer.validate(val)
    sc = trainer.features.scaler
    bundle = {
        "state_dict": trainer.model.state_dict(),
        "quantiles": list(model_cfg.quantiles),
        "granularity": data_cfg.granularity.value,
        "granularity_name": data_cfg.granularity.name,
        "scaler_mean": torch.tensor(sc.mean_, dtype=torch.float32),
        "scaler_scale": torch.as_tensor(sc.scale_),
        "n_samples_seen": int(sc.n_samples_seen_),
        "y_mean": trainer.y_mean.item(),
        "y_std": float(trainer.y_std),
        "metrics": json.loads(json.dumps(metrics, default=float)),
        "train_loss": loss,
        "hotel_classes": [str(c) for c in trainer.features.hotel_encoder.classes_],
        "lookback": data_cfg.lookback,
        "horizon": data_cfg.horizon,
        "input_shape": tuple(train[0].shape[1:]),
        "dtype": train[0].dtype,
        "exported": dt.datetime.now().isoformat(timespec="seconds"),
        "wape_pct": round(float(metrics["wape"]) * 100, 2),
    }
    bundle.update(config={"data": json.loads(json.dumps(asdict(data_cfg), default=str))})
    path = Path(tmpdir) / "serving_bundle.pt"
    torch.save(bundle, path)
    return str(path)


NOT_BUILT = {"Granularity": "an Enum: calling the class needs a value; its members are built by Enum itself"}

FACTORIES = {
    "ForecastTrainer": ForecastTrainer,
    "FeatureBuilder": lambda: FeatureBuilder().fit(add_calendar(make_bookings(days=30), DataConfig().holidays)),
}
