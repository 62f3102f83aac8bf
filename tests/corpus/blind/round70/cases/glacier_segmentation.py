"""Glacier / rock / ocean segmentation of Sentinel-2 tiles with a small U-Net.

Models and losses are looked up in registries by the names in the YAML run config, so sweeps only
edit YAML.  Tiles are 4-band (B2, B3, B4, B8) reflectance crops around marine-terminating
glaciers; the calving front is the boundary between class 1 (glacier) and class 3 (ocean).
"""
import copy
import datetime as dt
import enum
import json
import statistics
import time
from collections import Counter
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

RUN_YAML = """
run: glacier-unet-s2
data:
  bands: [B2, B3, B4, B8]
  tile: 32
  n_tiles: 48
  acquired_after: 2019-06-01
  ignore_index: 255
model:
  name: unet
  base: 8
  depth: 2
loss:
  name: dice_ce
  dice_weight: 0.5
optim:
  lr: 1e-3
  weight_decay: 0.0001
  epochs: 2
  batch_size: 8
"""

CLASSES = ("background", "glacier", "rock", "ocean")
MODELS, LOSSES = {}, {}


def register(table, name):
    def deco(obj):
        table[name] = obj
        return obj
    return deco


class Sensor(str, enum.Enum):
    SENTINEL2 = "sentinel-2"
    LANDSAT8 = "landsat-8"


class Bounds(NamedTuple):
    left: float
    bottom: float
    right: float
    top: float
    crs: str


def load_config(text=RUN_YAML):
    return yaml.safe_load(text)


