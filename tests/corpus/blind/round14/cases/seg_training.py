"""3D U-Net-ish segmentation training bookkeeping (nnU-Net / MONAI style), cut down to CPU size."""
import enum
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.model_selection import KFold

DATA_ROOT = Path(os.environ.get("SEG_DATA_ROOT", "/data/Task02_Heart"))


class Modality(enum.Enum):
    CT = "CT"
    MRI = "MRI"


NOT_BUILT = {"Modality": "an Enum: its members are the values, it has no no-argument constructor"}


@dataclass
class FoldConfig:
    fold: int = 0
    n_folds: int = 5
    seed: int = 12345
    patch_size: tuple = (16, 16, 16)
    batch_size: int = 2
    modality: str = "CT"
    label_names: list = field(default_factory=lambda: ["background", "left_atrium"])


class TinyUNet(nn.Module):
    def __init__(self, in_ch=1, n_classes=2, base=4):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv3d(in_ch, base, 3, padding=1), nn.InstanceNorm3d(base), nn.LeakyReLU())
        self.head = nn.Conv3d(base, n_classes, 1)

    def forward(self, x):
        return self.head(self.enc(x))


class DiceCELoss(nn.Module):
    def __init__(self, smooth=1e-5, ce_weight=1.0):
        super().__init__()
        self.smooth = smooth
        self.ce_weight = ce_weight
        self.ce = nn.CrossEntropyLoss()

    def forward(self, logits, target):
        probs = logits.softmax(1)
        onehot = nn.functional.one_hot(target, probs.shape[1]).permute(0, 4, 1, 2, 3).float()
        inter = (probs * onehot).sum((2, 3, 4))
        denom = probs.sum((2, 3, 4)) + onehot.sum((2, 3, 4))
        dice = (2 * inter + self.smooth) / (denom + self.smooth)
        return self.ce_weight * self.ce(logits, target) + (1 - dice.mean())


def patient_ids(n=10):
    return [f"la_{i:03d}" for i in range(n)]


def read_spacings(ids, seed=0):
    """Stand-in for reading NIfTI headers: one (z, y, x) spacing per patient."""
    rng = np.random.default_rng(seed)
    return {pid: np.round(rng.uniform([1.0, 0.6, 0.6], [2.5, 0.8, 0.8]), 3) for pid in ids}


def dice_per_class(pred, gt, n_classes):
    scores = []
    for c in range(1, n_classes):
        p, g = pred == c, gt == c
        denom = p.sum() + g.sum()
        scores.append(2.0 * np.logical_and(p, g).sum() / denom if denom else 1.0)
    return np.asarray(scores)


def iou(pred, gt):
    inter = np.logical_and(pred > 0, gt > 0).sum()
    union = np.logical_or(pred > 0, gt > 0).sum()
    return inter / max(union, 1)


def make_folds(ids, cfg):
    kf = KFold(n_splits=cfg.n_folds, shuffle=True, random_state=cfg.seed)
    return list(kf.split(ids))


def poly_lr(epoch, max_epochs=10, exponent=0.9):
    return (1 - epoch / max_epochs) ** exponent


