"""Ship detection in Sentinel-1 SAR tiles (CenterNet-style heatmap + box size).

Config is YAML read through OmegaConf (dotlist overrides from the command line):

    python ship_detection.py train.epochs=30 data.polarization=VH

`synth_scene` stands in for the GeoTIFF tiler (sigma0 in dB, VV/VH, 64 px tiles
with AIS-matched ship boxes) so the script runs without the archive.
"""
import collections
import copy
import enum
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy.cluster.vq import kmeans2

DEFAULT_CONFIG = """
data:
  sensor: sentinel1
  polarization: VV
  tile_size: 64
  bands: [VV, VH]
  band_stats:
    mean: [-14.2, -21.7]
    std: [4.1, 4.6]
  val_scenes: [S1A_20210704, S1B_20210711]
model:
  width: 8
  stride: 4
  anchor_sizes: [8, 16, 32]
  anchor_ratios: [0.5, 1.0, 2.0]
train:
  lr: 2.0e-3
  epochs: 2
  batch_size: 16
  ema_decay: 0.99
  focal_alpha: 2.0
  focal_beta: 4.0
  seed: 13
eval:
  iou_thresholds: [0.3, 0.5, 0.7]
  max_dets: 20
run:
  out_dir: runs/ships/${data.sensor}-${data.polarization}
"""


torch.set_num_threads(1)  # tiling workers take the other cores


class Polarization(enum.Enum):
    VV = "VV"
    VH = "VH"


Tile = collections.namedtuple("Tile", ["scene_id", "row", "col"])


def load_config(overrides=()):
    base = OmegaConf.create(DEFAULT_CONFIG)
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


# ----------------------------------------------------------------- data

