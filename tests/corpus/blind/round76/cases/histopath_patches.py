"""Patch-level tissue classification on H&E whole-slide tiles (CAMELYON-style).

Config in YAML through OmegaConf, backbones and optimizers in registries, Macenko stain
normalisation fitted on a reference tile, slide-level split with scikit-learn, slide-level
aggregation of patch probabilities with pandas.
"""
import dataclasses
import time
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from omegaconf import DictConfig, OmegaConf
from sklearn.metrics import classification_report, cohen_kappa_score, confusion_matrix, roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torch.utils.data import DataLoader, Dataset

DEFAULT_CONFIG = """
experiment: camelyon-patch-tiny
seed: 13
data:
  patch_size: 32
  stride: 32
  mpp: 0.5
  classes: [normal, stroma, tumor]
  tissue_threshold: 0.5
  stain_norm: macenko
  val_fraction: 0.34
model:
  backbone: tiny_resnet
  width: 8
  dropout: 0.1
optim:
  name: adamw
  lr: 3.0e-4
  weight_decay: 0.05
  epochs: 2
  batch_size: 16
augment:
  hflip: 0.5
  rot90: true
  hed_jitter: 0.05
"""

SLIDE_META = """
scanner: Aperio AT2
site: radboud
mpp: 0.243
calibrated: 2023-03-14
"""


def load_config(overrides=()):
    cfg = OmegaConf.create(DEFAULT_CONFIG)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


# ----------------------------------------------------------------------------- registries

BACKBONES = {}
OPTIMIZERS = {
    "adamw": torch.optim.AdamW,
    "sgd": partial(torch.optim.SGD, momentum=0.9, nesterov=True),
}


def register_backbone(name):
    def deco(cls):
        BACKBONES[name] = cls
        return cls
    return deco


class ResBlock(nn.Module):
    def __init__(self, ch=8):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(ch)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(ch)

    def forward(self, x):
        return F.relu(x + self.b2(self.c2(F.relu(self.b1(self.c1(x))))))


@register_backbone("tiny_resnet")
class TinyResNet(nn.Module):
    def __init__(self, num_classes=3, width=8, dropout=0.1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(ResBlock(width), nn.MaxPool2d(2), ResBlock(width))
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.drop(self.blocks(self.stem(x)).mean((2, 3))))


@register_backbone("simple_cnn")
class SimpleCNN(nn.Module):
    def __init__(self, num_classes=3, width=8, dropout=0.1):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.fc(self.features(x))


def build_backbone(cfg, num_classes):
    return BACKBONES[cfg.model.backbone](num_classes=num_classes, width=cfg.model.width, dropout=cfg.model.dropout)


def build_optimizer(cfg, params):
    return OPTIMIZERS[cfg.optim.name](params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)


# ----------------------------------------------------------------------------- stain normalisation

