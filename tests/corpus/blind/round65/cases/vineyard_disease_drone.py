"""Grapevine disease detection from multispectral drone orthomosaics.

Orthomosaics (R, G, B, RedEdge, NIR) are cut into square tiles; each tile is classified into
healthy / downy mildew / powdery mildew / black rot / esca / flavescence doree. Experiments are
described by structured OmegaConf configs; backbones come from a small registry.
"""
import datetime
import os
from dataclasses import dataclass, field
from typing import List

import numpy as np
import torch
import torch.nn as nn
from omegaconf import MISSING, OmegaConf
from sklearn.metrics import confusion_matrix, f1_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight

CLASSES = ["healthy", "downy_mildew", "powdery_mildew", "black_rot", "esca", "flavescence_doree"]
BANDS = ["R", "G", "B", "RE", "NIR"]
FLIGHT_DATE = datetime.date(2024, 7, 12)

BACKBONES = {}


def register_backbone(name):
    def deco(fn):
        BACKBONES[name] = fn
        return fn
    return deco


@register_backbone("tiny_cnn")
def tiny_cnn(in_ch, width=16):
    return nn.Sequential(
        nn.Conv2d(in_ch, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ), 2 * width


@register_backbone("dw_cnn")
def depthwise_cnn(in_ch, width=16):
    return nn.Sequential(
        nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch), nn.Conv2d(in_ch, width, 1), nn.GELU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ), width


@dataclass
class DataConfig:
    orthomosaic: str = MISSING
    bands: List[str] = field(default_factory=lambda: list(BANDS))
    tile_px: int = 16
    stride_px: int = 12
    min_vine_fraction: float = 0.2


@dataclass
class ModelConfig:
    backbone: str = "tiny_cnn"
    width: int = 16
    dropout: float = 0.1


@dataclass
class ExperimentConfig:
    name: str = "vineyard_baseline"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lr: float = 1e-3
    epochs: int = 2
    seed: int = 3


def load_experiment(overrides=()):
    base = OmegaConf.structured(ExperimentConfig)
    base.data.orthomosaic = "/mnt/drone/2024-07-12/block_B/ortho.tif"
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


class DiseaseClassifier(nn.Module):
    def __init__(self, backbone="tiny_cnn", in_ch=len(BANDS), width=16, n_classes=len(CLASSES), dropout=0.1):
        super().__init__()
        self.features, dim = BACKBONES[backbone](in_ch, width)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, n_classes)

    def forward(self, x):
        return self.fc(self.drop(self.features(x)))


