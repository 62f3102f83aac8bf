"""Tooth-structure and caries segmentation on panoramic dental X-rays.

Config lives in YAML (OmegaConf); the data here is a synthetic stand-in for panoramic crops: a row
of teeth (enamel shell, dentin, pulp chamber) with the occasional carious lesion.
Classes: 0 background, 1 enamel, 2 dentin, 3 pulp, 4 caries.
"""
import copy
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy import ndimage
from scipy.spatial.distance import directed_hausdorff
from sklearn.metrics import confusion_matrix, f1_score, jaccard_score
from sklearn.model_selection import train_test_split

CONFIG_YAML = """
experiment: dental_unet
seed: 13
data:
  image_size: [32, 64]
  classes: [background, enamel, dentin, pulp, caries]
  pixel_spacing_mm: 0.1
  n_train: 8
  n_val: 4
  augment:
    hflip: 0.5
    gamma: [0.8, 1.2]
    elastic: false
model:
  base_channels: 4
  dropout: 0.1
optim:
  lr: 0.003
  weight_decay: 0.0001
  epochs: 2
  batch_size: 4
loss:
  dice_weight: 0.5
  ce_weight: 0.5
postprocess:
  min_tooth_area: 12
  caries_threshold: 0.5
"""

# FDI two-digit notation, permanent dentition, upper right quadrant then upper left
FDI_UPPER = [18, 17, 16, 15, 14, 13, 12, 11, 21, 22, 23, 24, 25, 26, 27, 28]


def load_config(overrides=()):
    base = OmegaConf.create(CONFIG_YAML)
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


# ----------------------------------------------------------------------------- synthetic data

def synth_panoramic(n, size, rng, n_teeth=6, caries_p=0.4):
    h, w = size
    images = np.zeros((n, 1, h, w), np.float32)
    masks = np.zeros((n, h, w), np.int64)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        img = rng.normal(0.15, 0.03, (h, w))
        m = np.zeros((h, w), np.int64)
        step = w / n_teeth
        for t in range(n_teeth):
            cx, cy = step * (t + 0.5) + rng.uniform(-1, 1), h / 2 + rng.uniform(-2, 2)
            ax, ay = step * 0.38, h * 0.38
            r = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2
            m[r <= 1.0] = 1
            m[r <= 0.6] = 2
            m[r <= 0.15] = 3
            if rng.random() < caries_p:
                px, py = cx + rng.uniform(-ax / 2, ax / 2), cy - ay * 0.7
                m[((xx - px) ** 2 + (yy - py) ** 2 <= 4) & (m > 0)] = 4
        img += np.choose(m, [0.0, 0.75, 0.55, 0.25, 0.35])
        images[i, 0] = np.clip(img, 0, 1)
        masks[i] = m
    return images, masks


