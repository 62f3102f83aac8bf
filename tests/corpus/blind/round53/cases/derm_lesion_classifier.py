"""Dermoscopic lesion classification (HAM10000-style metadata, ISIC diagnosis codes).

Config-driven code: an OmegaConf YAML config, pandas metadata with one row per image and
several images per lesion (so folds are grouped by `lesion_id`), PIL images, a small CNN,
per-class sensitivity/specificity/AUC dicts filled in loops, temperature scaling with scipy
and a Youden threshold for the melanoma-vs-rest decision.
"""
import os
import time

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image, ImageDraw
from scipy.optimize import minimize_scalar
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score, roc_curve
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight

CONFIG_YAML = """
data:
  image_size: 32
  n_lesions: 48
  images_per_lesion: [1, 3]
  dx: [akiec, bcc, mel, nv]
  fold: 0
  n_folds: 3
aug:
  mean: [0.76, 0.55, 0.58]
  std: [0.14, 0.15, 0.17]
  p_flip: 0.5
model:
  arch: smallcnn
  width: 16
  dropout: 0.2
optim:
  name: adamw
  lr: 0.003
  weight_decay: 0.0001
train:
  epochs: 2
  batch_size: 16
  seed: 5
  run_name: ${model.arch}-f${data.fold}
"""

DX_COLORS = {"akiec": (170, 90, 80), "bcc": (200, 140, 150), "mel": (50, 30, 30), "nv": (120, 70, 50)}
SITES = ["back", "lower extremity", "trunk", "upper extremity", "face", "abdomen"]


def load_config(overrides=()):
    base = OmegaConf.create(CONFIG_YAML)
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


def synth_metadata(cfg):
    rng = np.random.default_rng(cfg.train.seed)
    rows = []
    for i in range(cfg.data.n_lesions):
        dx = cfg.data.dx[i % len(cfg.data.dx)]
        lo, hi = cfg.data.images_per_lesion
        for j in range(int(rng.integers(lo, hi + 1))):
            rows.append({
                "lesion_id": f"HAM_{i:07d}",
                "image_id": f"ISIC_{i * 10 + j:07d}",
                "dx": dx,
                "dx_type": "histo" if dx in ("mel", "bcc") else rng.choice(["follow_up", "consensus"]),
                "age": float(rng.integers(20, 85)) if rng.random() > 0.1 else np.nan,
                "sex": str(rng.choice(["male", "female"])),
                "localization": SITES[int(rng.integers(len(SITES)))],
                "fitzpatrick": int(rng.integers(1, 7)),
            })
    return pd.DataFrame(rows)


def render_lesion(dx, size, seed):
    rng = np.random.default_rng(seed)
    skin = tuple(int(c) for c in rng.integers(190, 236, 3))
    img = Image.new("RGB", (size, size), skin)
    draw = ImageDraw.Draw(img)
    r = size * (0.2 + 0.15 * rng.random())
    cx, cy = size / 2 + rng.normal(0, 2), size / 2 + rng.normal(0, 2)
    draw.ellipse([cx - r, cy - r * 0.8, cx + r, cy + r * 0.8], fill=DX_COLORS[dx])
    return img


def to_tensor(img, mean, std, flip=False):
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if flip:
        arr = arr[:, ::-1]
    arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


class SmallCNN(nn.Module):
    def __init__(self, n_classes=4, width=16, dropout=0.2):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * width, n_classes)

    def forward(self, x):
        return self.fc(self.drop(self.features(x).flatten(1)))


def build_data(cfg):
    meta = synth_metadata(cfg)
    le = LabelEncoder().fit(meta["dx"])
    y = le.transform(meta["dx"])
    images = [render_lesion(dx, cfg.data.image_size, k) for k, dx in enumerate(meta["dx"])]
    folds = list(GroupKFold(n_splits=cfg.data.n_folds).split(meta, y, groups=meta["lesion_id"]))
    tr, va = folds[cfg.data.fold]
    return meta, le, y, images, tr, va