def conv_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@register(MODELS, "unet")
class UNet(nn.Module):
    def __init__(self, in_channels=4, num_classes=len(CLASSES), base=8, depth=2):
        super().__init__()
        chans = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([conv_block(in_channels, chans[0])] +
                                  [conv_block(chans[i], chans[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth))])
        self.dec = nn.ModuleList([conv_block(chans[i] * 2, chans[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], num_classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


@register(LOSSES, "dice_ce")
class DiceCELoss(nn.Module):
    def __init__(self, dice_weight=0.5, ignore_index=255, eps=1.0):
        super().__init__()
        self.dice_weight = dice_weight
        self.ignore_index = ignore_index
        self.eps = eps

    def forward(self, logits, target):
        ce = F.cross_entropy(logits, target, ignore_index=self.ignore_index)
        valid = (target != self.ignore_index).unsqueeze(1)
        onehot = F.one_hot(target.clamp(max=logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2)
        probs = logits.softmax(1) * valid
        inter = (probs * onehot * valid).sum((0, 2, 3))
        denom = probs.sum((0, 2, 3)) + (onehot * valid).sum((0, 2, 3))
        dice = 1 - ((2 * inter + self.eps) / (denom + self.eps)).mean()
        return (1 - self.dice_weight) * ce + self.dice_weight * dice


def build(table, spec, **extra):
    spec = dict(spec)
    return table[spec.pop("name")](**spec, **extra)


def synthetic_tiles(n, tile, n_bands=4, seed=3):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:tile, 0:tile]
    masks = np.zeros((n, tile, tile), dtype=np.int64)
    for k in range(n):
        front = rng.integers(tile // 4, 3 * tile // 4)
        masks[k][xx < front] = 1
        masks[k][xx >= front] = 3
        masks[k][(yy < 4) & (xx < front)] = 2
        masks[k][rng.random((tile, tile)) < 0.01] = 255
    refl = np.array([0.55, 0.25, 0.12, 0.05])[masks.clip(max=3)]
    tiles = (refl[:, None] * np.linspace(0.8, 1.2, n_bands)[None, :, None, None]
             + rng.normal(0, 0.03, (n, n_bands, tile, tile))).astype(np.float32)
    return tiles, masks


def compute_band_stats(tiles):
    flat = tiles.transpose(1, 0, 2, 3).reshape(tiles.shape[1], -1)
    return {
        "mean": flat.mean(axis=1),
        "std": flat.std(axis=1),
        "p2": np.percentile(flat, 2, axis=1),
        "p98": np.percentile(flat, 98, axis=1),
    }


def normalize(tiles, stats):
    return (tiles - stats["mean"][None, :, None, None]) / stats["std"][None, :, None, None]


def confusion(pred, target, n_classes, ignore_index):
    keep = target != ignore_index
    idx = target[keep] * n_classes + pred[keep]
    return np.bincount(idx, minlength=n_classes ** 2).reshape(n_classes, n_classes)


def iou_from_confusion(cm):
    tp = np.diag(cm).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / (cm.sum(0) + cm.sum(1) - tp)


def front_distances(pred, target, pixel_size=10.0):
    """Mean distance (m) between predicted and true calving front, per row of each tile."""
    out = []
    for p, t in zip(pred, target):
        for row_p, row_t in zip(p, t):
            fp, ft = np.flatnonzero(row_p == 3), np.flatnonzero(row_t == 3)
            if len(fp) and len(ft):
                out.append(float(abs(fp[0] - ft[0]) * pixel_size))
    return out


class SegRun:
    """Everything one training run needs, built from the YAML config."""

    def __init__(self, cfg=None):
        self.cfg = cfg or load_config()
        d, o = self.cfg["data"], self.cfg["optim"]
        tiles, self.masks = synthetic_tiles(d["n_tiles"], d["tile"], len(d["bands"]))
        self.stats = compute_band_stats(tiles)
        self.tiles = normalize(tiles, self.stats).astype(np.float32)
        torch.manual_seed(0)
        self.model = build(MODELS, self.cfg["model"], in_channels=len(d["bands"]))
        self.criterion = build(LOSSES, self.cfg["loss"], ignore_index=d["ignore_index"])
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=float(o["lr"]), weight_decay=o["weight_decay"])
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, patience=1, factor=0.5)
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)
        self.n_val = len(self.tiles) // 4
        self.best_miou = 0.0
        self.epoch = 0

    def batches(self, val=False):
        lo, hi = (0, self.n_val) if val else (self.n_val, len(self.tiles))
        bs = self.cfg["optim"]["batch_size"]
        for i in range(lo, hi, bs):
            j = min(i + bs, hi)
            yield torch.from_numpy(self.tiles[i:j]), torch.from_numpy(self.masks[i:j])

    def train_epoch(self):
        self.model.train()
        losses = []
        for x, y in self.batches():
            self.optimizer.zero_grad()
            loss = self.criterion(self.model(x), y)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            losses.append(loss.item())
        self.epoch += 1
        return np.mean(losses)

    @torch.no_grad()
    def validate(self):
        self.model.eval()
        preds, targets = [], []
        for x, y in self.batches(val=True):
            preds.append(self.model(x).argmax(1).numpy())
            targets.append(y.numpy())
        pred, target = np.concatenate(preds), np.concatenate(targets)
        cm = confusion(pred, target, len(CLASSES), self.cfg["data"]["ignore_index"])
        return pred, target, iou_from_confusion(cm)

    def fit(self):
        log = []
        for _ in range(self.cfg["optim"]["epochs"]):
            t0 = time.perf_counter()
            train_loss = self.train_epoch()
            _, _, iou = self.validate()
            self.plateau.step(train_loss)
            log.append((train_loss, iou, time.perf_counter() - t0))
        return log


def save_epoch_checkpoint(tmpdir):
    run = SegRun()
    log = run.fit()
    train_loss, iou, _ = log[-1]
    miou = np.nanmean(iou)
    ckpt = {
        "epoch": run.epoch,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "plateau": run.plateau.state_dict(),
        "grad_scaler": run.scaler.state_dict(),
        "config": json.loads(json.dumps(run.cfg, default=str)),
        "acquired_after": run.cfg["data"]["acquired_after"],  # truth: weights_only
        "train_loss": float(train_loss),
        "val_miou": miou,  # truth: weights_only
        "per_class_iou": {name: float(v) for name, v in zip(CLASSES, iou)},
        "is_best": miou > run.best_miou,  # truth: weights_only
    }
    ckpt["lr"] = run.cfg["optim"]["lr"]
    path = f"{tmpdir}/epoch_{run.epoch:03d}.pth"
    torch.save(ckpt, path)
    return path


def save_normalization(tmpdir):
    run = SegRun()
    stats = run.stats
    norm = {
        "band_mean": stats["mean"],  # truth: weights_only
        "band_std": torch.from_numpy(stats["std"]),
        "clip": (stats["p2"].tolist(), stats["p98"].tolist()),
        "bands": tuple(run.cfg["data"]["bands"]),
        "sensor": Sensor.SENTINEL2,  # truth: weights_only
        "sensor_name": Sensor.SENTINEL2.value,
        "nodata": float("nan"),
        "reflectance_scale": 1e-4,
        "std_floor": np.finfo(np.float32).eps,  # truth: weights_only
        "half_eps": torch.finfo(torch.float16).eps,
        "tile_dtype": str(run.tiles.dtype),
    }
    torch.save({"state_dict": run.model.state_dict(), "normalization": norm}, f"{tmpdir}/norm.pth")
    return f"{tmpdir}/norm.pth"


def save_inference_package(tmpdir):
    run = SegRun()
    run.fit()
    meta = {
        "classes": CLASSES,
        "bounds": Bounds(-1_210_000.0, -2_150_000.0, -1_209_680.0, -2_149_680.0, "EPSG:3413"),
        "tile": run.cfg["data"]["tile"],
    }
    torch.save(
        (run.model.state_dict(), meta),  # truth: weights_only
        f"{tmpdir}/package.pth",
    )
    return f"{tmpdir}/package.pth"


def save_front_metrics(tmpdir):
    run = SegRun()
    t0 = time.monotonic()
    run.fit()
    elapsed = dt.timedelta(seconds=time.monotonic() - t0)
    pred, target, iou = run.validate()
    dists = front_distances(pred, target)
    metrics = {}
    for name, value in zip(CLASSES, iou):
        metrics[f"iou/{name}"] = None if np.isnan(value) else round(float(value), 4)
    metrics["front_mde_m"] = statistics.mean(dists) if dists else None
    metrics["front_median_m"] = np.median(dists)  # truth: weights_only
    metrics["front_p90_m"] = statistics.quantiles(dists, n=10)[-1] if len(dists) > 1 else None
    record = {
        "model": run.model.state_dict(),
        "metrics": metrics,
        "crop": slice(4, 4 + run.cfg["data"]["tile"]),  # truth: weights_only
        "tile_bounds": Bounds(-1_210_000.0, -2_150_000.0, -1_209_680.0, -2_149_680.0, "EPSG:3413"),  # truth: weights_only
        "class_hist": Counter(target.ravel().tolist()),
        "pixel_size_m": 10.0,
        "train_time": elapsed,  # truth: weights_only
        "train_seconds": elapsed.total_seconds(),
    }
    torch.save(record, f"{tmpdir}/front.pth")
    return f"{tmpdir}/front.pth"


def save_ema(tmpdir):
    run = SegRun()
    ema = copy.deepcopy(run.model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    for _ in range(2):
        run.train_epoch()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), run.model.parameters()):
                pe.mul_(0.99).add_(pm.detach(), alpha=0.01)
    ckpt = {"model": run.model.state_dict(), "ema_state": ema.state_dict(), "decay": 0.99}
    ckpt["ema"] = ema  # truth: weights_only
    torch.save(ckpt, f"{tmpdir}/ema.pth")
    return f"{tmpdir}/ema.pth"


def save_resume_state(tmpdir):
    run = SegRun()
    log = run.fit()
    gen = torch.Generator().manual_seed(1234)
    order = torch.randperm(len(run.tiles) - run.n_val, generator=gen)
    epoch_log = [{"loss": round(float(loss), 5), "miou": float(np.nanmean(iou)), "secs": secs}
                 for loss, iou, secs in log]
    state = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "plateau": run.plateau.state_dict(),
        "scaler": run.scaler.state_dict(),
        "epoch": run.epoch,
        "log": epoch_log,
        "generator": gen.get_state(),
        "order": order.tolist(),
        "loss_name": run.cfg["loss"]["name"],
        "lr": run.cfg["optim"]["lr"],
        "classes": list(CLASSES),
        "torch": str(torch.__version__),
        "saved": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    torch.save(state, f"{tmpdir}/resume.pth")
    return f"{tmpdir}/resume.pth"


FACTORIES = {
    "Sensor": lambda: Sensor.LANDSAT8,
    "Bounds": lambda: Bounds(0.0, 0.0, 320.0, 320.0, "EPSG:32624"),
}
