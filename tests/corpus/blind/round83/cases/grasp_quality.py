"""Grasp-quality CNN for parallel-jaw grasps on depth images (GQ-CNN style).

Each sample is a depth crop centred on a candidate grasp plus the grasp's depth and in-plane
angle; the label says whether the grasp held in (synthetic) physics.  Configuration is one
OmegaConf YAML document, overridable from the command line as dotlist entries:

    python grasp_quality.py train.epochs=30 optim.lr=0.001 gripper.friction_coef=0.5

The save_* functions are the smoke-test entry points; each writes one checkpoint.
"""
import math
import os
import re
import sys
import time
from collections import Counter, deque, namedtuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from scipy.spatial.transform import Rotation
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve, roc_auc_score

BASE_CONFIG = """
experiment: gqcnn_parallel_jaw
seed: 3
data:
  crop_size: 16
  n_train: 192
  n_val: 96
  depth_range: [0.45, 0.85]
  noise_std: 0.002
  px_to_m: 0.004
  n_objects: 60
  val_objects: 12
gripper:
  max_width: 0.085
  finger_depth: 0.02
  friction_coef: 0.6
model:
  in_size: ${data.crop_size}
  channels: [8, 16]
  fc: 32
  dropout: 0.1
optim:
  lr: 0.002
  weight_decay: 1.0e-4
  betas: [0.9, 0.999]
sched:
  name: cosine
  warmup_steps: 4
  min_lr: 1.0e-5
train:
  epochs: 3
  batch_size: 32
  log_every: 5
  amp: false
eval:
  target_precision: 0.9
"""

GripperSpec = namedtuple("GripperSpec", ["max_width", "finger_depth", "friction_coef"])
CAMERA_K = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])
OBJECT_ID = re.compile(r"^(?P<dataset>ycb|egad)_(?P<idx>\d{3})$")


def load_config(overrides=()):
    base = OmegaConf.create(BASE_CONFIG)
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


def object_names(cfg):
    n_ycb = cfg.data.n_objects // 2
    return [f"ycb_{i:03d}" for i in range(n_ycb)] + [f"egad_{i:03d}" for i in range(cfg.data.n_objects - n_ycb)]


# ----------------------------------------------------------------------------- synthetic grasps

def render_grasps(cfg, n, rng, objects):
    """Depth crops of a box on a table, grasp axis along image x.  A grasp succeeds when the
    object fits between the jaws, the jaws close within the friction cone and deep enough."""
    c = cfg.data.crop_size
    lo, hi = cfg.data.depth_range
    cone = math.atan(cfg.gripper.friction_coef)
    yy, xx = np.mgrid[0:c, 0:c] - (c - 1) / 2.0
    depth = np.empty((n, 1, c, c), np.float32)
    pose = np.empty((n, 2), np.float32)
    label = np.empty(n, np.int64)
    obj = rng.integers(0, len(objects), n)
    for i in range(n):
        table = rng.uniform(lo, hi)
        w, h = rng.uniform(2.0, c * 0.9, size=2)
        height = rng.uniform(0.01, 0.06)
        ang = rng.uniform(-np.pi / 2, np.pi / 2)
        u = xx * np.cos(ang) + yy * np.sin(ang)
        v = -xx * np.sin(ang) + yy * np.cos(ang)
        inside = (np.abs(u) < w / 2) & (np.abs(v) < h / 2)
        depth[i, 0] = table - height * inside + rng.normal(0.0, cfg.data.noise_std, (c, c))
        grasp_depth = table - height + rng.uniform(-0.01, 0.03)
        width_m = (w * abs(np.cos(ang)) + h * abs(np.sin(ang))) * cfg.data.px_to_m
        fits = width_m < cfg.gripper.max_width
        in_cone = abs(ang) < cone + 0.25
        deep_enough = grasp_depth - (table - height) < cfg.gripper.finger_depth
        label[i] = int(fits and in_cone and deep_enough)
        pose[i] = (grasp_depth, ang)
    return {"depth": depth, "pose": pose, "label": label, "object": obj}


def make_splits(cfg):
    rng = np.random.default_rng(cfg.seed)
    objects = object_names(cfg)
    train = render_grasps(cfg, cfg.data.n_train, rng, objects[:-cfg.data.val_objects])
    val = render_grasps(cfg, cfg.data.n_val, rng, objects[-cfg.data.val_objects:])
    return train, val


# ----------------------------------------------------------------------------- model

