"""Pillar-based 3D object detection from LiDAR sweeps (PointPillars-like, OpenPCDet-style layout).

Configs are YAML read by OmegaConf; models are built from registries by name. Voxelization runs in
numpy on the CPU (a stand-in for spconv's VoxelGenerator), the detector in torch.
"""
import os
import time
from collections import Counter

import numpy as np
import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

CFG_YAML = """
data:
  class_names: [Car, Pedestrian, Cyclist]
  point_cloud_range: [0.0, -19.2, -3.0, 38.4, 19.2, 1.0]
  num_frames: 6
  points_per_frame: 1500
voxel:
  size: [0.6, 0.6, 4.0]
  max_points_per_voxel: 16
  max_voxels: 3000
model:
  name: PointPillarsTiny
  vfe: {name: PillarVFE, out_channels: 16}
  backbone: {name: BEVBackbone, channels: [16, 32]}
  head: {name: CenterHead, num_classes: 3}
optim:
  lr: 0.003
  weight_decay: 0.01
  epochs: 2
eval:
  dist_thresholds: [0.5, 1.0, 2.0]
  score_thresh: 0.1
  max_dets: 50
"""


class Registry:
    def __init__(self, name="registry"):
        self.name = name
        self._modules = {}

    def register(self, cls):
        self._modules[cls.__name__] = cls
        return cls

    def build(self, cfg, **extra):
        args = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        return self._modules[args.pop("name")](**args, **extra)


VFES, BACKBONES, HEADS, DETECTORS = Registry("vfe"), Registry("backbone"), Registry("head"), Registry("detector")


class VoxelGenerator:
    def __init__(self, voxel_size=(0.6, 0.6, 4.0), point_cloud_range=(0.0, -19.2, -3.0, 38.4, 19.2, 1.0),
                 max_points_per_voxel=16, max_voxels=3000):
        self.voxel_size = np.asarray(voxel_size, dtype=np.float32)
        self.pc_range = np.asarray(point_cloud_range, dtype=np.float32)
        self.grid_size = np.round((self.pc_range[3:] - self.pc_range[:3]) / self.voxel_size).astype(np.int64)
        self.max_points = max_points_per_voxel
        self.max_voxels = max_voxels

    def generate(self, points):
        """points (N, 4) -> voxels (V, T, 4), coords (V, 3) as (z, y, x), num_points (V,)."""
        keep = np.all((points[:, :3] >= self.pc_range[:3]) & (points[:, :3] < self.pc_range[3:]), axis=1)
        pts = points[keep]
        idx = ((pts[:, :3] - self.pc_range[:3]) / self.voxel_size).astype(np.int64)
        keys, inverse = np.unique(idx[:, ::-1], axis=0, return_inverse=True)
        keys, n_vox = keys[: self.max_voxels], min(len(keys), self.max_voxels)
        voxels = np.zeros((n_vox, self.max_points, 4), np.float32)
        counts = np.zeros(n_vox, np.int64)
        for p, v in zip(pts, inverse.ravel()):
            if v < n_vox and counts[v] < self.max_points:
                voxels[v, counts[v]] = p
                counts[v] += 1
        return voxels, keys, counts


@VFES.register
class PillarVFE(nn.Module):
    def __init__(self, out_channels=16, in_channels=4):
        super().__init__()
        self.linear = nn.Linear(in_channels + 3, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, voxels, num_points):
        mean = voxels[..., :3].sum(1, keepdim=True) / num_points.clamp(min=1)[:, None, None]
        x = torch.cat([voxels, voxels[..., :3] - mean], dim=-1)
        x = torch.relu(self.norm(self.linear(x).transpose(1, 2)).transpose(1, 2))
        return x.max(dim=1).values


@BACKBONES.register
class BEVBackbone(nn.Module):
    def __init__(self, in_channels=16, channels=(16, 32)):
        super().__init__()
        layers, c = [], in_channels
        for out in channels:
            layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            c = out
        self.blocks = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, x):
        return self.blocks(x)


