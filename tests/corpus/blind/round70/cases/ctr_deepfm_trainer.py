"""DeepFM click-through-rate model for the storefront recommendation slots.

Config is a structured OmegaConf schema (dataclasses below) merged with the YAML that the
scheduler job passes in; the impression log comes from the daily parquet export (simulated here).
"""
import math
import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import List

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from omegaconf import OmegaConf
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset


@dataclass
class DataConfig:
    sparse_fields: List[str] = field(default_factory=lambda: ["user_bucket", "item_id", "category", "device", "hour"])
    dense_fields: List[str] = field(default_factory=lambda: ["log_price", "position"])
    min_count: int = 2
    days: int = 7


@dataclass
class ModelConfig:
    embed_dim: int = 8
    mlp_dims: List[int] = field(default_factory=lambda: [64, 32])
    dropout: float = 0.1


@dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-6
    batch_size: int = 256
    epochs: int = 2


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 7
    run_name: str = "deepfm-slots"


OVERRIDES = """
model:
  embed_dim: 6
  mlp_dims: [48, 24]
optim:
  lr: 0.003
  epochs: 2
run_name: deepfm-slots-${model.embed_dim}d
"""


def load_config(overrides=OVERRIDES):
    schema = OmegaConf.structured(TrainConfig)
    return OmegaConf.merge(schema, OmegaConf.create(overrides))


def simulate_impressions(n=1500, seed=7):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "user_id": rng.integers(0, 300, n),
        "item_id": rng.integers(0, 120, n),
        "category": rng.choice(["shoes", "bags", "outdoor", "kitchen", "toys"], n),
        "device": rng.choice(["ios", "android", "web"], n, p=[0.4, 0.35, 0.25]),
        "price": rng.lognormal(3.0, 0.8, n).round(2),
        "position": rng.integers(1, 11, n),
        "ts": pd.Timestamp("2024-05-01") + pd.to_timedelta(rng.integers(0, 7 * 86400, n), unit="s"),
    })
    logit = -2.2 + 0.4 * (df["device"] == "ios") - 0.12 * df["position"] + 0.3 * (df["category"] == "shoes")
    df["clicked"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    df["hour"] = df["ts"].dt.hour
    df["user_bucket"] = df["user_id"] % 64
    df["log_price"] = np.log1p(df["price"])
    return df


class FieldEncoder:
    """Per-field vocabularies; ids below min_count share the OOV slot 0."""

    def __init__(self, fields, min_count=2):
        self.fields = list(fields)
        self.min_count = min_count
        self.vocab = {}

    def fit(self, df):
        for f in self.fields:
            counts = df[f].value_counts()
            keep = counts[counts >= self.min_count].index.tolist()
            self.vocab[f] = {v: i + 1 for i, v in enumerate(keep)}
        return self

    def transform(self, df):
        cols = [df[f].map(self.vocab[f]).fillna(0).astype(np.int64).to_numpy() for f in self.fields]
        return np.stack(cols, axis=1)

    def field_dims(self):
        return [len(self.vocab[f]) + 1 for f in self.fields]


class DeepFM(nn.Module):
    def __init__(self, field_dims=(10, 10), n_dense=2, embed_dim=8, mlp_dims=(32,), dropout=0.1):
        super().__init__()
        self.offsets = nn.Parameter(torch.tensor([0, *np.cumsum(field_dims)[:-1].tolist()]), requires_grad=False)
        total = int(sum(field_dims))
        self.linear = nn.Embedding(total, 1)
        self.embed = nn.Embedding(total, embed_dim)
        self.dense = nn.Linear(n_dense, embed_dim)
        layers, d = [], embed_dim * (len(field_dims) + 1)
        for h in mlp_dims:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        self.mlp = nn.Sequential(*layers, nn.Linear(d, 1))

    def forward(self, sparse, dense):
        idx = sparse + self.offsets
        e = torch.cat([self.embed(idx), self.dense(dense).unsqueeze(1)], dim=1)
        fm = 0.5 * (e.sum(1).pow(2) - e.pow(2).sum(1)).sum(1, keepdim=True)
        return (self.linear(idx).sum(1) + fm + self.mlp(e.flatten(1))).squeeze(1)


def normalized_entropy(y, p):
    base = y.mean()
    background = -(base * np.log(base) + (1 - base) * np.log(1 - base))
    return log_loss(y, p) / background


class CTRTrainer:
    def __init__(self, cfg, field_dims, n_dense, pos_weight=1.0):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.model = DeepFM(field_dims, n_dense, cfg.model.embed_dim, list(cfg.model.mlp_dims), cfg.model.dropout)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.optim.lr,
                                          weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=0.9)
        self.pos_weight = pos_weight
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(pos_weight)))
        self.history = defaultdict(list)
        self.best_auc = 0.0
        self.epoch = 0
        self.step = 0

    def fit_epoch(self, loader):
        self.model.train()
        losses = []
        for sparse, dense, y in loader:
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.model(sparse, dense), y)
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
            self.step += 1
        self.scheduler.step()
        self.epoch += 1
        return sum(losses) / len(losses), len(losses)

    @torch.no_grad()
    def predict(self, loader):
        self.model.eval()
        ps, ys = [], []
        for sparse, dense, y in loader:
            ps.append(torch.sigmoid(self.model(sparse, dense)))
            ys.append(y)
        return torch.cat(ys).numpy(), torch.cat(ps).numpy()

    def evaluate(self, loader):
        y, p = self.predict(loader)
        return {
            "auc": roc_auc_score(y, p),
            "logloss": log_loss(y, p),
            "ne": normalized_entropy(y, p),
            "calibration": p.mean() / y.mean(),
        }

    def train(self, train_loader, val_loader):
        for _ in range(self.cfg.optim.epochs):
            loss, steps = self.fit_epoch(train_loader)
            metrics = self.evaluate(val_loader)
            self.history["loss"].append(loss)
            self.history["auc"].append(metrics["auc"])
            self.best_auc = max(self.best_auc, metrics["auc"])
        return metrics

    def checkpoint_state(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.step,
        }


