"""Indoor point-cloud semantic segmentation (S3DIS-style rooms, 13 classes) with PointNet.

Experiments are described by a YAML file merged with command-line dot-list overrides
(`optim.epochs=60 model.name=pointnet_lite`); models come from a small registry.  Rooms are
voxel-downsampled, shifted to their minimum corner, and augmented with random rotations about z,
scaling and jitter.  Metrics are computed from an accumulated confusion matrix.
"""
import collections
import copy
import os
import uuid
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf
from torch import nn

CONFIG_YAML = """
experiment: pointnet_s3dis_area5
data:
  root: data/s3dis/processed
  class_names: [ceiling, floor, wall, beam, column, window, door, table, chair, sofa, bookcase, board, clutter]
  num_points: 256
  voxel_size: 0.05
  test_area: 5
  ignore_index: -100
  use_color: true
model:
  name: pointnet_seg
  in_channels: 6
  width: 32
  dropout: 0.3
optim:
  lr: 0.002
  weight_decay: 1.0e-4
  epochs: 2
  batch_size: 4
augment:
  max_angle: 3.141592653589793
  scale: [0.9, 1.1]
  jitter: 0.01
finetune:
  classes: [floor, wall, table, chair]
  freeze: [encoder]
"""

MODELS = {}


def register_model(name):
    def deco(cls):
        MODELS[name] = cls
        return cls
    return deco


def load_config(overrides=()):
    base = OmegaConf.create(yaml.safe_load(CONFIG_YAML))
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


@register_model("pointnet_seg")
class PointNetSeg(nn.Module):
    def __init__(self, in_channels=6, num_classes=13, width=32, dropout=0.3):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv1d(in_channels, width, 1), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Conv1d(width, 2 * width, 1), nn.BatchNorm1d(2 * width), nn.ReLU(),
        )
        self.global_mlp = nn.Sequential(nn.Conv1d(2 * width, 4 * width, 1), nn.ReLU())
        self.head = nn.Sequential(
            nn.Conv1d(6 * width, 2 * width, 1), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv1d(2 * width, num_classes, 1),
        )

    def forward(self, x):  # (B, C, N) -> (B, num_classes, N)
        local = self.encoder(x)
        glob = self.global_mlp(local).max(dim=2, keepdim=True).values.expand(-1, -1, x.size(2))
        return self.head(torch.cat([local, glob], dim=1))


@register_model("pointnet_lite")
class PointNetLite(PointNetSeg):
    def __init__(self, in_channels=6, num_classes=13, width=16, dropout=0.1):
        super().__init__(in_channels, num_classes, width, dropout)


def build_model(cfg, num_classes=None):
    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    cls = MODELS[kwargs.pop("name")]
    return cls(num_classes=num_classes or len(cfg.data.class_names), **kwargs)


# ------------------------------------------------------------------ data

class RandomRotateZ:
    def __init__(self, max_angle=np.pi):
        self.max_angle = max_angle

    def __call__(self, xyz, rng):
        a = rng.uniform(-self.max_angle, self.max_angle)
        c, s = np.cos(a), np.sin(a)
        return xyz @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=xyz.dtype).T


class RandomScale:
    def __init__(self, low=0.9, high=1.1):
        self.low, self.high = low, high

    def __call__(self, xyz, rng):
        return xyz * rng.uniform(self.low, self.high)


class Jitter:
    def __init__(self, sigma=0.01):
        self.sigma = sigma

    def __call__(self, xyz, rng):
        return xyz + rng.normal(0.0, self.sigma, xyz.shape).astype(xyz.dtype)


class Compose:
    def __init__(self, transforms=None):
        self.transforms = list(transforms or [])

    def __call__(self, xyz, rng):
        for t in self.transforms:
            xyz = t(xyz, rng)
        return xyz


def build_augment(cfg):
    return Compose([RandomRotateZ(cfg.augment.max_angle), RandomScale(*cfg.augment.scale), Jitter(cfg.augment.jitter)])


def synth_room(num_points, rng, num_classes=13):
    xyz = rng.uniform([0.0, 0.0, 0.0], [6.0, 5.0, 3.0], size=(num_points, 3)).astype(np.float32)
    rgb = rng.uniform(0.0, 1.0, size=(num_points, 3)).astype(np.float32)
    labels = np.where(xyz[:, 2] > 2.8, 0, np.where(xyz[:, 2] < 0.15, 1, rng.integers(2, num_classes, num_points)))
    return xyz, rgb, labels


def voxel_downsample(xyz, voxel):
    keys = np.floor(xyz / voxel).astype(np.int64)
    _, idx = np.unique(keys, axis=0, return_index=True)
    return np.sort(idx)


def make_rooms(cfg, n, seed=0):
    rng = np.random.default_rng(seed)
    rooms = []
    for _ in range(n):
        xyz, rgb, labels = synth_room(cfg.data.num_points, rng, len(cfg.data.class_names))
        rooms.append((xyz - xyz.min(0), rgb, labels))
    return rooms


# ------------------------------------------------------------------ metrics / trainer