def synth_scene(scene_id, n_tiles, tile, rng, max_ships=3, per_row=8):
    """Gamma speckle sea clutter with bright rectangular targets; returns sigma0 in dB."""
    sigma0 = rng.gamma(4.0, 0.25, (n_tiles, 2, tile, tile)) * np.array([0.04, 0.01])[None, :, None, None]
    boxes, tiles = [], []
    for i in range(n_tiles):
        bs = []
        for _ in range(rng.integers(1, max_ships + 1)):
            w, h = rng.integers(3, 12, 2)
            x0, y0 = rng.integers(0, tile - w), rng.integers(0, tile - h)
            sigma0[i, :, y0:y0 + h, x0:x0 + w] += np.array([0.8, 0.2])[:, None, None]
            bs.append([x0, y0, x0 + w, y0 + h])
        boxes.append(np.asarray(bs, dtype=np.float32))
        tiles.append(Tile(scene_id, i // per_row, i % per_row))
    return (10.0 * np.log10(sigma0 + 1e-4)).astype(np.float32), boxes, tiles


def normalize(db, band_stats):
    mean = np.asarray(list(band_stats.mean), dtype=np.float32)[None, :, None, None]
    std = np.asarray(list(band_stats.std), dtype=np.float32)[None, :, None, None]
    return ((db - mean) / std).astype(np.float32)


def encode_targets(boxes, tile, stride, sigma=1.0):
    H = W = tile // stride
    heat = np.zeros((len(boxes), 1, H, W), np.float32)
    size = np.zeros((len(boxes), 2, H, W), np.float32)
    mask = np.zeros((len(boxes), 1, H, W), np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    for i, bs in enumerate(boxes):
        for x0, y0, x1, y1 in bs:
            ix = min(int((x0 + x1) / 2 / stride), W - 1)
            iy = min(int((y0 + y1) / 2 / stride), H - 1)
            heat[i, 0] = np.maximum(heat[i, 0], np.exp(-((xx - ix) ** 2 + (yy - iy) ** 2) / (2 * sigma ** 2)))
            size[i, :, iy, ix] = ((x1 - x0) / stride, (y1 - y0) / stride)
            mask[i, 0, iy, ix] = 1.0
    return heat, size, mask


# ----------------------------------------------------------------- model

class ShipNet(nn.Module):
    def __init__(self, in_ch=2, width=8):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_ch, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width * 2, 3, stride=2, padding=1), nn.BatchNorm2d(width * 2), nn.ReLU(inplace=True),
            nn.Conv2d(width * 2, width * 2, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.heat = nn.Conv2d(width * 2, 1, 1)
        self.size = nn.Conv2d(width * 2, 2, 1)
        nn.init.constant_(self.heat.bias, -2.19)  # prior p = 0.1

    def forward(self, x):
        f = self.stem(x)
        return self.heat(f), self.size(f)


def centernet_focal_loss(logits, target, alpha=2.0, beta=4.0):
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = torch.log(p) * (1 - p) ** alpha * pos
    neg_loss = torch.log(1 - p) * p ** alpha * (1 - target) ** beta * (1 - pos)
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


@torch.no_grad()
def decode(heat_logits, size_pred, stride, k=20):
    heat = torch.sigmoid(heat_logits)
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat).float()
    B, _, H, W = peaks.shape
    top = torch.topk(peaks.view(B, -1), k)
    dets = []
    for b in range(B):
        idx = top.indices[b]
        ys = torch.div(idx, W, rounding_mode="floor").float()
        xs = (idx % W).float()
        wh = size_pred[b].reshape(2, -1)[:, idx].clamp(min=0.5) * stride
        cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride
        boxes = torch.stack([cx - wh[0] / 2, cy - wh[1] / 2, cx + wh[0] / 2, cy + wh[1] / 2], dim=1)
        dets.append((boxes.numpy(), top.values[b].numpy()))
    return dets, top


def iou_matrix(a, b):
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def average_precision(dets, gts, iou_thr):
    """VOC all-point AP over a set of tiles."""
    records, n_gt = [], sum(len(g) for g in gts)
    for (boxes, scores), gt in zip(dets, gts):
        matched = np.zeros(len(gt), dtype=bool)
        for j in np.argsort(-scores):
            ious = iou_matrix(boxes[j:j + 1], gt)[0]
            m = int(np.argmax(ious))
            hit = ious[m] >= iou_thr and not matched[m]
            matched[m] |= hit
            records.append((scores[j], int(hit)))
    records.sort(key=lambda r: -r[0])
    tp = np.cumsum([r[1] for r in records])
    fp = np.cumsum([1 - r[1] for r in records])
    mrec = np.concatenate([[0.0], tp / max(n_gt, 1), [1.0]])
    mpre = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1), [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return np.sum((mrec[1:] - mrec[:-1]) * mpre[1:])


def match_stats(dets, gts, iou_thr=0.5):
    """Recall at iou_thr and the mean best IoU of the ground-truth boxes."""
    hits, n_gt, ious = 0, 0, []
    for (boxes, _), gt in zip(dets, gts):
        n_gt += len(gt)
        best = iou_matrix(gt, boxes).max(axis=1)
        hits += int((best >= iou_thr).sum())
        ious.extend(best.tolist())
    return hits / max(n_gt, 1), np.mean(ious)


def kmeans_anchors(boxes, k=3, seed=0):
    wh = np.concatenate([b[:, 2:] - b[:, :2] for b in boxes]).astype(np.float64)
    centroids, _ = kmeans2(wh, k, seed=seed, minit="++")
    return centroids[np.argsort(centroids.prod(axis=1))], wh


def anchor_fit(wh, anchors):
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    union = wh.prod(axis=1)[:, None] + anchors.prod(axis=1)[None, :] - inter
    return (inter / union).max(axis=1).mean()


def scene_statistics(images_db, boxes, tiles):
    stats = collections.defaultdict(dict)
    for img, bs, tile in zip(images_db, boxes, tiles):
        s = stats[tile.scene_id]
        s["n_tiles"] = s.get("n_tiles", 0) + 1
        s["n_ships"] = s.get("n_ships", 0) + len(bs)
        s["sea_db"] = s.get("sea_db", []) + [float(np.median(img[0]))]
    return stats


# ----------------------------------------------------------------- training

class DetectorTrainer:
    def __init__(self, cfg, model=None):
        self.cfg = cfg
        self.model = model if model is not None else ShipNet(len(cfg.data.bands), cfg.model.width)
        self.ema_model = copy.deepcopy(self.model).eval()
        for p in self.ema_model.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr, weight_decay=1e-4)
        self.step = 0
        self.epoch = 0
        self.loss_window = collections.deque(maxlen=50)
        self.last_loss = float("nan")
        self.best_map = 0.0
        self.out_dir = Path(cfg.run.out_dir)

    @torch.no_grad()
    def update_ema(self):
        d = self.cfg.train.ema_decay
        for e, p in zip(self.ema_model.state_dict().values(), self.model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(p.detach(), alpha=1.0 - d)
            else:
                e.copy_(p)

    def train_epoch(self, images, boxes):
        c = self.cfg
        heat_t, size_t, mask_t = (torch.from_numpy(a) for a in encode_targets(boxes, c.data.tile_size, c.model.stride))
        x = torch.from_numpy(images)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(c.train.seed + self.epoch))
        losses = []
        self.model.train()
        for i in range(0, len(x), c.train.batch_size):
            idx = perm[i:i + c.train.batch_size]
            heat_logits, size_pred = self.model(x[idx])
            m = mask_t[idx]
            loss = centernet_focal_loss(heat_logits, heat_t[idx], c.train.focal_alpha, c.train.focal_beta)
            loss = loss + 0.1 * F.l1_loss(size_pred * m, size_t[idx] * m, reduction="sum") / m.sum().clamp(min=1.0)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.update_ema()
            self.step += 1
            losses.append(loss.item())
            self.loss_window.append(loss.item())
        self.epoch += 1
        self.last_loss = float(np.mean(losses))
        return self.last_loss

    @torch.no_grad()
    def evaluate(self, images, boxes, use_ema=True):
        model = self.ema_model if use_ema else self.model
        model.eval()
        heat, size = model(torch.from_numpy(images))
        dets, top = decode(heat, size, self.cfg.model.stride, k=self.cfg.eval.max_dets)
        aps = {thr: average_precision(dets, boxes, thr) for thr in self.cfg.eval.iou_thresholds}
        if aps[0.5] >= self.best_map:
            self.best_map = aps[0.5]
        return dets, top, aps

    def checkpoint_state(self, **extra):
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
        }
        state.update(extra)
        return state