def train_steps(model, loss_fn, optimizer, scheduler, steps=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(1, 1, 8, 8, 8, generator=g)
        y = torch.randint(0, 2, (1, 8, 8, 8), generator=g)
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return loss.item()


def validate(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 1, 8, 8, 8, generator=g)
    gt = torch.randint(0, 2, (2, 8, 8, 8), generator=g).numpy()
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    return pred, gt


def save_fold_checkpoint(tmpdir):
    cfg = FoldConfig(fold=1)
    ids = patient_ids()
    train_idx, val_idx = make_folds(ids, cfg)[cfg.fold]
    spacings = read_spacings(ids)
    target_spacing = np.median(np.stack(list(spacings.values())), axis=0)
    model = TinyUNet()
    ckpt = {
        "fold": cfg.fold,
        "state_dict": model.state_dict(),
        "config": asdict(cfg),
        "fold_config": cfg,  # truth: weights_only
        "train_ids": [ids[i] for i in train_idx],
        "val_ids": list(np.array(ids)[val_idx]),  # truth: weights_only
        "val_idx": val_idx.tolist(),
        "target_spacing": tuple(target_spacing.tolist()),
        "median_spacing": torch.as_tensor(target_spacing),
        "first_spacing": tuple(spacings[ids[0]]),  # truth: weights_only
    }
    path = os.path.join(tmpdir, f"fold{cfg.fold}.pth")
    torch.save(ckpt, path)
    return path


def save_best_dice(tmpdir):
    cfg = FoldConfig()
    model = TinyUNet(n_classes=3)
    pred, gt = validate(model)
    dice = dice_per_class(pred, gt, 3)
    best = {"epoch": 0, "dice": -1.0}
    mean_dice = dice.mean()
    if mean_dice > best["dice"]:
        best = {"epoch": 3, "dice": float(mean_dice)}
    checkpoint = dict(
        network_weights=model.state_dict(),
        best_epoch=best["epoch"],
        best_ema_dice=best["dice"],
        dice_per_class=dice,  # truth: weights_only
        dice_per_class_list=[round(float(d), 4) for d in dice],
        foreground_iou=iou(pred, gt).item(),
        improved=mean_dice > 0,  # truth: weights_only
        labels=cfg.label_names,
    )
    path = os.path.join(tmpdir, "checkpoint_best.pth")
    torch.save(checkpoint, path)
    return path


def save_training_state(tmpdir):
    cfg = FoldConfig(batch_size=1)
    model = TinyUNet()
    loss_fn = DiceCELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: poly_lr(e))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    last_loss = train_steps(model, loss_fn, optimizer, scheduler)
    state = {}
    state["network_weights"] = model.state_dict()
    state["optimizer_state"] = optimizer.state_dict()
    state["lr_scheduler"] = scheduler.state_dict()
    state["grad_scaler_state"] = scaler.state_dict()
    state["loss"] = loss_fn  # truth: weights_only
    state["train_loss"] = last_loss
    state["current_lr"] = scheduler.get_last_lr()[0]
    state["init_args"] = {
        "plans_identifier": "nnUNetPlans",
        "dataset_dir": str(DATA_ROOT),
        "preprocessed_dir": DATA_ROOT / "preprocessed",  # truth: weights_only
        "modality": Modality(cfg.modality),  # truth: weights_only
        "modality_name": Modality.MRI.value,
    }
    state["timestamp"] = datetime.now().isoformat(timespec="seconds")
    path = os.path.join(tmpdir, "checkpoint_latest.pth")
    torch.save(state, path)
    return path


def save_per_patient_metrics(tmpdir):
    ids = patient_ids(6)
    model = TinyUNet()
    per_patient = defaultdict(dict)
    for k, pid in enumerate(ids):
        pred, gt = validate(model, seed=k)
        per_patient[pid]["dice"] = float(dice_per_class(pred, gt, 2).mean())
        per_patient[pid]["iou"] = float(iou(pred, gt))
    df = pd.DataFrame.from_dict(per_patient, orient="index")
    summary = {"n_cases": len(df)}
    summary.update(
        mean_dice=df["dice"].mean(),  # truth: weights_only
        std_dice=float(df["dice"].std()),
        worst_case=str(df["dice"].idxmin()),
    )
    path = os.path.join(tmpdir, "summary.pth")
    torch.save({
        "state_dict": model.state_dict(),
        "summary": summary,
        "per_patient": per_patient,  # truth: weights_only
        "per_patient_plain": dict(per_patient),
        "records": df.reset_index().to_dict("records"),
        "created": datetime.now(),  # truth: weights_only
    }, path)
    return path


def save_export_weights(tmpdir):
    cfg = FoldConfig(fold=2)
    model = TinyUNet()
    spacing = read_spacings(patient_ids(3))["la_000"]
    export = {
        "state_dict": model.state_dict(),
        "spacing": [float(s) for s in spacing],
        "patch_size": list(cfg.patch_size),
        "data_root": str(DATA_ROOT),
        "fold": cfg.fold,
        "modality": Modality.CT.value,
        "exported_at": datetime.now().strftime("%Y%m%d-%H%M%S"),
    }
    path = os.path.join(tmpdir, "export.pth")
    torch.save(export, path)
    return path
