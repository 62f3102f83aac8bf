"""Streaming platform: predict minutes watched per (user, title) session.

Dataclass configs, a pandas feature pipeline with scikit-learn encoders, and a class-based trainer
whose helper methods return dicts and tuples that end up in the checkpoint.
"""
import dataclasses
import datetime as dt
import enum
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.metrics import mean_absolute_error, r2_score


class Device(enum.Enum):
    TV = "tv"
    MOBILE = "mobile"
    WEB = "web"
    CONSOLE = "console"


class LossKind(str, enum.Enum):
    HUBER = "huber"
    TWEEDIE = "tweedie"


@dataclass
class DataConfig:
    n_sessions: int = 400
    min_minutes: float = 0.5
    cap_minutes: float = 240.0
    numeric: tuple = ("title_runtime", "hour", "days_since_release", "user_tenure_days")
    categorical: tuple = ("genre", "device")


@dataclass
class TrainConfig:
    emb_dim: int = 8
    hidden: int = 32
    lr: float = 1e-3
    epochs: int = 3
    batch_size: int = 64
    loss: LossKind = LossKind.HUBER
    huber_delta: float = 5.0
    data: DataConfig = field(default_factory=DataConfig)


GENRES = ["drama", "comedy", "documentary", "kids", "thriller", "anime"]


def make_sessions(cfg: DataConfig, seed=0):
    rng = np.random.default_rng(seed)
    n = cfg.n_sessions
    start = pd.Timestamp("2024-03-01")
    df = pd.DataFrame({
        "user_id": rng.integers(0, 60, n),
        "title_id": rng.integers(0, 90, n),
        "genre": rng.choice(GENRES, n),
        "device": rng.choice([d.value for d in Device], n, p=[0.45, 0.35, 0.15, 0.05]),
        "title_runtime": rng.choice([22, 45, 95, 120], n).astype(float),
        "hour": rng.integers(0, 24, n),
        "days_since_release": rng.exponential(200, n),
        "user_tenure_days": rng.integers(1, 2000, n),
        "started_at": start + pd.to_timedelta(rng.integers(0, 30 * 24 * 60, n), unit="min"),
    })
    frac = rng.beta(2, 2, n)
    df["minutes"] = (df["title_runtime"] * frac).clip(cfg.min_minutes, cfg.cap_minutes)
    return df


class FeaturePipeline:
    """Standardises numeric columns, one-hot encodes categoricals, indexes ids."""

    def __init__(self, cfg: DataConfig = None):
        self.cfg = cfg or DataConfig()
        self.scaler = StandardScaler()
        self.onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        self.user_index = {}
        self.title_index = {}

    def fit(self, df):
        self.scaler.fit(df[list(self.cfg.numeric)])
        self.onehot.fit(df[list(self.cfg.categorical)])
        self.user_index = {int(u): i for i, u in enumerate(sorted(df["user_id"].unique()))}
        self.title_index = {int(t): i for i, t in enumerate(sorted(df["title_id"].unique()))}
        return self

    def transform(self, df):
        num = self.scaler.transform(df[list(self.cfg.numeric)])
        cat = self.onehot.transform(df[list(self.cfg.categorical)])
        users = df["user_id"].map(self.user_index).fillna(0).astype(int).to_numpy()
        titles = df["title_id"].map(self.title_index).fillna(0).astype(int).to_numpy()
        X = np.hstack([num, cat]).astype(np.float32)
        return torch.from_numpy(X), torch.from_numpy(users), torch.from_numpy(titles)

    def export(self):
        return {
            "mean": self.scaler.mean_.tolist(),
            "scale": torch.tensor(self.scaler.scale_, dtype=torch.float32),
            "categories": [c.tolist() for c in self.onehot.categories_],
            "n_users": len(self.user_index),
            "n_titles": len(self.title_index),
        }