def exam_table(n, rng):
    df = pd.DataFrame({
        "image_id": [f"pan_{i:04d}" for i in range(n)],
        "patient_id": [f"P{rng.integers(0, n // 2):03d}" for _ in range(n)],
        "exam_date": pd.to_datetime("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
        "age": rng.integers(12, 80, n),
    })
    df["adult"] = df["age"] >= 18
    return df


# ----------------------------------------------------------------------------- model / loss

def conv_block(cin, cout, p):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Dropout2d(p), nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class TinyUNet(nn.Module):
    def __init__(self, in_ch=1, n_classes=5, base=8, dropout=0.1):
        super().__init__()
        self.enc1 = conv_block(in_ch, base, dropout)
        self.enc2 = conv_block(base, base * 2, dropout)
        self.mid = conv_block(base * 2, base * 4, dropout)
        self.up2 = nn.ConvTranspose2d(base * 4, base * 2, 2, stride=2)
        self.dec2 = conv_block(base * 4, base * 2, dropout)
        self.up1 = nn.ConvTranspose2d(base * 2, base, 2, stride=2)
        self.dec1 = conv_block(base * 2, base, dropout)
        self.head = nn.Conv2d(base, n_classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


class DiceCELoss(nn.Module):
    def __init__(self, dice_weight=0.5, ce_weight=0.5, eps=1e-5):
        super().__init__()
        self.dice_weight, self.ce_weight, self.eps = dice_weight, ce_weight, eps

    def forward(self, logits, target):
        ce = F.cross_entropy(logits, target)
        prob = logits.softmax(1)
        onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
        inter = (prob * onehot).sum((0, 2, 3))
        denom = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
        dice = 1 - ((2 * inter + self.eps) / (denom + self.eps))[1:].mean()
        return self.ce_weight * ce + self.dice_weight * dice


# ----------------------------------------------------------------------------- metrics

def dice_per_class(pred, target, n_classes):
    scores = np.full(n_classes, np.nan)
    for c in range(n_classes):
        p, t = pred == c, target == c
        denom = p.sum() + t.sum()
        if denom:
            scores[c] = 2.0 * np.logical_and(p, t).sum() / denom
    return scores, np.nanmean(scores[1:])


def hausdorff_mm(pred_mask, gt_mask, spacing_mm):
    a, b = np.argwhere(pred_mask), np.argwhere(gt_mask)
    if len(a) == 0 or len(b) == 0:
        return float("inf")
    return max(directed_hausdorff(a, b)[0], directed_hausdorff(b, a)[0]) * spacing_mm


def tooth_components(mask, min_area):
    teeth = mask > 0
    labels, n = ndimage.label(teeth)
    areas = ndimage.sum_labels(teeth, labels, index=range(1, n + 1))
    keep = [i + 1 for i, a in enumerate(areas) if a >= min_area]
    return labels, n, areas, keep


def assign_fdi(centroids, quadrant_start=0):
    order = np.argsort([c[1] for c in centroids])
    return {int(k) + 1: FDI_UPPER[quadrant_start + rank] for rank, k in enumerate(order)}


def median_frequency_weights(masks, n_classes):
    counts = np.bincount(masks.ravel(), minlength=n_classes).astype(np.float64)
    freq = counts / counts.sum()
    med = np.median(freq)
    return freq, med, med / np.maximum(freq, 1e-8)


# ----------------------------------------------------------------------------- trainer

class SegTrainer:
    def __init__(self, cfg, model):
        self.cfg = cfg
        self.model = model
        self.criterion = DiceCELoss(cfg.loss.dice_weight, cfg.loss.ce_weight)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.optim.epochs)
        self.history = defaultdict(list)
        self.best_dice = -1.0
        self.best_epoch = None
        self.last_loss = None
        self.epoch = 0

    def _augment(self, x, y, rng):
        if rng.random() < self.cfg.data.augment.hflip:
            x, y = x.flip(-1), y.flip(-1)
        lo, hi = self.cfg.data.augment.gamma
        return x.clamp_min(1e-6) ** rng.uniform(lo, hi), y

    def train_epoch(self, images, masks, rng):
        self.model.train()
        bs = self.cfg.optim.batch_size
        losses = []
        for s in range(0, len(images), bs):
            x, y = torch.from_numpy(images[s:s + bs]), torch.from_numpy(masks[s:s + bs])
            x, y = self._augment(x, y, rng)
            loss = self.criterion(self.model(x), y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        self.scheduler.step()
        self.last_loss = float(np.mean(losses))
        return self.last_loss

    @torch.no_grad()
    def predict(self, images):
        self.model.eval()
        return self.model(torch.from_numpy(images)).argmax(1).numpy()

    def validate(self, images, masks):
        pred = self.predict(images)
        n_classes = len(self.cfg.data.classes)
        per_class, mean_fg = dice_per_class(pred, masks, n_classes)
        return {"dice": mean_fg, "per_class": per_class, "pred": pred}

    def fit(self, train, val, rng):
        for _ in range(self.cfg.optim.epochs):
            loss = self.train_epoch(*train, rng)
            res = self.validate(*val)
            self.history["train_loss"].append(loss)
            self.history["val_dice"].append(res["dice"])
            if res["dice"] > self.best_dice:
                self.best_dice, self.best_epoch = res["dice"], self.epoch
            self.epoch += 1
        return res

    def save(self, path, **extra):
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_epoch": self.best_epoch,
            **extra,
        }
        torch.save(state, path)
        return path


def build_run(overrides=()):
    cfg = load_config(overrides)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    size = tuple(cfg.data.image_size)
    train = synth_panoramic(cfg.data.n_train, size, rng)
    val = synth_panoramic(cfg.data.n_val, size, rng)
    model = TinyUNet(n_classes=len(cfg.data.classes), base=cfg.model.base_channels, dropout=cfg.model.dropout)
    return cfg, SegTrainer(cfg, model), train, val, rng


# ----------------------------------------------------------------------------- checkpoints

def save_unet_with_config(tmpdir):
    cfg = load_config(["optim.lr=0.001", "model.base_channels=4"])
    model = TinyUNet(n_classes=len(cfg.data.classes), base=cfg.model.base_channels)
    ckpt = {
        "state_dict": model.state_dict(),
        "cfg": cfg,  # truth: weights_only
        "cfg_yaml": OmegaConf.to_yaml(cfg),
        "cfg_resolved": OmegaConf.to_container(cfg, resolve=True),
        "classes": list(cfg.data.classes),
        "image_size": tuple(cfg.data.image_size),
        "optim": dict(cfg.optim),
        "augment": cfg.data.augment,  # truth: weights_only
        "spacing_mm": cfg.data.pixel_spacing_mm,
        "min_tooth_area": OmegaConf.select(cfg, "postprocess.min_tooth_area"),
    }
    path = str(Path(tmpdir) / "unet_cfg.pt")
    torch.save(ckpt, path)
    return path


def save_best_trainer(tmpdir):
    cfg, trainer, train, val, rng = build_run(["optim.epochs=2"])
    res = trainer.fit(train, val, rng)
    extra = dict(
        best_dice=trainer.best_dice,  # truth: weights_only
        val_dice=float(res["dice"]),
        per_class_dice=[None if np.isnan(d) else float(d) for d in res["per_class"]],
        train_loss=trainer.last_loss,
        history=trainer.history,  # truth: weights_only
        lr=trainer.scheduler.get_last_lr()[0],
        classes=list(cfg.data.classes),
    )
    path = str(Path(tmpdir) / "best.pt")
    return trainer.save(path, **extra)


def save_postprocess_stats(tmpdir):
    cfg = load_config()
    rng = np.random.default_rng(4)
    _, masks = synth_panoramic(1, tuple(cfg.data.image_size), rng, n_teeth=5)
    mask = masks[0]
    labels, n, areas, keep = tooth_components(mask, cfg.postprocess.min_tooth_area)
    centroids = ndimage.center_of_mass(mask > 0, labels, keep)
    boxes = ndimage.find_objects(labels)
    noisy = np.roll(mask, 1, axis=1)
    hd = hausdorff_mm(noisy == 4, mask == 4, cfg.data.pixel_spacing_mm)
    fdi = assign_fdi(centroids, quadrant_start=8)
    stats = {"n_components": n, "n_teeth": len(keep)}
    stats["areas_px"] = areas  # truth: weights_only
    stats["min_area_px"] = int(np.percentile(areas, 5))
    stats["mean_area_mm2"] = float(areas.mean()) * cfg.data.pixel_spacing_mm ** 2
    stats["centroids"] = centroids  # truth: weights_only
    stats["centroids_px"] = [tuple(float(v) for v in c) for c in centroids]
    stats["boxes"] = boxes  # truth: weights_only
    stats["boxes_px"] = [(b[0].start, b[0].stop, b[1].start, b[1].stop) for b in boxes]
    stats["caries_hd_mm"] = hd
    stats["fdi"] = fdi
    stats["missing_fdi"] = set(FDI_UPPER[8:]) - set(fdi.values())
    path = str(Path(tmpdir) / "postprocess.pt")
    torch.save(stats, path)
    return path


def save_class_balance(tmpdir):
    cfg = load_config()
    rng = np.random.default_rng(8)
    _, masks = synth_panoramic(12, tuple(cfg.data.image_size), rng)
    exams = exam_table(12, rng)
    freq, med, weights = median_frequency_weights(masks, len(cfg.data.classes))
    exams["caries_px"] = (masks == 4).reshape(len(masks), -1).sum(1)
    exams["has_caries"] = exams["caries_px"] > 0
    train_ids, val_ids = train_test_split(exams["image_id"].tolist(), test_size=0.25, random_state=0)
    balance = {}
    balance.update({
        "pixel_freq": freq,  # truth: weights_only
        "median_freq": med,  # truth: weights_only
        "class_weights": torch.tensor(weights, dtype=torch.float32),
        "train_ids": train_ids,
        "val_ids": val_ids,
        "patients": exams["patient_id"].unique(),  # truth: weights_only
        "n_patients": exams["patient_id"].nunique(),
        "caries_rate": float(exams["has_caries"].mean()),
        "caries_px_by_adult": exams.groupby("adult")["caries_px"].sum().to_dict(),
        "first_exam": exams["exam_date"].min().date().isoformat(),
        "age_range": (int(exams["age"].min()), int(exams["age"].max())),
    })
    path = str(Path(tmpdir) / "class_balance.pt")
    torch.save(balance, path)
    return path


def save_ema_eval(tmpdir):
    cfg, trainer, train, val, rng = build_run(["optim.epochs=1", "data.n_train=4"])
    trainer.fit(train, val, rng)
    ema = copy.deepcopy(trainer.model)
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), trainer.model.parameters()):
            pe.mul_(0.9).add_(pm, alpha=0.1)
    pred = trainer.predict(val[0]).ravel()
    gt = val[1].ravel()
    labels = list(range(len(cfg.data.classes)))
    cm = confusion_matrix(gt, pred, labels=labels)
    ckpt = {
        "model": trainer.model.state_dict(),
        "ema": ema,  # truth: weights_only
        "ema_state": ema.state_dict(),
        "ema_decay": 0.9,
        "confusion": cm.tolist(),
        "support": cm.sum(axis=1).tolist(),
        "f1_macro": f1_score(gt, pred, labels=labels, average="macro", zero_division=0),
        "jaccard_per_class": jaccard_score(gt, pred, labels=labels, average=None, zero_division=0),  # truth: weights_only
        "jaccard_macro": jaccard_score(gt, pred, labels=labels, average="macro", zero_division=0),
        "pixel_acc": float((gt == pred).mean()),
    }
    path = str(Path(tmpdir) / "ema_eval.pt")
    torch.save(ckpt, path)
    return path


def save_inference_export(tmpdir):
    cfg, trainer, train, val, rng = build_run(["optim.epochs=1", "data.n_train=4", "data.n_val=2"])
    trainer.train_epoch(*train, rng)
    res = trainer.validate(*val)
    thresholds = {c: 0.5 for c in range(1, len(cfg.data.classes))}
    thresholds[4] = float(cfg.postprocess.caries_threshold)
    export = {
        "model": trainer.model.state_dict(),
        "arch": {"in_ch": 1, "n_classes": len(cfg.data.classes), "base": int(cfg.model.base_channels)},
        "input_size": tuple(cfg.data.image_size),
        "dtype": torch.float32,
        "thresholds": thresholds,
        "val_dice": round(float(res["dice"]), 4),
        "spacing_mm": float(cfg.data.pixel_spacing_mm),
        "fdi_upper": FDI_UPPER,
        "exported_at": time.time(),
        "torch": str(torch.__version__),
    }
    path = str(Path(tmpdir) / "export.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "SegTrainer": lambda: SegTrainer(load_config(), TinyUNet(base=4)),
}