class MacenkoNormalizer:
    """Macenko et al. 2009: stain vectors from the plane of the two largest OD eigenvectors."""

    def __init__(self, io=240, alpha=1.0, beta=0.15):
        self.io, self.alpha, self.beta = io, alpha, beta
        self.HE = np.array([[0.5626, 0.2159], [0.7201, 0.8012], [0.4062, 0.5581]])
        self.maxC = np.array([1.9705, 1.0308])

    def _od(self, rgb):
        return -np.log((rgb.reshape(-1, 3).astype(np.float64) + 1) / self.io)

    def stain_matrix(self, rgb):
        od = self._od(rgb)
        od_hat = od[~np.any(od < self.beta, axis=1)]
        if len(od_hat) < 16:  # almost no stained tissue: keep the reference vectors
            return self.HE
        _, eigvecs = np.linalg.eigh(np.cov(od_hat.T))
        plane = od_hat @ eigvecs[:, 1:3]
        phi = np.arctan2(plane[:, 1], plane[:, 0])
        lo, hi = np.percentile(phi, self.alpha), np.percentile(phi, 100 - self.alpha)
        v1 = eigvecs[:, 1:3] @ np.array([np.cos(lo), np.sin(lo)])
        v2 = eigvecs[:, 1:3] @ np.array([np.cos(hi), np.sin(hi)])
        he = np.array([v1, v2]).T if v1[0] > v2[0] else np.array([v2, v1]).T
        return np.abs(he)

    def fit(self, target_rgb):
        self.HE = self.stain_matrix(target_rgb)
        conc = np.linalg.lstsq(self.HE, self._od(target_rgb).T, rcond=None)[0]
        self.maxC = np.percentile(conc, 99, axis=1)
        return self

    def transform(self, rgb):
        he = self.stain_matrix(rgb)
        conc = np.linalg.lstsq(he, self._od(rgb).T, rcond=None)[0]
        conc *= (self.maxC / (np.percentile(conc, 99, axis=1) + 1e-6))[:, None]
        out = self.io * np.exp(-self.HE @ conc)
        return np.clip(out.T.reshape(rgb.shape), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- data

def synthetic_slide(label, n_patches, size, rng):
    """H&E-ish tiles: pink stroma background, purple nuclei; tumor tiles are nuclei-dense."""
    density = {"normal": 4, "stroma": 1, "tumor": 14}[label]
    yy, xx = np.mgrid[0:size, 0:size]
    tiles = []
    for _ in range(n_patches):
        img = np.empty((size, size, 3))
        img[...] = (230, 160, 200) + rng.normal(0, 8, 3)
        for _ in range(rng.poisson(density)):
            cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(1.5, 3.5)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (90, 50, 140)
        tiles.append(np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8))
    return np.stack(tiles)


def tissue_fraction(tile, thr=0.07):
    rgb = tile.astype(np.float64) / 255
    sat = (rgb.max(-1) - rgb.min(-1)) / (rgb.max(-1) + 1e-6)
    return (sat > thr).mean()


def build_cohort(cfg, n_slides=9, per_slide=6):
    rng = np.random.default_rng(cfg.seed)
    rows, tiles = [], []
    for s in range(n_slides):
        label = cfg.data.classes[s % len(cfg.data.classes)]
        slide = synthetic_slide(label, per_slide, cfg.data.patch_size, rng)
        for i, tile in enumerate(slide):
            rows.append({"slide_id": f"{label}_{s:03d}", "x": i * cfg.data.stride, "y": 0, "label": label,
                         "tissue": tissue_fraction(tile)})
            tiles.append(tile)
    df = pd.DataFrame(rows)
    keep = (df.tissue >= cfg.data.tissue_threshold).to_numpy()
    return df[keep].reset_index(drop=True), np.stack(tiles)[keep]


class PatchDataset(Dataset):
    def __init__(self, tiles=None, labels=None, normalizer=None, hflip=0.0):
        self.tiles = tiles if tiles is not None else np.zeros((2, 32, 32, 3), np.uint8)
        self.labels = labels if labels is not None else np.zeros(len(self.tiles), np.int64)
        self.normalizer = normalizer
        self.hflip = hflip

    def __len__(self):
        return len(self.tiles)

    def __getitem__(self, i):
        tile = self.tiles[i]
        if self.normalizer is not None:
            tile = self.normalizer.transform(tile)
        x = torch.from_numpy(tile).permute(2, 0, 1).float() / 255.0
        if self.hflip and torch.rand(()) < self.hflip:
            x = x.flip(-1)
        return x, int(self.labels[i])


@dataclasses.dataclass
class TrainState:
    epoch: int
    model_state: dict
    optimizer_state: dict
    best_kappa: float = -1.0
    classes: list = dataclasses.field(default_factory=list)


FACTORIES = {
    "TrainState": lambda: TrainState(epoch=0, model_state={}, optimizer_state={}),
}


def prepare(cfg):
    torch.manual_seed(cfg.seed)
    df, tiles = build_cohort(cfg)
    le = LabelEncoder().fit(list(cfg.data.classes))
    df["y"] = le.transform(df.label)
    slides = df.groupby("slide_id").label.first()
    train_ids, val_ids = train_test_split(slides.index.tolist(), test_size=cfg.data.val_fraction,
                                          stratify=slides.tolist(), random_state=cfg.seed)
    normalizer = MacenkoNormalizer().fit(tiles[0])
    return df, tiles, le, train_ids, val_ids, normalizer


