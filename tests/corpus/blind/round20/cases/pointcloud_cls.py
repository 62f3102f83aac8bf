"""Point cloud classification/part segmentation (PointNet-lite on 64-point clouds), OmegaConf
configs, voxel downsampling, mIoU bookkeeping, per-epoch checkpoints."""
import os
from collections import OrderedDict, namedtuple
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.metrics import accuracy_score, confusion_matrix, jaccard_score
from torch import nn

NUM_CLASSES = 4
NUM_POINTS = 64

BBox = namedtuple("BBox", ["lo", "hi"])

DEFAULT_CFG = """
model:
  name: pointnet_lite
  emb_dims: 16
  dropout: 0.3
data:
  num_points: 64
  voxel_size: 0.05
  augment: [rotate_z, jitter, scale]
optim:
  lr: 0.001
  weight_decay: 1.0e-4
"""


@dataclass(frozen=True)
class VoxelGrid:
    size: float = 0.05
    origin: tuple = (0.0, 0.0, 0.0)


class PointNetLite(nn.Module):
    def __init__(self, emb_dims=16, num_classes=NUM_CLASSES, dropout=0.3):
        super().__init__()
        self.mlp1 = nn.Conv1d(3, emb_dims, 1)
        self.mlp2 = nn.Conv1d(emb_dims, emb_dims, 1)
        self.drop = nn.Dropout(dropout)
        self.cls = nn.Linear(emb_dims, num_classes)

    def forward(self, pts):
        h = F.relu(self.mlp2(F.relu(self.mlp1(pts.transpose(1, 2)))))
        return self.cls(self.drop(h.max(dim=2).values))


def load_cfg(overrides=()):
    cfg = OmegaConf.create(DEFAULT_CFG)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


def make_clouds(n=8, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, NUM_POINTS, 3)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, size=n)
    return pts, labels


def voxel_downsample(points, voxel):
    keys = np.floor((points - np.asarray(voxel.origin)) / voxel.size).astype(np.int64)
    _, keep = np.unique(keys, axis=0, return_index=True)
    return points[np.sort(keep)]


def evaluate(model, pts, labels):
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(pts)).argmax(1).numpy()
    cm = confusion_matrix(labels, pred, labels=list(range(NUM_CLASSES)))
    ious = np.diag(cm) / np.maximum(cm.sum(0) + cm.sum(1) - np.diag(cm), 1)
    return pred, cm, ious


def save_pointnet_epoch(tmpdir):
    cfg = load_cfg(["model.emb_dims=8"])
    pts, labels = make_clouds()
    model = PointNetLite(emb_dims=cfg.model.emb_dims, dropout=cfg.model.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    loss = F.cross_entropy(model(torch.from_numpy(pts)), torch.from_numpy(labels))
    loss.backward()
    optimizer.step()
    pred, cm, ious = evaluate(model, pts, labels)
    ckpt = OrderedDict()
    ckpt["epoch"] = 1
    ckpt["model_state"] = model.state_dict()
    ckpt["optimizer"] = optimizer  # truth: weights_only
    ckpt["cfg"] = cfg  # truth: weights_only
    ckpt["augment"] = cfg.data.augment  # truth: weights_only
    ckpt["cfg_dict"] = OmegaConf.to_container(cfg, resolve=True)
    ckpt["instance_acc"] = accuracy_score(labels, pred)
    ckpt["class_acc"] = np.nanmean(np.diag(cm) / np.maximum(cm.sum(1), 1))  # truth: weights_only
    ckpt["miou"] = float(np.mean(ious))
    ckpt["confusion"] = torch.as_tensor(cm)
    ckpt["loss"] = loss.detach()
    path = os.path.join(tmpdir, "pointnet_epoch1.pt")
    torch.save(ckpt, path)
    return path


def _preprocessing_meta(pts, voxel):
    down = voxel_downsample(pts[0], voxel)
    centroid = pts.reshape(-1, 3).mean(axis=0)
    scale = np.linalg.norm(pts.reshape(-1, 3) - centroid, axis=1).max()
    return {
        "voxel": voxel,
        "kept_points": down.shape[0],
        "centroid": centroid,
        "scale": scale,
        "bbox": BBox(pts.min(axis=(0, 1)).tolist(), pts.max(axis=(0, 1)).tolist()),
    }


def save_preprocessed_stats(tmpdir):
    pts, labels = make_clouds()
    meta = _preprocessing_meta(pts, VoxelGrid(size=0.5))
    stats = {
        "voxel": meta["voxel"],  # truth: weights_only
        "voxel_size": meta["voxel"].size,
        "kept_points": meta["kept_points"],
        "centroid": meta["centroid"],  # truth: weights_only
        "centroid_t": torch.tensor(meta["centroid"]),
        "scale": meta["scale"],  # truth: weights_only
        "bbox": meta["bbox"],  # truth: weights_only
        "bbox_lo": list(meta["bbox"].lo),
        "class_counts": np.bincount(labels, minlength=NUM_CLASSES).tolist(),
        "class_freq": torch.from_numpy(np.bincount(labels, minlength=NUM_CLASSES) / len(labels)),
        "num_points": NUM_POINTS,
    }
    path = os.path.join(tmpdir, "preproc.pt")
    torch.save(stats, path)
    return path


def save_part_seg_best(tmpdir):
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, NUM_CLASSES, size=NUM_POINTS)
    y_pred = np.where(rng.random(NUM_POINTS) < 0.7, y_true, rng.integers(0, NUM_CLASSES, size=NUM_POINTS))
    part_iou = jaccard_score(y_true, y_pred, average=None, labels=list(range(NUM_CLASSES)))
    best = {"miou": -1.0, "epoch": -1}
    for epoch, scale in enumerate([0.9, 1.0, 0.95]):
        miou = part_iou.mean() * scale
        if miou > best["miou"]:
            best = {"miou": miou, "epoch": epoch}
    ckpt = dict(
        best_miou=best["miou"],  # truth: weights_only
        best_epoch=best["epoch"],
        part_iou=part_iou,  # truth: weights_only
        part_iou_list=[round(float(v), 4) for v in part_iou],
        macro_iou=jaccard_score(y_true, y_pred, average="macro"),
        seen_parts=set(np.unique(y_true).tolist()),
        ignored=frozenset({255}),  # truth: weights_only
        model=PointNetLite(emb_dims=4).state_dict(),
    )
    path = os.path.join(tmpdir, "partseg_best.pt")
    torch.save(ckpt, path)
    return path


def save_clean_export(tmpdir):
    cfg = load_cfg()
    model = PointNetLite(emb_dims=cfg.model.emb_dims)
    export = {
        "model": model.state_dict(),
        "config": OmegaConf.to_container(cfg),
        "num_points": int(cfg.data.num_points),
        "augment": list(cfg.data.augment),
        "voxel_size": float(np.float32(cfg.data.voxel_size)),
        "classes": OrderedDict((i, f"class_{i}") for i in range(NUM_CLASSES)),
        "dtype": torch.float32,
        "device": str(torch.device("cpu")),
    }
    path = os.path.join(tmpdir, "export.pt")
    torch.save(export, path)
    return path