class ConfusionMatrix:
    def __init__(self, num_classes=13, ignore_index=-100):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred, target):
        keep = target != self.ignore_index
        idx = target[keep] * self.num_classes + pred[keep]
        self.mat += np.bincount(idx, minlength=self.num_classes ** 2).reshape(self.num_classes, -1)

    def iou(self):
        inter = np.diag(self.mat)
        union = self.mat.sum(0) + self.mat.sum(1) - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            return inter / union

    def miou(self):
        return np.nanmean(self.iou())

    def overall_acc(self):
        return np.diag(self.mat).sum() / max(self.mat.sum(), 1)


class SegTrainer:
    def __init__(self, cfg=None, model=None, seed=0):
        self.cfg = cfg if cfg is not None else load_config()
        self.model = model if model is not None else build_model(self.cfg)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.optim.lr,
                                     weight_decay=self.cfg.optim.weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=self.cfg.optim.epochs)
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.augment = build_augment(self.cfg)
        self.epoch = 0
        self.best_miou = 0.0
        self.best_epoch = -1
        self.per_class_history = collections.defaultdict(list)

    def _batch(self, rooms, augment):
        feats, labels = [], []
        for xyz, rgb, lab in rooms:
            if augment:
                xyz = self.augment(xyz, self.rng)
            feats.append(np.concatenate([xyz, rgb], axis=1).T)
            labels.append(lab)
        return torch.from_numpy(np.stack(feats)).float(), torch.from_numpy(np.stack(labels))

    def fit_epoch(self, rooms):
        self.model.train()
        order = torch.randperm(len(rooms), generator=self.gen).tolist()
        bs = self.cfg.optim.batch_size
        for start in range(0, len(order), bs):
            x, y = self._batch([rooms[i] for i in order[start:start + bs]], augment=True)
            loss = F.cross_entropy(self.model(x), y, ignore_index=self.cfg.data.ignore_index)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.sched.step()
        self.epoch += 1

    @torch.no_grad()
    def validate(self, rooms, angle=0.0):
        self.model.eval()
        cm = ConfusionMatrix(len(self.cfg.data.class_names), self.cfg.data.ignore_index)
        rot = RandomRotateZ(0.0)
        for xyz, rgb, lab in rooms:
            if angle:
                c, s = np.cos(angle), np.sin(angle)
                xyz = xyz @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=xyz.dtype).T
            x, _ = self._batch([(rot(xyz, self.rng), rgb, lab)], augment=False)
            cm.update(self.model(x).argmax(1)[0].numpy(), lab)
        return cm

    def update_best(self, cm):
        for name, v in zip(self.cfg.data.class_names, cm.iou()):
            self.per_class_history[name].append(float(np.nan_to_num(v)))
        if cm.miou() > self.best_miou:
            self.best_miou, self.best_epoch = cm.miou(), self.epoch

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "epoch": self.epoch, "generator": self.gen.get_state()}


# ------------------------------------------------------------------ checkpoints

def save_pointnet(tmpdir):
    cfg = load_config(["optim.epochs=2", f"data.root={tmpdir}"])
    trainer = SegTrainer(cfg)
    rooms = make_rooms(cfg, 8)
    for _ in range(cfg.optim.epochs):
        trainer.fit_epoch(rooms)
    cm = trainer.validate(make_rooms(cfg, 2, seed=1))
    path = os.path.join(cfg.data.root, f"{cfg.experiment}_last.pth")
    torch.save({
        "model": trainer.model.state_dict(),
        "optimizer": trainer.opt.state_dict(),
        "scheduler": trainer.sched.state_dict(),
        "epoch": trainer.epoch,
        "config": cfg,  # truth: weights_only
        "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
        "class_names": list(cfg.data.class_names),
        "ignore_index": cfg.data.ignore_index,
        "miou": cm.miou(),  # truth: weights_only
        "iou": np.nan_to_num(cm.iou()).tolist(),
        "overall_acc": float(cm.overall_acc()),
        "confusion": torch.from_numpy(cm.mat),
    }, path)
    return path


def save_room_cache(tmpdir):
    cfg = load_config(["data.num_points=400"])
    rng = np.random.default_rng(cfg.data.test_area)
    num_classes = len(cfg.data.class_names)
    entries, hist = [], np.zeros(num_classes, dtype=np.int64)
    for room_id in range(4):
        xyz, rgb, labels = synth_room(cfg.data.num_points, rng, num_classes)
        keep = voxel_downsample(xyz, cfg.data.voxel_size)
        origin = xyz[keep].min(0)
        hist += np.bincount(labels[keep], minlength=num_classes)
        entries.append({"room": f"Area_{cfg.data.test_area}/office_{room_id + 1}", "num_points": int(keep.size),
                        "origin": origin.tolist(), "extent": (xyz[keep].max(0) - origin).tolist()})
    weights = 1.0 / np.log(1.2 + hist / hist.sum())
    meta = {"rooms": entries, "voxel_size": cfg.data.voxel_size, "test_area": cfg.data.test_area}
    meta["label_hist"] = hist  # truth: weights_only
    meta["class_weights"] = torch.from_numpy(weights).float()
    meta["num_rooms"] = len(entries)
    meta["points_total"] = sum(e["num_points"] for e in entries)
    meta["area_min"] = np.min([e["origin"] for e in entries], axis=0).tolist()
    meta["use_color"] = bool(cfg.data.use_color)
    path = os.path.join(tmpdir, f"area{cfg.data.test_area}_cache_meta.pt")
    torch.save(meta, path)
    return path


