"""Semantic segmentation of coral reef survey imagery (photo-quadrat tiles).

Structured config (dataclasses) merged with a YAML override, a model registry and a loss
registry, a trainer class with an EMA copy of the weights.  Tiles and masks are synthesised
per survey site so this runs without the orthomosaics.
"""
import functools
import os
import time
from dataclasses import dataclass, field
from typing import List

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy.stats import spearmanr
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset

CLASSES = ["background", "hard_coral", "soft_coral", "bleached_coral", "macroalgae", "sand", "rubble"]
CORAL = [1, 2, 3]
PALETTE = np.array([[0, 0, 0], [255, 127, 80], [218, 112, 214], [245, 245, 245],
                    [34, 139, 34], [238, 214, 175], [128, 128, 128]], dtype=np.uint8)
IGNORE_INDEX = np.iinfo(np.uint8).max
SITES = ["heron_n", "heron_s", "lizard_e", "moorea_lagoon"]


# ------------------------------------------------------------------ config

@dataclass
class DataConfig:
    tile_size: int = 32
    tiles_per_site: int = 12
    classes: List[str] = field(default_factory=lambda: list(CLASSES))
    val_site: str = "moorea_lagoon"
    batch_size: int = 8


@dataclass
class ModelConfig:
    name: str = "tiny_unet"
    width: int = 8


@dataclass
class TrainConfig:
    epochs: int = 2
    lr: float = 1e-3
    weight_decay: float = 1e-4
    loss: str = "ce_dice"
    dice_weight: float = 0.5
    ema_decay: float = 0.9


@dataclass
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 3
    run_name: str = "reefseg-${model.name}-w${model.width}"


OVERRIDES = """
model:
  width: 8
train:
  epochs: 2
  lr: 0.002
  loss: ce_dice
"""


def load_config(overrides=OVERRIDES):
    base = OmegaConf.structured(ExperimentConfig)
    return OmegaConf.merge(base, OmegaConf.create(overrides))


# ------------------------------------------------------------------ registries

MODELS = {}
LOSSES = {}


def register(table, name):
    def deco(obj):
        table[name] = obj
        return obj
    return deco


def conv_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@register(MODELS, "tiny_unet")
class TinyUNet(nn.Module):
    def __init__(self, num_classes=len(CLASSES), width=8):
        super().__init__()
        self.enc1, self.enc2 = conv_block(3, width), conv_block(width, 2 * width)
        self.mid = conv_block(2 * width, 2 * width)
        self.dec = conv_block(3 * width, width)
        self.out = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = F.interpolate(self.mid(e2), scale_factor=2, mode="bilinear", align_corners=False)
        return self.out(self.dec(torch.cat([m, e1], dim=1)))


@register(LOSSES, "ce_dice")
class CEDiceLoss(nn.Module):
    def __init__(self, weight=None, ignore_index=255, dice_weight=0.5):
        super().__init__()
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.dice_weight = dice_weight

    def forward(self, logits, target):
        ce = F.cross_entropy(logits, target, weight=self.weight, ignore_index=self.ignore_index)
        valid = (target != self.ignore_index)
        probs = logits.softmax(1) * valid[:, None]
        onehot = F.one_hot(target.clamp_max(logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2) * valid[:, None]
        inter = (probs * onehot).sum((0, 2, 3))
        dice = 1 - (2 * inter + 1) / (probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)
        return ce + self.dice_weight * dice.mean()


register(LOSSES, "ce")(nn.CrossEntropyLoss)


def build_model(mcfg, num_classes):
    return MODELS[mcfg.name](num_classes=num_classes, width=mcfg.width)


def build_loss(name, **kw):
    cls = LOSSES[name]
    if cls is nn.CrossEntropyLoss:
        kw.pop("dice_weight", None)
    return cls(**kw)


def ema_update(avg, new, num_averaged, decay):
    return decay * avg + (1.0 - decay) * new


# ------------------------------------------------------------------ data

def synth_survey(dcfg, seed=0):
    rng = np.random.default_rng(seed)
    images, masks, meta = [], [], []
    for s, site in enumerate(SITES):
        for k in range(dcfg.tiles_per_site):
            mask = rng.choice(len(CLASSES), size=(dcfg.tile_size, dcfg.tile_size),
                              p=[.2, .25, .1, .05, .15, .15, .1]).astype(np.int64)
            mask[rng.random(mask.shape) < 0.02] = IGNORE_INDEX
            img = PALETTE[np.minimum(mask, len(CLASSES) - 1)].astype(np.float32) / 255.0
            img += rng.normal(0, 0.1, img.shape).astype(np.float32)
            images.append(img.transpose(2, 0, 1))
            masks.append(mask)
            meta.append({"site": site, "tile": k, "depth_m": float(rng.uniform(2, 12)),
                         "survey": f"20{18 + s}-0{1 + k % 9}-15"})
    return np.stack(images), np.stack(masks), pd.DataFrame(meta)


class ReefTiles(Dataset):
    def __init__(self, images=None, masks=None, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)):
        self.images = images if images is not None else np.zeros((1, 3, 8, 8), np.float32)
        self.masks = masks if masks is not None else np.zeros((1, 8, 8), np.int64)
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = (torch.from_numpy(self.images[i]) - self.mean) / self.std
        return x, torch.from_numpy(self.masks[i])