@HEADS.register
class CenterHead(nn.Module):
    def __init__(self, in_channels=32, num_classes=3):
        super().__init__()
        self.heatmap = nn.Conv2d(in_channels, num_classes, 1)
        self.reg = nn.Conv2d(in_channels, 6, 1)  # dx, dy, z, log w, log l, yaw
        nn.init.constant_(self.heatmap.bias, -2.19)

    def forward(self, x):
        return self.heatmap(x), self.reg(x)


@DETECTORS.register
class PointPillarsTiny(nn.Module):
    def __init__(self, vfe=None, backbone=None, head=None, grid_size=(64, 64, 1)):
        super().__init__()
        self.vfe = VFES.build(vfe or {"name": "PillarVFE"})
        self.backbone = BACKBONES.build(backbone or {"name": "BEVBackbone"}, in_channels=self.vfe.linear.out_features)
        self.head = HEADS.build(head or {"name": "CenterHead"}, in_channels=self.backbone.out_channels)
        self.nx, self.ny = int(grid_size[0]), int(grid_size[1])

    def scatter(self, feats, coords, batch_idx, batch_size):
        canvas = feats.new_zeros(batch_size, feats.shape[1], self.ny * self.nx)
        flat = coords[:, 1] * self.nx + coords[:, 2]
        canvas[batch_idx, :, flat] = feats
        return canvas.view(batch_size, -1, self.ny, self.nx)

    def forward(self, voxels, coords, num_points, batch_idx, batch_size):
        bev = self.scatter(self.vfe(voxels, num_points), coords, batch_idx, batch_size)
        return self.head(self.backbone(bev))


def synth_frames(cfg, seed=0):
    """Ground plane + a few box-shaped clusters per frame; gt boxes as (x, y, z, w, l, yaw, cls)."""
    rng = np.random.default_rng(seed)
    r = cfg.data.point_cloud_range
    frames = []
    for _ in range(cfg.data.num_frames):
        ground = np.c_[rng.uniform(r[0], r[3], (cfg.data.points_per_frame, 2)) * [1, 0] + [0, 1]
                       * rng.uniform(r[1], r[4], (cfg.data.points_per_frame, 2)),
                       np.full(cfg.data.points_per_frame, -1.7), rng.uniform(0, 0.3, cfg.data.points_per_frame)]
        boxes, objs = [], []
        for k in range(rng.integers(2, 5)):
            cls = int(rng.integers(0, len(cfg.data.class_names)))
            cx, cy = rng.uniform(r[0] + 3, r[3] - 3), rng.uniform(r[1] + 3, r[4] - 3)
            w, l = [(1.8, 4.2), (0.6, 0.8), (0.6, 1.8)][cls]
            pts = np.c_[rng.normal(cx, l / 4, 120), rng.normal(cy, w / 4, 120), rng.uniform(-1.6, 0.0, 120),
                        rng.uniform(0.4, 1.0, 120)]
            objs.append(pts)
            boxes.append([cx, cy, -0.8, w, l, rng.uniform(-np.pi, np.pi), cls])
        frames.append((np.vstack([ground] + objs).astype(np.float32), np.array(boxes, np.float32)))
    return frames


class DetTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg if cfg is not None else OmegaConf.create(CFG_YAML)
        c = self.cfg
        self.voxel_gen = VoxelGenerator(c.voxel.size, c.data.point_cloud_range,
                                        c.voxel.max_points_per_voxel, c.voxel.max_voxels)
        self.model = DETECTORS.build(c.model, grid_size=self.voxel_gen.grid_size.tolist())
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=c.optim.lr, weight_decay=c.optim.weight_decay)
        self.epoch, self.it = 0, 0
        self.map_history = []

    def collate(self, frames):
        vs, cs, ns, bs, targets = [], [], [], [], []
        for b, (points, boxes) in enumerate(frames):
            v, c, n = self.voxel_gen.generate(points)
            vs.append(v), cs.append(c), ns.append(n), bs.append(np.full(len(v), b))
            targets.append(boxes)
        t = lambda a, dt: torch.from_numpy(np.concatenate(a)).to(dt)
        return (t(vs, torch.float32), t(cs, torch.long), t(ns, torch.float32), t(bs, torch.long)), targets

    def heatmap_targets(self, targets, shape):
        hm = torch.zeros(shape)
        vs, r = self.voxel_gen.voxel_size, self.voxel_gen.pc_range
        for b, boxes in enumerate(targets):
            for x, y, *_, cls in boxes:
                ix, iy = int((x - r[0]) / vs[0]), int((y - r[1]) / vs[1])
                hm[b, int(cls), iy, ix] = 1.0
        return hm

    def train_one_epoch(self, frames):
        self.model.train()
        inputs, targets = self.collate(frames)
        heat, _ = self.model(*inputs, batch_size=len(frames))
        loss = nn.functional.binary_cross_entropy_with_logits(heat, self.heatmap_targets(targets, heat.shape))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.epoch += 1
        self.it += 1
        return loss.item()

    @torch.no_grad()
    def evaluate(self, frames):
        """Center-distance AP per class (nuScenes style), averaged over distance thresholds."""
        self.model.eval()
        inputs, targets = self.collate(frames)
        heat, _ = self.model(*inputs, batch_size=len(frames))
        scores = heat.sigmoid()
        vs, r = self.voxel_gen.voxel_size, self.voxel_gen.pc_range
        aps = {}
        for k, name in enumerate(self.cfg.data.class_names):
            ap_t = []
            for thr in self.cfg.eval.dist_thresholds:
                hits, n_gt = [], 0
                for b, boxes in enumerate(targets):
                    gt = boxes[boxes[:, 6] == k, :2]
                    n_gt += len(gt)
                    s, idx = scores[b, k].flatten().topk(self.cfg.eval.max_dets)
                    ys, xs = (idx // scores.shape[-1]).numpy(), (idx % scores.shape[-1]).numpy()
                    centers = np.c_[r[0] + (xs + 0.5) * vs[0], r[1] + (ys + 0.5) * vs[1]]
                    for sc, c in zip(s.numpy(), centers):
                        d = np.linalg.norm(gt - c, axis=1) if len(gt) else np.array([np.inf])
                        hits.append((sc, d.min() < thr))
                hits.sort(key=lambda h: -h[0])
                tp = np.cumsum([h[1] for h in hits])
                ap_t.append(np.mean(tp / np.arange(1, len(tp) + 1)) * min(tp[-1] / max(n_gt, 1), 1.0))
            aps[name] = np.mean(ap_t)
        self.map_history.append(np.mean(list(aps.values())))
        return aps, scores


def checkpoint_state(model, optimizer=None, epoch=None, it=None):
    """OpenPCDet's layout: everything here is tensors or plain numbers."""
    optim_state = optimizer.state_dict() if optimizer is not None else None
    return {"epoch": epoch, "it": it, "model_state": model.state_dict(), "optimizer_state": optim_state,
            "version": "pcdet+0.6.0"}


def run(epochs=None, seed=0):
    trainer = DetTrainer()
    frames = synth_frames(trainer.cfg, seed)
    losses = [trainer.train_one_epoch(frames) for _ in range(epochs or trainer.cfg.optim.epochs)]
    return trainer, frames, losses


def save_detector_checkpoint(tmpdir):
    trainer, frames, losses = run()
    cfg, vg = trainer.cfg, trainer.voxel_gen
    ckpt = checkpoint_state(trainer.model, trainer.optimizer, trainer.epoch, trainer.it)
    ckpt.update({
        "cfg": cfg,  # truth: weights_only
        "cfg_dict": OmegaConf.to_container(cfg, resolve=True),
        "voxel_size": vg.voxel_size,  # truth: weights_only
        "pc_range": list(cfg.data.point_cloud_range),
        "grid_size": tuple(vg.grid_size),  # truth: weights_only
        "grid_size_list": vg.grid_size.tolist(),
        "class_names": cfg.data.class_names,  # truth: weights_only
        "max_points_per_voxel": cfg.voxel.max_points_per_voxel,
        "losses": losses,
    })
    ckpt["voxel_generator"] = vg  # truth: weights_only
    path = os.path.join(tmpdir, "checkpoint_epoch_%d.pth" % trainer.epoch)
    torch.save(ckpt, path)
    return path


def save_eval_checkpoint(tmpdir):
    trainer, frames, losses = run()
    aps, scores = trainer.evaluate(frames)
    aps_2, _ = trainer.evaluate(frames)
    eval_state = {
        "mAP": np.mean(list(aps.values())),  # truth: weights_only
        "ap_per_class": {name: float(ap) for name, ap in aps.items()},
        "best_map": max(trainer.map_history),  # truth: weights_only
        "best_epoch": int(np.argmax(trainer.map_history)),
        "dist_thresholds": list(trainer.cfg.eval.dist_thresholds),
        "mean_score": scores.mean().item(),
        "score_q95": torch.quantile(scores.flatten(), 0.95),
        "peak_per_class": scores.amax(dim=(0, 2, 3)),
        "evaluated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    state = checkpoint_state(trainer.model, epoch=trainer.epoch)
    state["eval"] = eval_state
    state["train_loss"] = losses[-1]
    state["gt_per_class"] = Counter(int(b[6]) for _, boxes in frames for b in boxes)
    path = os.path.join(tmpdir, "eval_epoch_%d.pth" % trainer.epoch)
    torch.save(state, path)
    return path


def save_deploy_model(tmpdir):
    """The deploy team wanted 'one file with the network in it'."""
    trainer, _, _ = run(epochs=1)
    path = os.path.join(tmpdir, "pointpillars_full.pth")
    torch.save(trainer.model.eval(), path)  # truth: weights_only
    return path


def save_dataset_infos(tmpdir):
    """GT database stats and anchor-free head priors for the data loader; all plain values."""
    cfg = OmegaConf.create(CFG_YAML)
    frames = synth_frames(cfg, seed=3)
    vg = VoxelGenerator(cfg.voxel.size, cfg.data.point_cloud_range, cfg.voxel.max_points_per_voxel)
    infos, n_voxels = [], []
    for frame_id, (points, boxes) in enumerate(frames):
        _, coords, counts = vg.generate(points)
        n_voxels.append(len(coords))
        infos.append({
            "frame_id": "%06d" % frame_id,
            "num_points": int(points.shape[0]),
            "gt_boxes": torch.from_numpy(boxes[:, :6]),
            "gt_names": [cfg.data.class_names[int(c)] for c in boxes[:, 6]],
            "mean_pts_per_voxel": float(counts.mean()),
        })
    sizes = np.concatenate([b[:, 3:5] for _, b in frames])
    db = {
        "infos": infos,
        "class_names": list(cfg.data.class_names),
        "mean_size": torch.from_numpy(sizes.mean(0)),
        "num_voxels_p95": float(np.percentile(n_voxels, 95)),
        "max_voxels_seen": max(n_voxels),
        "grid_size": [int(g) for g in vg.grid_size],
        "voxel_size": vg.voxel_size.tolist(),
        "point_cloud_range": OmegaConf.to_container(cfg.data.point_cloud_range),
        "optim_cfg": dict(cfg.optim),
        "eval_cfg": OmegaConf.to_container(cfg.eval),
        "created": time.time(),
    }
    path = os.path.join(tmpdir, "dbinfos.pth")
    torch.save(db, path)
    return path


FACTORIES = {}