class WatchTimeNet(nn.Module):
    def __init__(self, n_dense=14, n_users=60, n_titles=90, emb_dim=8, hidden=32):
        super().__init__()
        self.user_emb = nn.Embedding(n_users + 1, emb_dim)
        self.title_emb = nn.Embedding(n_titles + 1, emb_dim)
        self.mlp = nn.Sequential(nn.Linear(n_dense + 2 * emb_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x, u, t):
        h = torch.cat([x, self.user_emb(u), self.title_emb(t)], dim=-1)
        return nn.functional.softplus(self.mlp(h)).squeeze(-1)


class WatchTimeTrainer:
    def __init__(self, cfg: TrainConfig = None):
        self.cfg = cfg or TrainConfig()
        self.pipeline = FeaturePipeline(self.cfg.data)
        self.model = None
        self.opt = None
        self.global_step = 0
        self.recent = deque(maxlen=5)
        self.history = []
        self.best_mae = float("inf")

    def setup(self, df):
        self.pipeline.fit(df)
        x, u, t = self.pipeline.transform(df.iloc[:2])
        self.model = WatchTimeNet(x.shape[1], len(self.pipeline.user_index), len(self.pipeline.title_index),
                                  self.cfg.emb_dim, self.cfg.hidden)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        return self

    def loss_fn(self, pred, y):
        if self.cfg.loss is LossKind.HUBER:
            return nn.functional.huber_loss(pred, y, delta=self.cfg.huber_delta)
        return (pred - y * torch.log(pred + 1e-6)).mean()

    def train_epoch(self, df):
        x, u, t = self.pipeline.transform(df)
        y = torch.tensor(df["minutes"].to_numpy(), dtype=torch.float32)
        total = 0.0
        for s in range(0, len(df), self.cfg.batch_size):
            sl = slice(s, s + self.cfg.batch_size)
            self.opt.zero_grad()
            loss = self.loss_fn(self.model(x[sl], u[sl], t[sl]), y[sl])
            loss.backward()
            self.opt.step()
            self.global_step += 1
            self.recent.append(loss.item())
            total += loss.item() * len(y[sl])
        return total / len(df)

    def validate(self, df):
        x, u, t = self.pipeline.transform(df)
        with torch.no_grad():
            pred = self.model(x, u, t).numpy()
        y = df["minutes"].to_numpy()
        completion = (pred / df["title_runtime"].to_numpy()).clip(0, 1)
        return {
            "mae": mean_absolute_error(y, pred),
            "r2": r2_score(y, pred),
            "bias": (pred - y).mean(),
            "completion_mean": completion.mean(),
        }, pred

    def fit(self, train, val):
        for epoch in range(self.cfg.epochs):
            tl = self.train_epoch(train)
            metrics, _ = self.validate(val)
            self.history.append({"epoch": epoch, "train_loss": tl, **{k: float(v) for k, v in metrics.items()}})
            if metrics["mae"] < self.best_mae:
                self.best_mae = metrics["mae"]
                self.best_epoch = epoch
        return metrics

    def state_dict(self):
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "step": self.global_step}


def split_by_time(df, frac=0.8):
    cut = df["started_at"].quantile(frac)
    return df[df["started_at"] <= cut], df[df["started_at"] > cut], cut


def save_trainer_checkpoint(tmpdir):
    cfg = TrainConfig(epochs=2, hidden=16)
    df = make_sessions(cfg.data)
    train, val, cut = split_by_time(df)
    trainer = WatchTimeTrainer(cfg).setup(df)
    last = trainer.fit(train, val)
    ckpt = trainer.state_dict()
    ckpt["config"] = cfg  # truth: weights_only
    ckpt["config_dict"] = {k: (v.value if isinstance(v, enum.Enum) else v)
                           for k, v in dataclasses.asdict(cfg).items()}
    ckpt["loss"] = cfg.loss  # truth: weights_only
    ckpt["loss_name"] = cfg.loss.value
    ckpt["history"] = trainer.history
    ckpt["best_mae"] = trainer.best_mae
    ckpt["best_epoch"] = trainer.best_epoch
    ckpt["last_bias"] = last["bias"]  # truth: weights_only
    ckpt["last_r2"] = last["r2"]
    ckpt["recent_losses"] = trainer.recent  # truth: weights_only
    ckpt["recent_mean"] = sum(trainer.recent) / len(trainer.recent)
    ckpt["split_cutoff"] = cut  # truth: weights_only
    ckpt["split_cutoff_iso"] = cut.isoformat()
    ckpt["features"] = trainer.pipeline.export()
    path = os.path.join(tmpdir, "watch_time_last.pt")
    torch.save(ckpt, path)
    return path