def fit_fold(cfg, y, images, tr, va):
    torch.manual_seed(cfg.train.seed)
    rng = np.random.default_rng(cfg.train.seed)
    weights = compute_class_weight("balanced", classes=np.unique(y), y=y[tr])
    model = SmallCNN(len(weights), cfg.model.width, cfg.model.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    crit = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
    Xva = torch.stack([to_tensor(images[i], cfg.aug.mean, cfg.aug.std) for i in va])
    for epoch in range(cfg.train.epochs):
        model.train()
        order = rng.permutation(tr)
        for b in range(0, len(order), cfg.train.batch_size):
            idx = order[b:b + cfg.train.batch_size]
            xb = torch.stack([to_tensor(images[i], cfg.aug.mean, cfg.aug.std, rng.random() < cfg.aug.p_flip)
                              for i in idx])
            loss = crit(model(xb), torch.as_tensor(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        logits = model(Xva).numpy()
    return model, opt, weights, logits


def fit_temperature(logits, labels):
    def nll(T):
        z = logits / T
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -logp[np.arange(len(labels)), labels].mean()
    res = minimize_scalar(nll, bounds=(0.05, 10.0), method="bounded")
    return res, float(nll(1.0))


def expected_calibration_error(probs, labels, n_bins=10):
    conf, pred = probs.max(1), probs.argmax(1)
    ece = 0.0
    for lo in np.linspace(0, 1, n_bins, endpoint=False):
        m = (conf > lo) & (conf <= lo + 1.0 / n_bins)
        if m.any():
            ece += m.mean() * abs((pred[m] == labels[m]).mean() - conf[m].mean())
    return float(ece)


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def save_fold_model(tmpdir):
    cfg = load_config()
    meta, le, y, images, tr, va = build_data(cfg)
    model, opt, weights, logits = fit_fold(cfg, y, images, tr, va)
    probs, yv = softmax(logits), y[va]
    cm = confusion_matrix(yv, probs.argmax(1), labels=range(len(le.classes_)))
    per_class = {}
    for k, name in enumerate(le.classes_):
        tp, fn = cm[k, k], cm[k].sum() - cm[k, k]
        tn = cm.sum() - cm[k].sum() - cm[:, k].sum() + tp
        per_class[name] = {
            "sensitivity": tp / max(tp + fn, 1),  # truth: weights_only
            "specificity": int(tn) / max(int(cm.sum() - cm[k].sum()), 1),
            "auc": roc_auc_score(yv == k, probs[:, k]) if 0 < (yv == k).sum() < len(yv) else None,
            "support": int((yv == k).sum()),
        }
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "cfg": cfg,  # truth: weights_only
        "cfg_resolved": OmegaConf.to_container(cfg, resolve=True),
        "classes": list(le.classes_),
        "class_weights": weights,  # truth: weights_only
        "class_weight_tensor": torch.tensor(weights, dtype=torch.float32),
        "per_class": per_class,
        "balanced_acc": balanced_accuracy_score(yv, probs.argmax(1)),
        "confusion": cm.tolist(),
        "val_lesions": sorted(meta.iloc[va]["lesion_id"].unique()),
        "val_index": va.tolist(),
        "fold": cfg.data.fold,
    }
    path = os.path.join(tmpdir, f"{cfg.train.run_name}.pt")
    torch.save(ckpt, path)
    return path


def save_calibrated_model(tmpdir):
    cfg = load_config(["train.epochs=1"])
    meta, le, y, images, tr, va = build_data(cfg)
    model, _, _, logits = fit_fold(cfg, y, images, tr, va)
    yv = y[va]
    res, nll_before = fit_temperature(logits, yv)
    probs = softmax(logits / res.x)
    mel = list(le.classes_).index("mel")
    fpr, tpr, thr = roc_curve(yv == mel, probs[:, mel])
    best = np.argmax(tpr - fpr)
    ckpt = {"model": model.state_dict(), "classes": le.classes_.tolist()}
    ckpt["calibration"] = {
        "temperature": res.x,  # truth: weights_only
        "nll_before": nll_before,
        "nll_after": float(res.fun),
        "converged": bool(res.success),
        "ece_after": expected_calibration_error(probs, yv),
    }
    ckpt["mel_threshold"] = thr[best]  # truth: weights_only
    ckpt["mel_operating_point"] = {"tpr": float(tpr[best]), "fpr": float(fpr[best])}
    ckpt["mel_auc"] = roc_auc_score(yv == mel, probs[:, mel])
    ckpt["macro_auc_ovr"] = roc_auc_score(yv, probs, multi_class="ovr")
    path = os.path.join(tmpdir, "calibrated.pt")
    torch.save(ckpt, path)
    return path


def dataset_statistics(meta, images):
    pixels = np.concatenate([np.asarray(im, np.float32).reshape(-1, 3) / 255.0 for im in images])
    return {
        "mean": tuple(pixels.mean(0)),
        "std": pixels.std(0).tolist(),
        "age_median": float(meta["age"].median()),
        "age_missing": int(meta["age"].isna().sum()),
        "fitzpatrick": meta["fitzpatrick"].value_counts().sort_index().to_dict(),
        "dx_counts": meta["dx"].value_counts().to_dict(),
        "dx_types": meta["dx_type"].unique(),
        "sites": sorted(meta["localization"].unique()),
        "sex_by_dx": pd.crosstab(meta["dx"], meta["sex"]).to_dict(),
        "lesions": meta["lesion_id"].nunique(),
    }


def save_dataset_card(tmpdir):
    cfg = load_config()
    meta, le, y, images, tr, va = build_data(cfg)
    stats = dataset_statistics(meta, images)
    card = {"name": "ham-synth", "n_images": len(meta), "n_lesions": stats["lesions"]}
    card["pixel_mean"] = stats["mean"]  # truth: weights_only
    card["pixel_std"] = stats["std"]
    card["age_median"] = stats["age_median"]
    card["age_missing"] = stats["age_missing"]
    card["fitzpatrick_counts"] = stats["fitzpatrick"]
    card["dx_counts"] = stats["dx_counts"]
    card["dx_types"] = stats["dx_types"]  # truth: weights_only
    card["sites"] = stats["sites"]
    card["sex_by_dx"] = stats["sex_by_dx"]
    card["image_size"] = images[0].size
    card["image_mode"] = images[0].mode
    path = os.path.join(tmpdir, "dataset_card.pt")
    torch.save(card, path)
    return path


def save_swa_checkpoint(tmpdir):
    cfg = load_config(["train.epochs=1", "model.width=8"])
    meta, le, y, images, tr, va = build_data(cfg)
    model, opt, _, _ = fit_fold(cfg, y, images, tr, va)
    swa = torch.optim.swa_utils.AveragedModel(model)
    swa.update_parameters(model)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    ckpt = {
        "swa_model": swa,  # truth: weights_only
        "swa_state": swa.state_dict(),
        "n_averaged": int(swa.n_averaged),
        "scaler": scaler.state_dict(),
        "optim_cfg": dict(cfg.optim),
        "aug_mean": cfg.aug.mean,  # truth: weights_only
        "aug_std": list(cfg.aug.std),
        "p_flip": cfg.aug.p_flip,
        "input_shape": torch.Size([3, cfg.data.image_size, cfg.data.image_size]),
        "dtype": torch.float32,
    }
    path = os.path.join(tmpdir, "swa.pt")
    torch.save(ckpt, path)
    return path


def save_full_model(tmpdir):
    """Quick export used by the demo notebook: the whole module object."""
    cfg = load_config(["train.epochs=1"])
    meta, le, y, images, tr, va = build_data(cfg)
    model, *_ = fit_fold(cfg, y, images, tr, va)
    path = os.path.join(tmpdir, "lesion_cnn_full.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def save_inference_bundle(tmpdir):
    cfg = load_config(["train.epochs=1"])
    meta, le, y, images, tr, va = build_data(cfg)
    model, _, weights, logits = fit_fold(cfg, y, images, tr, va)
    res, _ = fit_temperature(logits, y[va])
    t0 = time.perf_counter()
    with torch.no_grad():
        model(torch.stack([to_tensor(images[0], cfg.aug.mean, cfg.aug.std)]))
    bundle = {
        "state_dict": model.state_dict(),
        "arch": OmegaConf.select(cfg, "model.arch"),
        "model_kwargs": OmegaConf.to_container(cfg.model),
        "normalize": {"mean": list(cfg.aug.mean), "std": tuple(cfg.aug.std)},
        "classes": le.classes_.tolist(),
        "temperature": float(res.x),
        "class_prior": (np.bincount(y) / len(y)).tolist(),
        "most_common_dx": meta["dx"].mode()[0],
        "latency_ms": (time.perf_counter() - t0) * 1e3,
        "run_name": cfg.train.run_name,
    }
    path = os.path.join(tmpdir, "inference_bundle.pt")
    torch.save(bundle, path)
    return path
