"""Planar grasp prediction from depth images (GG-CNN / GR-ConvNet style).

The network maps a depth crop to per-pixel grasp quality, angle (cos 2θ, sin 2θ) and gripper width.
Configs are YAML read through OmegaConf, networks and losses come out of small registries, and the
camera / hand-eye calibration lives next to the model in the checkpoint.
"""
import functools
import math
from collections import Counter, namedtuple
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf
from scipy.spatial.transform import Rotation

DEFAULT_YAML = """
model:
  name: ggcnn
  channels: [16, 16, 32]
  heads: [quality, cos, sin, width]
  dropout: 0.1
data:
  input_size: 48
  depth_range: [0.25, 1.2]
  augment: [rotate, zoom, flip]
  max_width_px: 60.0
train:
  lr: 1.0e-3
  epochs: 2
  batch_size: 8
  loss: smooth_l1
  loss_weights: {quality: 1.0, angle: 1.0, width: 0.5}
eval:
  iou_threshold: 0.25
  max_angle_deg: 30.0
"""

CameraIntrinsics = namedtuple("CameraIntrinsics", ["fx", "fy", "cx", "cy"])

MODELS = {}
LOSSES = {"smooth_l1": F.smooth_l1_loss, "mse": F.mse_loss}


def register_model(name):
    def deco(cls):
        MODELS[name] = cls
        return cls
    return deco


def load_config(overrides=()):
    base = OmegaConf.create(yaml.safe_load(DEFAULT_YAML))
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


@register_model("ggcnn")
class GGCNN(nn.Module):
    def __init__(self, channels=(16, 16, 32), dropout=0.1):
        super().__init__()
        c1, c2, c3 = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.Dropout2d(dropout),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),
        )
        self.heads = nn.Conv2d(c1, 4, 1)

    def forward(self, depth):
        out = self.heads(self.decoder(self.encoder(depth)))
        q, c, s, w = out.unbind(1)
        return torch.sigmoid(q), c, s, torch.sigmoid(w)


@register_model("grconv_small")
class GRConvSmall(GGCNN):
    def __init__(self, channels=(16, 32, 32), dropout=0.0):
        super().__init__(channels, dropout)
        self.refine = nn.Conv2d(channels[0], channels[0], 3, padding=1)


def build_model(model_cfg):
    cls = MODELS[model_cfg.name]
    return cls(channels=tuple(model_cfg.channels), dropout=model_cfg.dropout)


@dataclass
class GraspRect:
    """One grasp in image space: centre (row, col), angle (rad), width (px), quality."""
    row: float
    col: float
    angle: float
    width: float
    quality: float


def synthetic_batch(cfg, n=16, seed=0):
    rng = np.random.default_rng(seed)
    s = cfg.data.input_size
    lo, hi = cfg.data.depth_range
    depth = rng.uniform(lo, hi, size=(n, 1, s, s)).astype(np.float32)
    q = np.zeros((n, s, s), np.float32)
    ang = rng.uniform(-math.pi / 2, math.pi / 2, size=(n, s, s)).astype(np.float32)
    width = rng.uniform(10, cfg.data.max_width_px, size=(n, s, s)).astype(np.float32)
    for i in range(n):
        r, c = rng.integers(8, s - 8, size=2)
        q[i, r - 3:r + 3, c - 3:c + 3] = 1.0
        depth[i, 0, r - 3:r + 3, c - 3:c + 3] -= 0.05
    targets = np.stack([q, np.cos(2 * ang), np.sin(2 * ang), width / cfg.data.max_width_px], 1)
    return torch.from_numpy(depth), torch.from_numpy(targets)


def grasp_loss(pred, target, weights, loss_name="smooth_l1"):
    fn = LOSSES[loss_name]
    q, c, s, w = pred
    terms = {
        "quality": fn(q, target[:, 0]),
        "angle": fn(c, target[:, 1]) + fn(s, target[:, 2]),
        "width": fn(w, target[:, 3]),
    }
    total = sum(weights[k] * v for k, v in terms.items())
    return total, {k: v.item() for k, v in terms.items()}


def train(cfg, seed=0):
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    weights = OmegaConf.to_container(cfg.train.loss_weights)
    x, y = synthetic_batch(cfg, seed=seed)
    log = []
    for epoch in range(cfg.train.epochs):
        for i in range(0, len(x), cfg.train.batch_size):
            total, parts = grasp_loss(model(x[i:i + 8]), y[i:i + 8], weights, cfg.train.loss)
            opt.zero_grad()
            total.backward()
            opt.step()
        sched.step(total.item())
        log.append({"epoch": epoch, "loss": total.item(), **parts})
    return model, opt, sched, log