def run_training(cfg, df, tiles, le, train_ids, normalizer):
    mask = df.slide_id.isin(train_ids).to_numpy()
    y = df.y.to_numpy()[mask]
    cw = compute_class_weight("balanced", classes=np.arange(len(le.classes_)), y=y)
    model = build_backbone(cfg, len(le.classes_))
    opt = build_optimizer(cfg, model.parameters())
    loader = DataLoader(PatchDataset(tiles[mask], y, normalizer, cfg.augment.hflip),
                        batch_size=cfg.optim.batch_size, shuffle=True)
    crit = nn.CrossEntropyLoss(weight=torch.tensor(cw, dtype=torch.float32))
    for _ in range(cfg.optim.epochs):
        model.train()
        for x, t in loader:
            loss = crit(model(x), t)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model, opt, cw, loss.item()


@torch.no_grad()
def predict(model, df, tiles, ids, normalizer):
    model.eval()
    mask = df.slide_id.isin(ids).to_numpy()
    ds = PatchDataset(tiles[mask], df.y.to_numpy()[mask], normalizer)
    probs = torch.cat([model(x).softmax(-1) for x, _ in DataLoader(ds, batch_size=32)]).numpy()
    out = df[mask].copy()
    out["pred"] = probs.argmax(1)
    out["p_tumor"] = probs[:, -1]
    return out


def evaluate(out):
    acc = float((out.pred == out.y).mean())
    kappa = cohen_kappa_score(out.y, out.pred, weights="quadratic")
    return acc, kappa


# ----------------------------------------------------------------------------- checkpoints

def save_patch_classifier(tmpdir):
    cfg = load_config(["optim.epochs=1"])
    df, tiles, le, train_ids, val_ids, normalizer = prepare(cfg)
    model, opt, cw, last_loss = run_training(cfg, df, tiles, le, train_ids, normalizer)
    acc, kappa = evaluate(predict(model, df, tiles, val_ids, normalizer))
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": cfg.optim.epochs,
        "cfg": cfg,  # truth: weights_only
        "model_class": type(model),  # truth: weights_only
        "backbone": cfg.model.backbone,
        "classes": le.classes_.tolist(),
        "class_weights": torch.tensor(cw, dtype=torch.float32),
        "val_acc": acc,
        "val_kappa": kappa,
        "last_loss": last_loss,
    }
    path = Path(tmpdir) / f"{cfg.experiment}_e{cfg.optim.epochs}.pt"
    torch.save(ckpt, path)
    return str(path)


def save_stain_reference(tmpdir):
    cfg = load_config()
    df, tiles, le, train_ids, val_ids, normalizer = prepare(cfg)
    model = build_backbone(cfg, len(le.classes_))
    ckpt = {"state_dict": model.state_dict(), "patch_size": cfg.data.patch_size, "mpp": cfg.data.mpp}
    ckpt["stain"] = {
        "method": cfg.data.stain_norm,
        "HE": normalizer.HE,  # truth: weights_only
        "maxC": normalizer.maxC.tolist(),
        "io": normalizer.io,
        "beta": normalizer.beta,
        "reference_tissue": float(tissue_fraction(tiles[0])),
    }
    ckpt["class_names"] = list(cfg.data.classes)
    ckpt["augment"] = cfg.augment  # truth: weights_only
    ckpt["hflip"] = cfg.augment.hflip
    ckpt["optim"] = OmegaConf.to_container(cfg.optim)
    path = Path(tmpdir) / "stain_ref.pt"
    torch.save(ckpt, path)
    return str(path)