def channel_stats(images):
    return images.mean(axis=(0, 2, 3)), images.std(axis=(0, 2, 3))


def pixel_frequencies(masks):
    counts = np.bincount(masks[masks != IGNORE_INDEX].ravel(), minlength=len(CLASSES))
    return counts / counts.sum()


def enet_weights(freq, c=1.02):
    return 1.0 / np.log(c + freq)


def iou_from_confmat(cm):
    cm = cm.numpy().astype(np.float64)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


# ------------------------------------------------------------------ trainer

class SegmentationTrainer:
    def __init__(self, cfg, class_weights=None):
        self.cfg = cfg
        self.num_classes = len(cfg.data.classes)
        self.model = build_model(cfg.model, self.num_classes)
        self.criterion = build_loss(cfg.train.loss, weight=class_weights, ignore_index=IGNORE_INDEX,
                                    dice_weight=cfg.train.dice_weight)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr,
                                           weight_decay=cfg.train.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.train.epochs)
        self.ema = AveragedModel(self.model, avg_fn=functools.partial(ema_update, decay=cfg.train.ema_decay))
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)
        self.epoch = 0
        self.miou_history = []

    def fit_epoch(self, loader):
        self.model.train()
        total = 0.0
        for x, y in loader:
            loss = self.criterion(self.model(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.ema.update_parameters(self.model)
            total += loss.item() * len(x)
        self.scheduler.step()
        self.epoch += 1
        return total / len(loader.dataset)

    @torch.no_grad()
    def predict(self, loader, use_ema=True):
        net = self.ema.module if use_ema else self.model
        net.eval()
        return torch.cat([net(x).argmax(1) for x, _ in loader])

    @torch.no_grad()
    def validate(self, loader, use_ema=True):
        pred = self.predict(loader, use_ema)
        target = torch.cat([y for _, y in loader])
        keep = target != IGNORE_INDEX
        cm = torch.bincount(target[keep] * self.num_classes + pred[keep],
                            minlength=self.num_classes ** 2).reshape(self.num_classes, self.num_classes)
        ious = iou_from_confmat(cm)
        miou = np.nanmean(ious)
        self.miou_history.append(miou)
        return miou, ious, cm

    def checkpoint(self):
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "ema_model": self.ema.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "miou_history": [float(m) for m in self.miou_history],
        }


FACTORIES = {
    "SegmentationTrainer": lambda: SegmentationTrainer(load_config()),
}


def run(cfg, epochs=None):
    torch.manual_seed(cfg.seed)
    images, masks, meta = synth_survey(cfg.data, seed=cfg.seed)
    val = (meta.site == cfg.data.val_site).to_numpy()
    mean, std = channel_stats(images[~val])
    freq = pixel_frequencies(masks[~val])
    weights = torch.as_tensor(enet_weights(freq), dtype=torch.float32)
    train_ds = ReefTiles(images[~val], masks[~val], tuple(mean.tolist()), tuple(std.tolist()))
    val_ds = ReefTiles(images[val], masks[val], tuple(mean.tolist()), tuple(std.tolist()))
    train_dl = DataLoader(train_ds, batch_size=cfg.data.batch_size, shuffle=True)
    val_dl = DataLoader(val_ds, batch_size=cfg.data.batch_size)
    trainer = SegmentationTrainer(cfg, class_weights=weights)
    for _ in range(epochs or cfg.train.epochs):
        trainer.fit_epoch(train_dl)
        trainer.validate(val_dl)
    stats = {"mean": mean, "std": std, "freq": freq}
    return trainer, (train_dl, val_dl), stats, (images, masks, meta)


def save_reef_best(tmpdir):
    cfg = load_config()
    trainer, (_, val_dl), stats, _ = run(cfg)
    miou, ious, _ = trainer.validate(val_dl)
    scores = trainer.miou_history
    ckpt = {
        "cfg": OmegaConf.to_container(cfg, resolve=True),
        "run_name": cfg.run_name,
        "data_cfg": cfg.data,  # truth: weights_only
        "classes": cfg.data.classes,  # truth: weights_only
        "class_names": list(cfg.data.classes),
        "palette": PALETTE.tolist(),
        "model": trainer.ema.module.state_dict(),
        "best_miou": max(scores),  # truth: weights_only
        "best_epoch": scores.index(max(scores)),
        "per_class_iou": dict(zip(CLASSES, ious.tolist())),
        "norm": {
            "mean": tuple(stats["mean"]),  # truth: weights_only
            "std": tuple(stats["std"].tolist()),
        },
    }
    path = os.path.join(tmpdir, "reef_best.pth")
    torch.save(ckpt, path)
    return path


def save_reef_resume(tmpdir):
    cfg = load_config()
    trainer, _, stats, _ = run(cfg, epochs=1)
    state = trainer.checkpoint()
    state["ema"] = trainer.ema  # truth: weights_only
    state["scaler"] = trainer.scaler.state_dict()
    state["loss_fn"] = trainer.criterion  # truth: weights_only
    state["class_weights"] = trainer.criterion.weight
    state["pixel_freq"] = stats["freq"]  # truth: weights_only
    state["ignore_index"] = IGNORE_INDEX
    state["rng"] = torch.get_rng_state()
    state["timestamp"] = time.localtime()  # truth: weights_only
    state["saved"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    path = os.path.join(tmpdir, "reef_last.pth")
    torch.save(state, path)
    return path


def save_cover_validation(tmpdir):
    """Percent coral cover per tile (what the monitoring programme reports) vs. the annotations."""
    cfg = load_config()
    trainer, (_, val_dl), _, (images, masks, meta) = run(cfg, epochs=1)
    miou, ious, cm = trainer.validate(val_dl)
    pred = trainer.predict(val_dl).numpy()
    true = masks[(meta.site == cfg.data.val_site).to_numpy()]
    pred_cover = np.isin(pred, CORAL).mean(axis=(1, 2))
    true_cover = np.isin(true, CORAL).mean(axis=(1, 2))
    res = spearmanr(pred_cover, true_cover)
    by_site = {}
    for site, grp in meta.groupby("site"):
        by_site[site] = float(np.isin(masks[grp.index.to_numpy()], CORAL).mean())
    report = {
        "miou": float(miou),
        "confmat": cm,
        "cover_spearman": res.statistic,  # truth: weights_only
        "cover_pvalue": float(res.pvalue),
        "cover_mae": np.abs(pred_cover - true_cover).mean(),  # truth: weights_only
        "cover_by_site": by_site,
        "n_val_tiles": int(len(true)),
        "tile_shape": images.shape[1:],
        "image_dtype": images.dtype,  # truth: weights_only
        "mask_dtype": str(masks.dtype),
        "depth_range_m": [float(meta.depth_m.min()), float(meta.depth_m.max())],
        "surveys": sorted(meta.survey.unique().tolist()),
    }
    path = os.path.join(tmpdir, "cover_validation.pt")
    torch.save(report, path)
    return path


def save_reef_export(tmpdir):
    """Inference package for the survey team's labelling tool."""
    cfg = load_config()
    trainer, _, stats, _ = run(cfg, epochs=1)
    export = dict(
        weights=trainer.ema.module.state_dict(),
        arch=type(trainer.model).__name__,
        model_name=cfg.model.name,
        width=cfg.model.width,
        num_classes=trainer.num_classes,
        classes=list(CLASSES),
        palette=torch.from_numpy(PALETTE),
        ignore_index=IGNORE_INDEX,
        mean=[float(m) for m in stats["mean"]],
        std=stats["std"].tolist(),
        tile_size=cfg.data.tile_size,
        registry=sorted(MODELS),
        train_cfg=OmegaConf.to_container(cfg.train),
    )
    path = os.path.join(tmpdir, "reef_export.pt")
    torch.save(export, path)
    return path