def synth_orthomosaic(h=96, w=96, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.uniform(0.02, 0.3, size=(len(BANDS), h, w)).astype(np.float32)
    rows = (np.arange(h) % 8 < 4)[:, None]  # vine rows
    img[BANDS.index("NIR")] += 0.4 * rows
    disease = rng.integers(0, len(CLASSES), size=(h // 16 + 1, w // 16 + 1))
    return img, disease


def ndvi(img):
    nir, red = img[BANDS.index("NIR")], img[BANDS.index("R")]
    return (nir - red) / (nir + red + 1e-6)


def otsu_threshold(values, bins=64):
    hist, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centers) - np.cumsum(hist * centers)) / np.maximum(w1, 1)
    return centers[np.argmax(w0 * w1 * (m0 - m1) ** 2)]


def tile(img, disease, ndvi_map, thr, tile_px, stride, min_frac):
    tiles, labels, origins = [], [], []
    for r in range(0, img.shape[1] - tile_px + 1, stride):
        for c in range(0, img.shape[2] - tile_px + 1, stride):
            vine = (ndvi_map[r:r + tile_px, c:c + tile_px] > thr).mean()
            if vine >= min_frac:
                tiles.append(img[:, r:r + tile_px, c:c + tile_px])
                labels.append(CLASSES[disease[r // 16, c // 16]])
                origins.append((r, c))
    return np.stack(tiles), labels, origins


def prepare(cfg):
    torch.manual_seed(cfg.seed)
    img, disease = synth_orthomosaic(seed=cfg.seed)
    nd = ndvi(img)
    thr = otsu_threshold(nd)
    tiles, names, origins = tile(img, disease, nd, thr, cfg.data.tile_px, cfg.data.stride_px,
                                 cfg.data.min_vine_fraction)
    le = LabelEncoder().fit(CLASSES)
    y = le.transform(names)
    band_mean = tiles.mean(axis=(0, 2, 3))
    band_std = tiles.std(axis=(0, 2, 3))
    return tiles, y, origins, le, thr, band_mean, band_std


class FieldTrainer:
    """Train loop with class-balanced cross-entropy; `run` returns (metrics, confusion)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.tiles, self.y, self.origins, self.le, self.ndvi_thr, self.band_mean, self.band_std = prepare(cfg)
        self.class_weights = compute_class_weight("balanced", classes=np.unique(self.y), y=self.y)
        self.model = DiseaseClassifier(cfg.model.backbone, len(cfg.data.bands), cfg.model.width,
                                       len(CLASSES), cfg.model.dropout)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr)
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)
        self.best_f1 = 0.0

    def _inputs(self):
        x = (self.tiles - self.band_mean[None, :, None, None]) / self.band_std[None, :, None, None]
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(self.y)

    def run(self):
        x, y = self._inputs()
        present = np.unique(self.y)
        w = torch.ones(len(CLASSES))
        w[torch.from_numpy(present)] = torch.tensor(self.class_weights, dtype=torch.float32)
        for _ in range(self.cfg.epochs):
            self.model.train()
            loss = nn.functional.cross_entropy(self.model(x), y, weight=w)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.model.eval()
            with torch.no_grad():
                pred = self.model(x).argmax(1).numpy()
            macro = f1_score(self.y, pred, average="macro", zero_division=0)
            self.best_f1 = max(self.best_f1, macro)
        metrics = {
            "loss": loss.item(),
            "macro_f1": macro,
            "per_class_f1": f1_score(self.y, pred, labels=range(len(CLASSES)), average=None, zero_division=0),
            "accuracy": (pred == self.y).mean(),
        }
        return metrics, confusion_matrix(self.y, pred, labels=range(len(CLASSES)))


def save_tile_classifier(tmpdir):
    cfg = load_experiment(["epochs=2"])
    trainer = FieldTrainer(cfg)
    metrics, cm = trainer.run()
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "amp_scaler": trainer.scaler.state_dict(),
        "cfg": cfg,  # truth: weights_only
        "cfg_dict": OmegaConf.to_container(cfg, resolve=True),
        "bands": cfg.data.bands,  # truth: weights_only
        "band_order": list(cfg.data.bands),
        "classes": trainer.le.classes_.tolist(),
        "class_weights": torch.tensor(trainer.class_weights, dtype=torch.float32),
        "ndvi_threshold": trainer.ndvi_thr,  # truth: weights_only
        "best_macro_f1": trainer.best_f1,
        "metrics": {
            "loss": metrics["loss"],
            "macro_f1": metrics["macro_f1"],
            "accuracy": metrics["accuracy"],  # truth: weights_only
            "per_class_f1": metrics["per_class_f1"].tolist(),
        },
        "confusion": cm.tolist(),
    }
    path = os.path.join(tmpdir, "tile_classifier.ckpt")
    torch.save(ckpt, path)
    return path


def save_normalisation_bundle(tmpdir):
    cfg = load_experiment(["data.tile_px=16", "data.stride_px=16", "model.backbone=dw_cnn"])
    tiles, y, origins, le, thr, band_mean, band_std = prepare(cfg)
    model = DiseaseClassifier(cfg.model.backbone, len(BANDS), cfg.model.width)
    bundle = {"state_dict": model.state_dict()}
    bundle["normalisation"] = {
        "mean": torch.from_numpy(band_mean),
        "std": band_std,  # truth: weights_only
        "band_names": BANDS,
    }
    bundle["label_encoder"] = le  # truth: weights_only
    bundle["tile_origins"] = origins
    bundle["n_tiles"] = len(tiles)
    bundle["tile_shape"] = tiles.shape[1:]
    bundle["label_hist"] = np.bincount(y, minlength=len(CLASSES)).tolist()
    bundle["flight_date"] = FLIGHT_DATE.isoformat()
    bundle["vine_fraction_cut"] = cfg.data.min_vine_fraction
    bundle["geo"] = {"crs": "EPSG:32631", "transform": (512000.0, 0.03, 0.0, 4870000.0, 0.0, -0.03)}
    path = os.path.join(tmpdir, "normalisation.pt")
    torch.save(bundle, path)
    return path


def save_experiment_record(tmpdir):
    cfg = load_experiment(["lr=0.0005", "name=esca_focus"])
    trainer = FieldTrainer(cfg)
    metrics, cm = trainer.run()
    record = dict(
        experiment=OmegaConf.to_object(cfg),  # truth: weights_only
        experiment_yaml=OmegaConf.to_yaml(cfg),
        flight_date=FLIGHT_DATE,  # truth: weights_only
        confusion=cm,  # truth: weights_only
        per_class_f1=metrics["per_class_f1"],  # truth: weights_only
        macro_f1=metrics["macro_f1"],
        registry=sorted(BACKBONES),
        weights=trainer.model.state_dict(),
    )
    record["best_macro_f1"] = trainer.best_f1
    path = os.path.join(tmpdir, "record.pt")
    torch.save(record, path)
    return path


def save_field_app_model(tmpdir):
    """The tablet app used in the field loads the whole module."""
    cfg = load_experiment(["model.width=8"])
    trainer = FieldTrainer(cfg)
    trainer.run()
    trainer.model.eval()
    path = os.path.join(tmpdir, "field_app_model.pt")
    torch.save(trainer.model, path)  # truth: weights_only
    return path


def save_field_app_weights(tmpdir):
    """What the app loads since it moved to weights-only loading."""
    cfg = load_experiment(["model.width=8"])
    trainer = FieldTrainer(cfg)
    trainer.run()
    path = os.path.join(tmpdir, "field_app_weights.pt")
    torch.save(trainer.model.state_dict(), path)
    return path


FACTORIES = {
    "FieldTrainer": lambda: FieldTrainer(load_experiment()),
}
