"""Next-day wildfire spread: a small CNN over gridded fuel / terrain / weather channels.

Dataclass configs, a trainer class whose helpers return dicts and tuples, scipy for fire
fronts and connected burn scars, sklearn for segmentation metrics.
"""
import dataclasses
import datetime
import enum
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import scipy.stats
import torch
import yaml
from sklearn.metrics import average_precision_score, classification_report, confusion_matrix, f1_score, roc_auc_score
from torch import nn

REGION_YAML = """
name: sierra_nevada
crs: EPSG:32611
bbox: [-120.5, 36.0, -118.0, 39.5]
fire_season:
  start: 2021-06-01
  end: 2021-10-31
fwi_thresholds: [5.2, 11.2, 21.3, 38.0]
"""


class Activation(str, enum.Enum):
    RELU = "relu"
    GELU = "gelu"
    SILU = "silu"


ACTIVATIONS = {Activation.RELU: nn.ReLU, Activation.GELU: nn.GELU, Activation.SILU: nn.SiLU}


@dataclass
class GridConfig:
    size: int = 8
    cell_km: float = 0.375
    channels: tuple = ("fuel", "slope", "wind_u", "wind_v", "humidity", "prev_fire")


@dataclass
class ModelConfig:
    hidden: int = 8
    activation: Activation = Activation.GELU
    dropout: float = 0.1


@dataclass
class TrainConfig:
    lr: float = 3e-3
    epochs: int = 2
    batch_size: int = 4
    threshold: float = 0.5
    seed: int = 0
    data_dir: Path = Path("data/next_day_wildfire_spread")