def save_slide_level(tmpdir):
    cfg = load_config(["optim.epochs=1"])
    meta = yaml.safe_load(SLIDE_META)
    df, tiles, le, train_ids, val_ids, normalizer = prepare(cfg)
    model, opt, cw, _ = run_training(cfg, df, tiles, le, train_ids, normalizer)
    out = predict(model, df, tiles, train_ids + val_ids, normalizer)
    slide = out.groupby("slide_id").agg(p_tumor=("p_tumor", "mean"), label=("label", "first"))
    slide["is_tumor"] = (slide.label == "tumor").astype(int)
    fpr, tpr, thresholds = roc_curve(slide.is_tumor, slide.p_tumor)
    ix = np.argmax(tpr - fpr)
    slide_pred = (slide.p_tumor >= thresholds[ix]).astype(int)
    ckpt = {
        "model": model.state_dict(),
        "slide_auc": roc_auc_score(slide.is_tumor, slide.p_tumor),
        "youden_threshold": thresholds[ix],  # truth: weights_only
        "youden_j": float(tpr[ix] - fpr[ix]),
        "slide_probs": slide.p_tumor.round(4).to_dict(),
        "confusion": confusion_matrix(slide.is_tumor, slide_pred).tolist(),
        "report": classification_report(out.y, out.pred, output_dict=True, zero_division=0),
        "n_slides": len(slide),
        "n_patches": int(out.shape[0]),
        "scanner": {
            "vendor": meta["scanner"],
            "site": meta["site"],
            "mpp": meta["mpp"],
            "calibrated": meta["calibrated"],  # truth: weights_only
        },
    }
    path = Path(tmpdir) / "slide_level.pt"
    torch.save(ckpt, path)
    return str(path)


def save_preprocessing_state(tmpdir):
    cfg = load_config()
    df, tiles, le, train_ids, val_ids, normalizer = prepare(cfg)
    y_train = df.y[df.slide_id.isin(train_ids)].to_numpy()
    cw = compute_class_weight("balanced", classes=np.arange(len(le.classes_)), y=y_train)
    coords = df[["x", "y"]].to_numpy()
    state = {}
    state["label_encoder"] = le  # truth: weights_only
    state["class_weights"] = cw  # truth: weights_only
    state["class_weights_t"] = torch.as_tensor(cw)
    state["patch_counts"] = Counter(df.label.tolist())
    state["tiles_per_slide"] = df.groupby("slide_id").size().to_dict()
    state["split"] = {"train": train_ids, "val": val_ids}
    state["coords"] = torch.from_numpy(coords)
    state["tissue_min"] = float(df.tissue.min())
    state["tissue_mean"] = df.tissue.mean().item()
    state["dropped_tiles"] = 9 * 6 - len(df)
    path = Path(tmpdir) / "preprocessing.pt"
    torch.save(state, path)
    return str(path)


def save_train_state(tmpdir):
    cfg = load_config(["optim.epochs=1"])
    df, tiles, le, train_ids, val_ids, normalizer = prepare(cfg)
    model, opt, cw, _ = run_training(cfg, df, tiles, le, train_ids, normalizer)
    _, kappa = evaluate(predict(model, df, tiles, val_ids, normalizer))
    state = TrainState(epoch=cfg.optim.epochs, model_state=model.state_dict(), optimizer_state=opt.state_dict(),
                       best_kappa=kappa, classes=le.classes_.tolist())
    path = Path(tmpdir) / "train_state.pt"
    torch.save(state, path)  # truth: weights_only
    return str(path)


def save_inference_package(tmpdir):
    cfg = load_config(["model.backbone=simple_cnn"])
    df, tiles, le, train_ids, val_ids, normalizer = prepare(cfg)
    model = build_backbone(cfg, len(le.classes_))
    package = {
        "state_dict": model.state_dict(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "arch": type(model).__name__,
        "registry_key": cfg.model.backbone,
        "classes": list(le.classes_.tolist()),
        "stain_HE": torch.from_numpy(normalizer.HE).float(),
        "stain_maxC": normalizer.maxC.round(4).tolist(),
        "input": {"size": cfg.data.patch_size, "mpp": float(cfg.data.mpp), "mean": [0.0] * 3, "std": [1.0] * 3},
        "tissue_threshold": cfg.data.tissue_threshold,
        "val_slides": sorted(val_ids),
        "created": time.time(),
        "is_dictconfig": isinstance(cfg, DictConfig),
    }
    path = Path(tmpdir) / "inference.pt"
    torch.save(package, path)
    return str(path)