def prepare(cfg, seed=7):
    df = simulate_impressions(seed=seed)
    cut = df["ts"].quantile(0.8)
    train_df, val_df = df[df["ts"] <= cut], df[df["ts"] > cut]
    enc = FieldEncoder(cfg.data.sparse_fields, cfg.data.min_count).fit(train_df)
    scaler = StandardScaler().fit(train_df[list(cfg.data.dense_fields)])

    def loader(frame, shuffle):
        sparse = torch.from_numpy(enc.transform(frame))
        dense = torch.from_numpy(scaler.transform(frame[list(cfg.data.dense_fields)]).astype(np.float32))
        y = torch.from_numpy(frame["clicked"].to_numpy(dtype=np.float32))
        return DataLoader(TensorDataset(sparse, dense, y), batch_size=cfg.optim.batch_size, shuffle=shuffle)

    n_pos = (train_df["clicked"] == 1).sum()
    n_neg = (train_df["clicked"] == 0).sum()
    return df, enc, scaler, loader(train_df, True), loader(val_df, False), n_neg / n_pos


def build_trainer(cfg=None):
    cfg = cfg or load_config()
    df, enc, scaler, train_loader, val_loader, pos_weight = prepare(cfg, cfg.seed)
    trainer = CTRTrainer(cfg, enc.field_dims(), len(cfg.data.dense_fields), pos_weight)
    return trainer, df, enc, scaler, train_loader, val_loader


def save_trainer_checkpoint(tmpdir):
    cfg = load_config()
    trainer, _, _, _, train_loader, val_loader = build_trainer(cfg)
    trainer.train(train_loader, val_loader)
    ckpt = trainer.checkpoint_state()
    ckpt.update({
        "config": OmegaConf.to_container(cfg, resolve=True),
        "optim_cfg": cfg.optim,  # truth: weights_only
        "history": trainer.history,  # truth: weights_only
        "best_auc": trainer.best_auc,
        "run_name": cfg.run_name,
    })
    ckpt["rng"] = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # truth: weights_only
    }
    path = f"{tmpdir}/{cfg.run_name}-last.ckpt"
    torch.save(ckpt, path)
    return path