@dataclass
class ExperimentConfig:
    grid: GridConfig = field(default_factory=GridConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    region_yaml: str = REGION_YAML


def load_region(text):
    return yaml.safe_load(text)


def to_serializable(obj):
    """asdict() keeps Enums and Paths; turn them into plain values for json / checkpoints."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_serializable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [to_serializable(v) for v in obj]
    return obj


class SpreadCNN(nn.Module):
    def __init__(self, in_channels=6, hidden=8, activation=Activation.GELU, dropout=0.1):
        super().__init__()
        act = ACTIVATIONS[Activation(activation)]
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1), act(), nn.Dropout2d(dropout),
            nn.Conv2d(hidden, hidden, 3, padding=1), act(),
        )
        self.head = nn.Conv2d(hidden, 1, 1)

    def forward(self, x):
        return self.head(self.body(x)).squeeze(1)


def synth_fire_grids(n, size, n_channels, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_channels, size, size)).astype("float32")
    prev = rng.random((n, size, size)) < 0.15
    x[:, -1] = prev
    nxt = ndi.binary_dilation(prev, structure=np.ones((1, 3, 3), bool)) & (x[:, 0] > -0.5)
    return x, nxt.astype("float32")


class FireSpreadTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or ExperimentConfig()
        torch.manual_seed(self.cfg.train.seed)
        g = self.cfg.grid
        self.features, self.labels = synth_fire_grids(16, g.size, len(g.channels), self.cfg.train.seed)
        self.region = load_region(self.cfg.region_yaml)
        self.model = SpreadCNN(len(g.channels), self.cfg.model.hidden, self.cfg.model.activation,
                               self.cfg.model.dropout)
        balance = self.class_balance()
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([float(balance["pos_weight"])]))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.train.lr)
        steps = self.cfg.train.epochs * math.ceil(12 / self.cfg.train.batch_size)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=self.cfg.train.lr,
                                                             total_steps=steps)
        self.epoch = 0
        self.history = {"loss": [], "iou": [], "lr": []}
        self.best = {"iou": -1.0, "epoch": -1}

    def channel_stats(self):
        x = self.features[:12]
        return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3)) + 1e-6

    def class_balance(self):
        y = self.labels[:12]
        pos = (y > 0).sum()
        neg = (y == 0).sum()
        return {"pos_frac": float(pos / y.size), "pos_weight": neg / max(pos, 1)}

    def batches(self, split="train"):
        idx = range(0, 12) if split == "train" else range(12, 16)
        idx = list(idx)
        bs = self.cfg.train.batch_size
        mean, std = self.channel_stats()
        for i in range(0, len(idx), bs):
            sl = idx[i:i + bs]
            x = (self.features[sl] - mean[:, None, None]) / std[:, None, None]
            yield torch.from_numpy(x.astype("float32")), torch.from_numpy(self.labels[sl])

    def fit_epoch(self):
        self.model.train()
        total, steps = 0.0, 0
        for x, y in self.batches("train"):
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            total += loss.item()
            steps += 1
        self.epoch += 1
        return total / steps, steps

    def predict(self):
        self.model.eval()
        with torch.no_grad():
            probs = torch.cat([torch.sigmoid(self.model(x)) for x, _ in self.batches("valid")])
        return probs.numpy(), self.labels[12:]

    def evaluate(self):
        probs, y = self.predict()
        pred = probs > self.cfg.train.threshold
        true = y > 0.5
        inter = np.logical_and(pred, true).sum()
        union = np.logical_or(pred, true).sum()
        cell_km2 = self.cfg.grid.cell_km ** 2
        return {
            "iou": inter / max(union, 1),
            "f1": f1_score(true.ravel(), pred.ravel(), zero_division=0),
            "auc": roc_auc_score(true.ravel(), probs.ravel()),
            "ap": average_precision_score(true.ravel(), probs.ravel()),
            "burned_cells": int(pred.sum()),
            "area_error_km2": abs(pred.sum() - true.sum()) * cell_km2,
        }

    def fit(self):
        for _ in range(self.cfg.train.epochs):
            loss, _ = self.fit_epoch()
            metrics = self.evaluate()
            iou = float(metrics["iou"])
            self.history["loss"].append(loss)
            self.history["iou"].append(iou)
            self.history["lr"].append(self.scheduler.get_last_lr()[0])
            if iou > self.best["iou"]:
                self.best = {"iou": iou, "epoch": self.epoch}
        return self

    def spread_rate(self):
        """Burned area growth (km2 per step) fitted over the validation sequence."""
        areas = self.labels[12:].sum(axis=(1, 2)) * self.cfg.grid.cell_km ** 2
        return scipy.stats.linregress(np.arange(len(areas)), areas).slope

    def state_dict(self):
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history": {k: list(v) for k, v in self.history.items()},
        }


def save_trainer_checkpoint(tmpdir):
    cfg = ExperimentConfig()
    trainer = FireSpreadTrainer(cfg).fit()
    ckpt = trainer.state_dict()
    metrics = trainer.evaluate()
    ckpt["config"] = cfg  # truth: weights_only
    ckpt["best"] = dict(trainer.best)
    ckpt["val"] = {
        "iou": metrics["iou"],  # truth: weights_only
        "f1": metrics["f1"],
        "auc": metrics["auc"],
        "ap": metrics["ap"],
        "burned_cells": metrics["burned_cells"],
        "area_error_km2": float(metrics["area_error_km2"]),
    }
    ckpt["pos_weight"] = trainer.loss_fn.pos_weight
    ckpt["threshold"] = cfg.train.threshold
    ckpt["channels"] = list(cfg.grid.channels)
    path = os.path.join(tmpdir, f"spread_cnn_epoch{trainer.epoch:03d}.pt")
    torch.save(ckpt, path)
    return path


def save_region_model(tmpdir):
    cfg = ExperimentConfig(train=TrainConfig(epochs=1))
    trainer = FireSpreadTrainer(cfg).fit()
    region = trainer.region
    season = region["fire_season"]
    u_idx, v_idx = cfg.grid.channels.index("wind_u"), cfg.grid.channels.index("wind_v")
    mean_u = float(trainer.features[:, u_idx].mean())
    mean_v = float(trainer.features[:, v_idx].mean())
    fwi = np.abs(trainer.features[:, 4]).ravel() * 10
    counts, edges = np.histogram(fwi, bins=[0.0] + region["fwi_thresholds"] + [math.inf])
    payload = {
        "state_dict": trainer.model.state_dict(),
        "region_name": region["name"],
        "crs": region["crs"],
        "bbox": tuple(region["bbox"]),
        "season_start": season["start"],  # truth: weights_only
        "season_end": season["end"].isoformat(),
        "season_days": (season["end"] - season["start"]).days,
        "fwi_edges": edges.tolist(),
        "fwi_class_counts": counts.tolist(),
        "grid_shape": trainer.features.shape[-2:],
        "cell_area_km2": cfg.grid.cell_km ** 2,
        "wind_from_deg": (math.degrees(math.atan2(-mean_u, -mean_v)) + 360.0) % 360.0,
        "wind_dir_rad": np.arctan2(mean_v, mean_u),  # truth: weights_only
        "wind_speed": math.hypot(mean_u, mean_v),
    }
    path = os.path.join(tmpdir, f"{region['name']}.pt")
    torch.save(payload, path)
    return path


def save_normalization_stats(tmpdir):
    trainer = FireSpreadTrainer()
    mean, std = trainer.channel_stats()
    balance = trainer.class_balance()
    x = trainer.features
    stats = {
        "channels": list(trainer.cfg.grid.channels),
        "mean": torch.from_numpy(mean),
        "std": std,  # truth: weights_only
        "min": x.min(axis=(0, 2, 3)).tolist(),
        "max": x.max(axis=(0, 2, 3)).tolist(),
        "n_samples": x.shape[0],
        "dtype": str(x.dtype),
        "pos_frac": balance["pos_frac"],
        "pos_weight": balance["pos_weight"],  # truth: weights_only
        "pos_weight_tensor": torch.tensor([balance["pos_weight"]], dtype=torch.float32),
    }
    path = os.path.join(tmpdir, "norm_stats.pt")
    torch.save(stats, path)
    return path


def save_spread_eval(tmpdir):
    trainer = FireSpreadTrainer(ExperimentConfig(train=TrainConfig(epochs=1))).fit()
    probs, y = trainer.predict()
    true = (y > 0.5).ravel()
    per_threshold = {}
    for t in (0.3, 0.5, 0.7):
        pred = probs.ravel() > t
        per_threshold[t] = {"f1": f1_score(true, pred, zero_division=0),
                            "iou": float((pred & true).sum() / max((pred | true).sum(), 1))}
    scars, n_fires = ndi.label(y[0] > 0.5)
    front = ndi.binary_dilation(y[0] > 0.5) & ~(y[0] > 0.5)
    results = {
        "per_threshold": per_threshold,
        "best_threshold": max(per_threshold, key=lambda t: per_threshold[t]["f1"]),
        "spread_rate_km2_per_step": trainer.spread_rate(),  # truth: weights_only
        "n_fires": n_fires,
        "largest_fire_cells": np.bincount(scars.ravel())[1:].max(initial=0),  # truth: weights_only
        "front_cells": int(front.sum()),
        "confusion": confusion_matrix(true, probs.ravel() > 0.5, labels=[False, True]).tolist(),
        "report": classification_report(true, probs.ravel() > 0.5, output_dict=True, zero_division=0),
        "eval_date": datetime.date.today(),  # truth: weights_only
        "evaluated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    path = os.path.join(tmpdir, "spread_eval.pt")
    torch.save(results, path)
    return path


def save_inference_bundle(tmpdir):
    cfg = ExperimentConfig(model=ModelConfig(activation=Activation.SILU), train=TrainConfig(epochs=1))
    trainer = FireSpreadTrainer(cfg).fit()
    bundle = dict(
        model=trainer.model,  # truth: weights_only
        activation=cfg.model.activation,  # truth: weights_only
        activation_name=cfg.model.activation.value,
        hidden=cfg.model.hidden,
        in_channels=len(cfg.grid.channels),
        threshold=cfg.train.threshold,
        best_iou=trainer.best["iou"],
    )
    path = os.path.join(tmpdir, "inference_bundle.pt")
    torch.save(bundle, path)
    return path


def save_portable_export(tmpdir):
    cfg = ExperimentConfig(train=TrainConfig(epochs=1))
    trainer = FireSpreadTrainer(cfg).fit()
    mean, std = trainer.channel_stats()
    metrics = trainer.evaluate()
    export = {
        "config": to_serializable(cfg),
        "state_dict": trainer.model.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "norm": {"mean": mean.tolist(), "std": std.tolist()},
        "iou": float(metrics["iou"]),
        "f1": metrics["f1"],
        "auc": metrics["auc"],
        "burned_cells": metrics["burned_cells"],
        "data_dir": os.fspath(cfg.train.data_dir),
        "activation": cfg.model.activation.value,
        "history": trainer.history,
        "spread_rate": trainer.spread_rate().item(),
        "device": torch.device("cpu"),
        "param_dtype": next(trainer.model.parameters()).dtype,
    }
    path = os.path.join(tmpdir, "spread_cnn_portable.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "Activation": lambda: Activation.GELU,
    "FireSpreadTrainer": lambda: FireSpreadTrainer(ExperimentConfig(train=TrainConfig(epochs=1))),
}