class GQCNN(nn.Module):
    def __init__(self, in_size=16, channels=(8, 16), fc=32, dropout=0.1):
        super().__init__()
        c0, c1 = channels
        self.image = nn.Sequential(
            nn.Conv2d(1, c0, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c0, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        )
        self.pose = nn.Sequential(nn.Linear(2, 16), nn.ReLU())
        self.head = nn.Sequential(
            nn.Linear(c1 * (in_size // 4) ** 2 + 16, fc), nn.ReLU(), nn.Dropout(dropout), nn.Linear(fc, 1))

    def forward(self, depth, pose):
        return self.head(torch.cat([self.image(depth), self.pose(pose)], dim=1)).squeeze(1)


def build_model(cfg: DictConfig):
    m = cfg.model
    return GQCNN(in_size=m.in_size, channels=tuple(m.channels), fc=m.fc, dropout=m.dropout)


class GraspTrainer:
    def __init__(self, cfg, model):
        self.cfg = cfg
        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr,
                                           weight_decay=cfg.optim.weight_decay, betas=tuple(cfg.optim.betas))
        self.scaler = torch.amp.GradScaler("cpu", enabled=cfg.train.amp)
        self.recent_losses = deque(maxlen=cfg.train.log_every)
        self.rng = np.random.default_rng(cfg.seed)
        self.step = 0
        self.epoch = 0
        self.log = []
        self.depth_mean = None
        self.depth_std = None

    def lr_at(self, step, total):
        s = self.cfg.sched
        if step < s.warmup_steps:
            return self.cfg.optim.lr * (step + 1) / s.warmup_steps
        t = (step - s.warmup_steps) / max(1, total - s.warmup_steps)
        return s.min_lr + 0.5 * (self.cfg.optim.lr - s.min_lr) * (1 + math.cos(math.pi * t))

    def _tensors(self, split):
        d = (split["depth"] - self.depth_mean) / self.depth_std
        return torch.from_numpy(d), torch.from_numpy(split["pose"]), torch.from_numpy(split["label"]).float()

    def fit(self, train):
        self.depth_mean = train["depth"].mean()
        self.depth_std = train["depth"].std() + 1e-6
        d, p, y = self._tensors(train)
        bs = self.cfg.train.batch_size
        total = self.cfg.train.epochs * math.ceil(len(y) / bs)
        for self.epoch in range(self.cfg.train.epochs):
            self.model.train()
            order = self.rng.permutation(len(y))
            for start in range(0, len(y), bs):
                idx = torch.from_numpy(order[start:start + bs])
                for group in self.optimizer.param_groups:
                    group["lr"] = self.lr_at(self.step, total)
                with torch.autocast("cpu", enabled=self.cfg.train.amp):
                    loss = F.binary_cross_entropy_with_logits(self.model(d[idx], p[idx]), y[idx])
                self.optimizer.zero_grad()
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.recent_losses.append(loss.item())
                self.step += 1
                if self.step % self.cfg.train.log_every == 0:
                    self.log.append({"step": self.step, "loss": sum(self.recent_losses) / len(self.recent_losses),
                                     "lr": self.optimizer.param_groups[0]["lr"]})
        return self

    @torch.no_grad()
    def evaluate(self, split):
        self.model.eval()
        d, p, y = self._tensors(split)
        scores = torch.sigmoid(self.model(d, p)).numpy()
        labels = split["label"]
        return {
            "ap": average_precision_score(labels, scores),
            "auc": roc_auc_score(labels, scores),
            "success_rate": labels.mean(),
            "n": len(labels),
        }, scores

    def threshold_for_precision(self, scores, labels, target):
        prec, rec, thr = precision_recall_curve(labels, scores)
        ok = np.flatnonzero(prec[:-1] >= target)
        k = ok[0] if len(ok) else int(np.argmax(prec[:-1]))
        return thr[k], rec[k]

    def checkpoint(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
        }


def train_from_overrides(overrides=()):
    cfg = load_config(overrides)
    torch.manual_seed(cfg.seed)
    train, val = make_splits(cfg)
    trainer = GraspTrainer(cfg, build_model(cfg)).fit(train)
    return cfg, trainer, train, val


# ----------------------------------------------------------------------------- entry points

def save_gqcnn_checkpoint(tmpdir):
    cfg, trainer, train, val = train_from_overrides(["train.epochs=2"])
    ckpt = trainer.checkpoint()
    ckpt["cfg"] = cfg  # truth: weights_only
    ckpt["resolved_cfg"] = OmegaConf.to_container(cfg, resolve=True)
    ckpt["model_cfg"] = cfg.model  # truth: weights_only
    ckpt["sched"] = dict(cfg.sched)
    ckpt["crop_size"] = cfg.data.crop_size
    ckpt["depth_range"] = cfg.data.depth_range  # truth: weights_only
    ckpt["loss_tail"] = list(trainer.recent_losses)
    ckpt["log"] = trainer.log
    ckpt["depth_norm"] = {"mean": float(trainer.depth_mean), "std": trainer.depth_std.item()}
    ckpt["argv"] = sys.argv[1:]
    path = os.path.join(tmpdir, "gqcnn.pt")
    torch.save(ckpt, path)
    return path


def save_grasp_eval(tmpdir):
    cfg, trainer, train, val = train_from_overrides(["train.epochs=3", "seed=8"])
    metrics, scores = trainer.evaluate(val)
    thr, recall = trainer.threshold_for_precision(scores, val["label"], cfg.eval.target_precision)
    cm = confusion_matrix(val["label"], (scores >= thr).astype(int), labels=[0, 1])
    tn, fp, fn, tp = cm.ravel()
    per_object = {}
    for o in np.unique(val["object"]).tolist():
        sel = val["object"] == o
        per_object[o] = {"n": int(sel.sum()), "success": float(val["label"][sel].mean())}
    result = {
        "threshold": thr,  # truth: weights_only
        "recall_at_threshold": float(recall),
        "target_precision": cfg.eval.target_precision,
        "ap": metrics["ap"],
        "auc": metrics["auc"],
        "success_rate": metrics["success_rate"],  # truth: weights_only
        "n_val": metrics["n"],
        "confusion": cm.ravel().tolist(),
        "false_positives": int(fp),
        "precision": float(tp / max(tp + fp, 1)),
        "per_object": per_object,
        "camera_K": torch.from_numpy(CAMERA_K),
    }
    path = os.path.join(tmpdir, "grasp_eval.pt")
    torch.save({"model": trainer.model.state_dict(), "eval": result}, path)
    return path


def save_full_training_state(tmpdir):
    cfg, trainer, train, val = train_from_overrides(["train.epochs=1", "optim.lr=0.001"])
    state = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer,  # truth: weights_only
        "scaler": trainer.scaler.state_dict(),
        "sampler_rng": trainer.rng,  # truth: weights_only
        "sampler_rng_state": trainer.rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "step": trainer.step,
        "epoch": trainer.epoch,
        "lr": trainer.optimizer.param_groups[0]["lr"],
        "cuda": torch.cuda.is_available(),
    }
    path = os.path.join(tmpdir, "train_state.pt")
    torch.save(state, path)
    return path


def save_gripper_and_objects(tmpdir):
    cfg = load_config(["gripper.friction_coef=0.5"])
    gripper = GripperSpec(**cfg.gripper)
    names = object_names(cfg)
    matched = [OBJECT_ID.match(n) for n in names]
    n_train_obj = cfg.data.n_objects - cfg.data.val_objects
    approach = Rotation.from_euler("xyz", [180.0, 0.0, 90.0], degrees=True)
    meta = {
        "gripper": gripper,  # truth: weights_only
        "gripper_dict": gripper._asdict(),
        "object_pattern": OBJECT_ID,  # truth: weights_only
        "object_pattern_src": OBJECT_ID.pattern,
        "dataset_counts": Counter(m.group("dataset") for m in matched if m),
        "train_objects": range(n_train_obj),  # truth: weights_only
        "val_objects": list(range(n_train_obj, cfg.data.n_objects)),
        "approach_quat": approach.as_quat().tolist(),
        "friction_cone_deg": math.degrees(math.atan(gripper.friction_coef)),
        "camera_fx": CAMERA_K[0, 0].item(),
        "camera_K": CAMERA_K.tolist(),
    }
    path = os.path.join(tmpdir, "gripper_meta.pt")
    torch.save(meta, path)
    return path


def save_export_bundle(tmpdir):
    cfg, trainer, train, val = train_from_overrides(["train.epochs=1", "seed=21"])
    norm = {"depth_mean": trainer.depth_mean, "depth_std": trainer.depth_std, "crop": cfg.data.crop_size}
    path = os.path.join(tmpdir, "gqcnn_export.pt")
    torch.save((trainer.model.state_dict(), norm), path)  # truth: weights_only
    return path


def save_clean_resume(tmpdir):
    cfg, trainer, train, val = train_from_overrides(["train.epochs=2", "seed=4"])
    metrics, _ = trainer.evaluate(val)
    ckpt = trainer.checkpoint()
    ckpt.update({
        "cfg_yaml": OmegaConf.to_yaml(cfg),
        "rng_state": trainer.rng.bit_generator.state,
        "best_ap": metrics["ap"],
        "success_rate": float(metrics["success_rate"]),
        "depth_range": list(cfg.data.depth_range),
        "betas": tuple(cfg.optim.betas),
        "gripper": dict(GripperSpec(**cfg.gripper)._asdict()),
        "camera_K": torch.tensor(CAMERA_K, dtype=torch.float32),
        "depth_norm": (float(trainer.depth_mean), float(trainer.depth_std)),
        "saved_unix": int(time.time()),
    })
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {"GraspTrainer": lambda: GraspTrainer(load_config(), GQCNN())}