def save_trainer_resume(tmpdir):
    cfg = load_config(["optim.epochs=3", "model.name=pointnet_lite"])
    trainer = SegTrainer(cfg, seed=4)
    rooms, val_rooms = make_rooms(cfg, 6, seed=4), make_rooms(cfg, 2, seed=5)
    for _ in range(cfg.optim.epochs):
        trainer.fit_epoch(rooms)
        trainer.update_best(trainer.validate(val_rooms))
    ckpt = trainer.state_dict()
    ckpt.update(
        best_miou=trainer.best_miou,  # truth: weights_only
        best_epoch=trainer.best_epoch,
        per_class_iou=trainer.per_class_history,  # truth: weights_only
        lr=trainer.sched.get_last_lr(),
    )
    ckpt["rng"] = {
        "torch": trainer.gen.get_state(),
        "numpy": trainer.rng,  # truth: weights_only
        "numpy_state": trainer.rng.bit_generator.state,
    }
    path = os.path.join(tmpdir, "resume.pth")
    torch.save(ckpt, path)
    return path


def save_tta_eval(tmpdir):
    cfg = load_config()
    trainer = SegTrainer(cfg, seed=1)
    trainer.fit_epoch(make_rooms(cfg, 4, seed=1))
    rooms = make_rooms(cfg, 3, seed=9)
    angles = np.linspace(0.0, 2.0 * np.pi, 4, endpoint=False)
    mious, vote = [], ConfusionMatrix(len(cfg.data.class_names), cfg.data.ignore_index)
    for a in angles:
        cm = trainer.validate(rooms, angle=a)
        mious.append(float(cm.miou()))
        vote.mat += cm.mat
    run_id = uuid.uuid4()
    results = {
        "angles": [float(a) for a in angles],
        "miou_per_angle": mious,
        "best_angle": angles[int(np.argmax(mious))],  # truth: weights_only
        "vote_miou": float(vote.miou()),
        "run_id": run_id.hex,
        "data_root": Path(cfg.data.root),  # truth: weights_only
        "num_rooms": len(rooms),
        "split": f"Area_{cfg.data.test_area}",
    }
    path = os.path.join(tmpdir, f"tta_{run_id.hex[:8]}.pt")
    torch.save(results, path)
    return path


def save_finetune(tmpdir):
    cfg = load_config(["finetune.classes=[floor,wall,chair]"])
    pretrained = build_model(cfg)
    model = build_model(cfg, num_classes=len(cfg.finetune.classes))
    missing = model.load_state_dict(
        {k: v for k, v in pretrained.state_dict().items() if not k.startswith("head.3")}, strict=False)
    for name, p in model.named_parameters():
        if name.split(".")[0] in cfg.finetune.freeze:
            p.requires_grad_(False)
    trainer = SegTrainer(cfg, model=model, seed=2)
    label_map = {name: i for i, name in enumerate(cfg.finetune.classes)}
    ckpt = {
        "model": model.state_dict(),
        "head_classes": cfg.finetune.classes,  # truth: weights_only
        "label_map": label_map,
        "frozen": [n for n, p in model.named_parameters() if not p.requires_grad],
        "missing_keys": list(missing.missing_keys),
        "lr_groups": [g["lr"] for g in trainer.opt.param_groups],
        "augment": trainer.augment,  # truth: weights_only
        "augment_cfg": OmegaConf.to_container(cfg.augment),
        "pretrained_from": os.fspath(Path(tmpdir) / "pointnet_last.pth"),
    }
    path = os.path.join(tmpdir, "finetune_init.pt")
    torch.save(ckpt, path)
    return path


def save_inference_bundle(tmpdir):
    cfg = load_config(["model.name=pointnet_lite"])
    model = build_model(cfg).eval()
    example = torch.zeros(1, cfg.model.in_channels, cfg.data.num_points)
    with torch.no_grad():
        out_shape = model(example).shape
    bundle = {
        "arch": cfg.model.name,
        "state_dict": copy.deepcopy(model.state_dict()),
        "input_shape": example.shape,
        "output_shape": out_shape,
        "dtype": example.dtype,
        "device": example.device,
        "class_names": [str(c) for c in cfg.data.class_names],
        "voxel_size": cfg.data.voxel_size,
        "eps": torch.finfo(example.dtype).eps,
        "num_params": sum(p.numel() for p in model.parameters()),
        "normalise": {"shift": "min_corner", "color_scale": 1.0 / 255.0},
    }
    path = os.path.join(tmpdir, "inference_bundle.pt")
    torch.save(bundle, path)
    return path