def decode_best_grasp(pred, max_width_px):
    q, c, s, w = (t[0].detach().numpy() for t in pred)
    r, col = np.unravel_index(np.argmax(q), q.shape)
    angle = 0.5 * np.arctan2(s[r, col], c[r, col])
    return GraspRect(row=int(r), col=int(col), angle=float(angle),
                     width=float(w[r, col] * max_width_px), quality=q[r, col])


def rect_iou(a, b, size=48):
    """Rasterised IoU of two axis-aligned boxes around the grasp centres (good enough for a check)."""
    def mask(g):
        m = np.zeros((size, size), bool)
        h = max(int(g.width / 4), 1)
        m[max(int(g.row) - h, 0):int(g.row) + h, max(int(g.col) - h, 0):int(g.col) + h] = True
        return m
    ma, mb = mask(a), mask(b)
    return (ma & mb).sum() / max((ma | mb).sum(), 1)


def save_grasp_net(tmpdir):
    cfg = load_config(["model.dropout=0.2", "train.epochs=1"])
    model, opt, _, log = train(cfg)
    ckpt = {
        "state_dict": model.state_dict(),
        "optimizer": opt.state_dict(),
        "cfg": cfg,  # truth: weights_only
        "cfg_resolved": OmegaConf.to_container(cfg, resolve=True),
        "model_name": cfg.model.name,
        "input_size": cfg.data.input_size,
        "depth_range": cfg.data.depth_range,  # truth: weights_only
        "heads": list(cfg.model.heads),
        "train_log": log,
        "augment": OmegaConf.to_yaml(cfg.data),
    }
    path = str(Path(tmpdir) / f"{cfg.model.name}.ckpt")
    torch.save(ckpt, path)
    return path


def calibrate_hand_eye(seed=0):
    rng = np.random.default_rng(seed)
    K = np.array([[615.3, 0.0, 322.1], [0.0, 615.9, 238.4], [0.0, 0.0, 1.0]])
    rot = Rotation.from_euler("xyz", [180.0, 0.0, 90.0 + rng.normal(0, 0.5)], degrees=True)
    t = np.array([0.45, 0.02, 0.62]) + rng.normal(0, 1e-3, 3)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = rot.as_matrix(), t
    residuals = rng.normal(0, 0.4, size=(20, 2))
    return K, rot, T, residuals