def save_best_model(tmpdir):
    trainer, df, _, _, train_loader, val_loader = build_trainer()
    metrics = trainer.train(train_loader, val_loader)
    best = {
        "state_dict": trainer.model.state_dict(),
        "auc": metrics["auc"],
        "logloss": metrics["logloss"],
        "ne": metrics["ne"],  # truth: weights_only
        "ne_4dp": round(metrics["ne"], 4),  # truth: weights_only
        "ne_pct": round(metrics["ne"] * 100),
        "calibration": metrics["calibration"],  # truth: weights_only
        "pos_weight": trainer.pos_weight,  # truth: weights_only
        "loss_pos_weight": trainer.loss_fn.pos_weight,
        "epoch": trainer.epoch,
    }
    per_device = {}
    for device, grp in df.groupby("device"):
        per_device[device] = float(grp["clicked"].mean())
    best["ctr_by_device"] = per_device
    best["lr_trace"] = trainer.scheduler.get_last_lr()
    torch.save(best, f"{tmpdir}/best.ckpt")
    return f"{tmpdir}/best.ckpt"


def save_preprocessing(tmpdir):
    cfg = load_config()
    trainer, df, enc, scaler, _, _ = build_trainer(cfg)
    field_dims = df[list(cfg.data.sparse_fields)].nunique().values
    artifacts = dict(
        vocab=enc.vocab,
        min_count=enc.min_count,
        dense_mean=scaler.mean_,  # truth: weights_only
        dense_scale=scaler.scale_.tolist(),
        field_dims=field_dims,  # truth: weights_only
        encoded_dims=enc.field_dims(),
        sparse_fields=list(cfg.data.sparse_fields),
        dense_fields=cfg.data.dense_fields,  # truth: weights_only
        n_users=df["user_id"].nunique(),
        first_impression=df["ts"].min().isoformat(),
        last_impression=df["ts"].max(),  # truth: weights_only
        global_ctr=df["clicked"].mean(),  # truth: weights_only
        ctr_by_category=df.groupby("category")["clicked"].mean().to_dict(),
        dtypes=df.dtypes.astype(str).to_dict(),
        dense_mean_by_col=dict(zip(cfg.data.dense_fields, df[list(cfg.data.dense_fields)].mean())),
        device_counts=Counter(df["device"]),
    )
    torch.save({"model": trainer.model.state_dict(), "preprocessing": artifacts}, f"{tmpdir}/prep.pt")
    return f"{tmpdir}/prep.pt"


def save_structured_run(tmpdir):
    cfg = load_config()
    run = OmegaConf.to_object(cfg)
    trainer, *_ = build_trainer(cfg)
    payload = {
        "model": trainer.model.state_dict(),
        "run": run,  # truth: weights_only
        "run_dict": asdict(run),
        "embed_dim": run.model.embed_dim,
        "yaml": OmegaConf.to_yaml(cfg),
    }
    torch.save(payload, f"{tmpdir}/run.pt")
    return f"{tmpdir}/run.pt"


def save_serving_bundle(tmpdir):
    cfg = load_config()
    trainer, df, enc, scaler, train_loader, val_loader = build_trainer(cfg)
    metrics = trainer.train(train_loader, val_loader)
    y, p = trainer.predict(val_loader)
    thresholds = {}
    for q in (0.5, 0.9, 0.99):
        thresholds[f"p{int(q * 100)}"] = float(np.quantile(p, q))
    by_position = {int(pos): round(float(g["clicked"].mean()), 4) for pos, g in df.groupby("position")}
    bundle = {
        "weights": {k: v.half() for k, v in trainer.model.state_dict().items()},
        "vocab": enc.vocab,
        "scaler": {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()},
        "field_dims": enc.field_dims(),
        "embed_dim": cfg.model.embed_dim,
        "thresholds": thresholds,
        "auc": metrics["auc"],
        "ne": float(metrics["ne"]),
        "expected_ctr": math.fsum(p.tolist()) / len(p),
        "ctr_by_position": by_position,
        "top_categories": Counter(df["category"]).most_common(3),
        "score_buckets": torch.quantile(torch.from_numpy(p), torch.linspace(0, 1, 11)),
        "n_val": int(y.size),
        "seed": cfg.seed,
    }
    torch.save(bundle, f"{tmpdir}/serving.pt")
    return f"{tmpdir}/serving.pt"


FACTORIES = {
    "FieldEncoder": lambda: FieldEncoder(["device", "category"]).fit(simulate_impressions(200)),
    "CTRTrainer": lambda: build_trainer()[0],
}