def describe_targets(df):
    mins = df["minutes"]
    return {
        "count": len(mins),
        "quantiles": mins.quantile([0.5, 0.9, 0.99]).to_dict(),
        "summary": mins.describe().to_dict(),
        "zero_share": float((mins < 1).mean()),
    }


def save_feature_stats(tmpdir):
    """Stats the serving side needs to rebuild the pipeline without the training frame."""
    cfg = DataConfig(n_sessions=300)
    df = make_sessions(cfg, seed=4)
    pipe = FeaturePipeline(cfg).fit(df)
    by_device = df.groupby("device")["minutes"].mean()
    by_genre = df.groupby("genre")["minutes"].agg(["mean", "count"])
    top_titles = df["title_id"].value_counts().head(5)
    stats = {
        "targets": describe_targets(df),
        "minutes_mean": df["minutes"].mean(),  # truth: weights_only
        "minutes_median": float(df["minutes"].median()),
        "device_mean": by_device.to_dict(),
        "best_device": by_device.idxmax(),
        "genre_table": by_genre.reset_index().to_dict(orient="records"),
        "top_titles": top_titles.index.tolist(),
        "top_title_counts": top_titles.to_numpy(),  # truth: weights_only
        "genres_seen": df["genre"].unique(),  # truth: weights_only
        "n_genres": df["genre"].nunique(),
        "device_counts": Counter(df["device"].tolist()),
        "scaler": pipe.scaler,  # truth: weights_only
        "scaler_mean": pipe.scaler.mean_.tolist(),
        "scaler_var": torch.from_numpy(pipe.scaler.var_),
        "onehot_categories": pipe.onehot.categories_,  # truth: weights_only
        "onehot_names": pipe.onehot.get_feature_names_out().tolist(),
        "first_session": df["started_at"].min().to_pydatetime().isoformat(),
        "span_days": (df["started_at"].max() - df["started_at"].min()).days,
        "window": dt.timedelta(days=30),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "feature_stats.pt")
    torch.save(stats, path)
    return path


def collect_ablation(seed_list, cfg):
    df = make_sessions(cfg.data, seed=11)
    train, val, _ = split_by_time(df)
    results = {}
    for seed in seed_list:
        torch.manual_seed(seed)
        tr = WatchTimeTrainer(cfg).setup(df)
        m = tr.fit(train, val)
        results[seed] = {k: round(float(v), 4) for k, v in m.items()}
    maes = np.array([r["mae"] for r in results.values()])
    return results, maes.mean(), maes.std(ddof=1)


def save_seed_ablation(tmpdir):
    cfg = TrainConfig(epochs=1, hidden=8, emb_dim=4, loss=LossKind.TWEEDIE)
    results, mae_mean, mae_std = collect_ablation([0, 1, 2], cfg)
    ckpt = dict(
        per_seed=results,
        mae_mean=mae_mean,  # truth: weights_only
        mae_std=float(mae_std),
        loss=str(cfg.loss.value),
        seeds=[0, 1, 2],
        device_enum=[d.value for d in Device],
        finished=dt.datetime.now().isoformat(timespec="seconds"),
        elapsed=time.perf_counter(),
    )
    path = os.path.join(tmpdir, "ablation.pt")
    torch.save(ckpt, path)
    return path


def save_serving_bundle(tmpdir):
    cfg = TrainConfig(epochs=1)
    df = make_sessions(cfg.data, seed=21)
    trainer = WatchTimeTrainer(cfg).setup(df)
    trainer.fit(df.iloc[:300], df.iloc[300:])
    dims = trainer.model.user_emb.weight.shape
    ckpt = {
        "model": trainer.model.state_dict(),
        "features": trainer.pipeline.export(),
        "emb_shape": dims,
        "user_ids": list(trainer.pipeline.user_index),
        "default_device": Device.TV.value,
        "cap_minutes": cfg.data.cap_minutes,
        "dtype": torch.get_default_dtype(),
        "created": dt.date.today().isoformat(),
    }
    ckpt.update({"step": trainer.global_step, "best_mae": float(trainer.best_mae)})
    path = os.path.join(tmpdir, "serving.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "Device": lambda: Device.MOBILE,
    "LossKind": lambda: LossKind.HUBER,
}