def save_calibration(tmpdir):
    K, rot, T, residuals = calibrate_hand_eye(seed=1)
    intr = CameraIntrinsics(K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    calib = {
        "K": torch.as_tensor(K, dtype=torch.float32),
        "intrinsics": intr,  # truth: weights_only
        "intrinsics_dict": {k: float(v) for k, v in intr._asdict().items()},
        "T_base_cam": T.tolist(),
        "hand_eye_rotation": rot,  # truth: weights_only
        "hand_eye_quat_xyzw": rot.as_quat().tolist(),
        "hand_eye_euler_deg": [float(a) for a in rot.as_euler("xyz", degrees=True)],
        "reprojection_error_px": np.linalg.norm(residuals, axis=1).mean(),  # truth: weights_only
        "n_poses": residuals.shape[0],
        "image_size": (480, 640),
        "calibrated_on": date.today().isoformat(),
        "depth_scale": 0.001,
    }
    path = str(Path(tmpdir) / "calibration.ckpt")
    torch.save(calib, path)
    return path


def evaluate_objects(model, cfg, objects, seed=0):
    per_object, grasps = {}, []
    successes = trials = 0
    ious, angle_errors = [], []
    for k, obj in enumerate(objects):
        x, y = synthetic_batch(cfg, n=2, seed=seed + k)
        with torch.no_grad():
            pred = model.eval()(x[:1])
        g = decode_best_grasp(pred, cfg.data.max_width_px)
        gt = decode_best_grasp(tuple(y[:1, i] for i in range(4)), cfg.data.max_width_px)
        iou = rect_iou(g, gt, cfg.data.input_size)
        err = abs(math.degrees(g.angle - gt.angle)) % 180.0
        ok = iou > cfg.eval.iou_threshold and min(err, 180.0 - err) < cfg.eval.max_angle_deg
        successes += int(ok)
        trials += 1
        ious.append(iou)
        angle_errors.append(min(err, 180.0 - err))
        per_object[obj] = {"iou": float(iou), "success": bool(ok), "quality": float(g.quality)}
        grasps.append(g)
    return per_object, grasps, successes, trials, ious, angle_errors


def save_eval_results(tmpdir):
    cfg = load_config(["train.epochs=1"])
    model, _, _, _ = train(cfg, seed=2)
    objects = ["mug", "banana", "screwdriver", "sponge", "marker"]
    per_object, grasps, successes, trials, ious, angle_errors = evaluate_objects(model, cfg, objects)
    best = max(grasps, key=lambda g: g.quality)
    results = {"per_object": per_object}
    results["success_rate"] = successes / trials
    results["mean_iou"] = np.mean(ious)  # truth: weights_only
    results["median_angle_error_deg"] = float(np.median(angle_errors))
    results["best_grasp"] = best  # truth: weights_only
    results["best_grasp_px"] = (best.row, best.col)
    results["best_quality"] = best.quality  # truth: weights_only
    results["best_object"] = objects[grasps.index(best)]
    results["n_trials"] = trials
    results["thresholds"] = {"iou": cfg.eval.iou_threshold, "angle_deg": cfg.eval.max_angle_deg}
    path = str(Path(tmpdir) / "eval_cornell_split.ckpt")
    torch.save(results, path)
    return path


def save_deployable_policy(tmpdir):
    cfg = load_config(["model.name=grconv_small", "train.epochs=1"])
    model, _, _, _ = train(cfg, seed=3)
    model.eval()
    path = str(Path(tmpdir) / "policy_full.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def save_ema_weights(tmpdir):
    cfg = load_config(["train.epochs=1"])
    model, _, _, log = train(cfg, seed=5)
    ema = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    decay = 0.999
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            ema[k].mul_(decay).add_(v, alpha=1 - decay)
    ckpt = {
        "ema": ema,
        "decay": decay,
        "updates": len(log),
        "model_name": str(cfg.model.name),
        "channels": tuple(cfg.model.channels),
        "width_px_max": cfg.data.max_width_px,
        "grasp_count": sum(1 for _ in range(len(log))),
        "pixel_to_m": 1.0 / 615.3,
    }
    path = str(Path(tmpdir) / "ema.ckpt")
    torch.save(ckpt, path)
    return path


def save_training_state(tmpdir):
    cfg = load_config(["train.epochs=2"])
    model, opt, sched, log = train(cfg, seed=4)
    sampler_gen = torch.Generator().manual_seed(4)
    order = torch.randperm(64, generator=sampler_gen)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    state = {
        "epoch": cfg.train.epochs,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "grad_scaler": scaler.state_dict(),
        "sampler_state": sampler_gen.get_state(),
        "sampler_order": order,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.default_rng(4).bit_generator.state},
        "loss_weights": dict(cfg.train.loss_weights),
        "loss_fn": LOSSES[cfg.train.loss],  # truth: weights_only
        "last_loss": log[-1]["loss"],
    }
    path = str(Path(tmpdir) / "train_state.ckpt")
    torch.save(state, path)
    return path


def save_dataset_stats(tmpdir):
    cfg = load_config()
    depth, targets = synthetic_batch(cfg, n=32, seed=6)
    d = depth.numpy()
    grasps_per_image = (targets[:, 0] > 0.5).flatten(1).sum(1).tolist()
    stats = {"depth_mean": d.mean()}  # truth: weights_only
    stats.update(
        depth_std=float(d.std()),
        depth_minmax=(float(d.min()), float(d.max())),
        grasp_pixels_hist=Counter(grasps_per_image),
        augment=list(cfg.data.augment),
        angle_bins=torch.linspace(-math.pi / 2, math.pi / 2, 18),
        held_out_objects=frozenset({"banana", "marker"}),  # truth: weights_only
        width_scale=functools.reduce(max, [cfg.data.max_width_px, 1.0]),
        tensor_shape=depth.shape,
    )
    path = str(Path(tmpdir) / "dataset_stats.ckpt")
    torch.save(stats, path)
    return path


FACTORIES = {
    "GraspRect": lambda: GraspRect(row=24, col=24, angle=0.3, width=31.5, quality=0.91),
}