def train_detector(cfg, n_train=48, n_val=16):
    torch.manual_seed(cfg.train.seed)
    rng = np.random.default_rng(cfg.train.seed)
    images, boxes = [], []
    for scene_id in ("S1A_20210620", "S1B_20210627"):
        im, bx, _ = synth_scene(scene_id, n_train // 2, cfg.data.tile_size, rng)
        images.append(im)
        boxes += bx
    val_db, val_boxes, val_tiles = synth_scene(cfg.data.val_scenes[0], n_val, cfg.data.tile_size, rng)
    trainer = DetectorTrainer(cfg)
    x = normalize(np.concatenate(images), cfg.data.band_stats)
    for _ in range(cfg.train.epochs):
        trainer.train_epoch(x, boxes)
    return trainer, (normalize(val_db, cfg.data.band_stats), val_boxes, val_tiles)


FACTORIES = {
    "Polarization": lambda: Polarization.VV,
    "DetectorTrainer": lambda: DetectorTrainer(load_config()),
}


# ----------------------------------------------------------------- checkpoints

def save_detector_checkpoint(tmpdir):
    cfg = load_config(["train.epochs=1"])
    trainer, (val_images, val_boxes, _) = train_detector(cfg)
    _, _, aps = trainer.evaluate(val_images, val_boxes)
    extra = dict(
        cfg=cfg,  # truth: weights_only
        map50=float(aps[0.5]),
        aps={f"AP@{t:.2f}": float(v) for t, v in aps.items()},
        bands=list(cfg.data.bands),
        last_loss=trainer.last_loss,
        loss_window=list(trainer.loss_window),
        out_dir=trainer.out_dir,  # truth: weights_only
        best_map=trainer.best_map,  # truth: weights_only
        argv=sys.argv[1:],
    )
    path = os.path.join(tmpdir, "ship_detector_last.pt")
    torch.save(trainer.checkpoint_state(**extra), path)
    return path


def save_ema_export(tmpdir):
    cfg = load_config(["data.polarization=VH"])
    trainer, _ = train_detector(cfg)
    export = {
        "ema_state": trainer.ema_model.state_dict(),
        "polarization": Polarization(cfg.data.polarization),  # truth: weights_only
        "sensor": cfg.data.sensor,
        "tile_size": cfg.data.tile_size,
        "band_mean": cfg.data.band_stats.mean,  # truth: weights_only
        "band_std": OmegaConf.to_container(cfg.data.band_stats.std),
        "stride": cfg.model.stride,
        "ema_decay": cfg.train.ema_decay,
        "input_dtype": torch.float32,
        "in_channels": trainer.model.stem[0].in_channels,
    }
    path = os.path.join(tmpdir, "ship_ema_export.pt")
    torch.save(export, path)
    return path


def save_eval_report(tmpdir):
    cfg = load_config()
    trainer, (val_images, val_boxes, val_tiles) = train_detector(cfg)
    dets, top, aps = trainer.evaluate(val_images, val_boxes)
    recall, mean_iou = match_stats(dets, val_boxes, iou_thr=0.5)
    per_tile = [match_stats([d], [g])[0] for d, g in zip(dets, val_boxes)]
    report = {"iou_thresholds": list(cfg.eval.iou_thresholds), "ap": {}}
    for thr, ap in aps.items():
        report["ap"][f"{thr:.2f}"] = round(float(ap), 4)
    report["map"] = np.mean(list(aps.values()))  # truth: weights_only
    report["recall50"] = recall
    report["mean_iou"] = mean_iou  # truth: weights_only
    report["raw_topk"] = top  # truth: weights_only
    report["top_scores"] = top.values[:, :5].clone()
    report["n_gt"] = sum(len(g) for g in val_boxes)
    report["n_dets"] = sum(len(s) for _, s in dets)
    report["hardest_tiles"] = [t for _, t in sorted(zip(per_tile, val_tiles))[:5]]  # truth: weights_only
    report["hardest_tile_ids"] = [f"{t.scene_id}/r{t.row}c{t.col}" for _, t in sorted(zip(per_tile, val_tiles))[:5]]
    path = os.path.join(tmpdir, "ship_eval.pt")
    torch.save({"report": report, "step": trainer.step}, path)
    return path


def save_anchor_priors(tmpdir):
    """Box-size priors (k-means on w/h) for the anchor-based variant."""
    cfg = load_config()
    rng = np.random.default_rng(cfg.train.seed)
    _, boxes, _ = synth_scene("S1A_20210620", 64, cfg.data.tile_size, rng)
    anchors, wh = kmeans_anchors(boxes, k=len(cfg.model.anchor_sizes), seed=0)
    prior = {}
    prior["anchors"] = anchors  # truth: weights_only
    prior["anchors_px"] = np.round(anchors).astype(int).tolist()
    prior["mean_best_iou"] = float(anchor_fit(wh, anchors))
    prior["ratios"] = cfg.model.anchor_ratios  # truth: weights_only
    prior["sizes"] = list(cfg.model.anchor_sizes)
    prior["n_boxes"] = len(wh)
    prior["wh_percentiles"] = np.percentile(wh, [5, 50, 95], axis=0).tolist()
    prior["max_aspect"] = float((wh[:, 0] / wh[:, 1]).max())
    path = os.path.join(tmpdir, "anchor_priors.pt")
    torch.save({"prior": prior, "tile_size": cfg.data.tile_size}, path)
    return path


def save_scene_stats(tmpdir):
    cfg = load_config()
    rng = np.random.default_rng(0)
    images, boxes, tiles = [], [], []
    for scene_id in cfg.data.val_scenes:
        im, bx, tl = synth_scene(scene_id, 8, cfg.data.tile_size, rng)
        images.append(im)
        boxes += bx
        tiles += tl
    stats = scene_statistics(np.concatenate(images), boxes, tiles)
    path = os.path.join(tmpdir, "scene_stats.pt")
    torch.save(stats, path)  # truth: weights_only
    return path


def save_resume_state(tmpdir):
    cfg = load_config(["train.epochs=1", "run.out_dir=runs/ships/resume"])
    trainer, (val_images, val_boxes, val_tiles) = train_detector(cfg)
    dets, top, _ = trainer.evaluate(val_images, val_boxes)
    recall, _ = match_stats(dets, val_boxes)
    state = trainer.checkpoint_state()
    state["cfg"] = OmegaConf.to_container(cfg, resolve=True)
    state["polarization"] = Polarization(cfg.data.polarization).value
    state["out_dir"] = str(trainer.out_dir)
    state["loss_window"] = list(trainer.loss_window)
    state["best_map"] = float(trainer.best_map)
    state["recall50"] = recall
    state["peak_scores"] = top.values.max(dim=1).values
    state["val_tiles"] = [t._asdict() for t in val_tiles[:4]]
    state["anchor_sizes"] = tuple(cfg.model.anchor_sizes)
    state["val_scenes"] = sorted({t.scene_id for t in val_tiles})
    state["rng"] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    path = os.path.join(tmpdir, "ship_resume.pt")
    torch.save(state, path)
    return path
