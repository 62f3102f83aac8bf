"""Top-down heatmap keypoint detector: Gaussian targets, flip test, PCK / OKS evaluation.

A SimpleBaseline/HRNet-style loop shrunk to a toy: a strided conv backbone predicts one heatmap per
joint, targets are Gaussians at the (down-sampled) keypoints, and validation runs a flip test and
accumulates per-joint pixel errors and OKS scores in an evaluator.
"""
import argparse
import dataclasses
import datetime
import enum
import hashlib
import os
import time
from collections import defaultdict, deque
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

JOINTS = ("nose", "l_eye", "r_eye", "l_shoulder", "r_shoulder", "l_wrist", "r_wrist")
FLIP_PAIRS = [(1, 2), (3, 4), (5, 6)]
# COCO per-keypoint falloff (the subset of the joints above)
KPT_SIGMAS = np.array([0.026, 0.025, 0.025, 0.079, 0.079, 0.062, 0.062])
OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)


class HeatmapType(enum.Enum):
    GAUSSIAN = "gaussian"
    OFFSET = "offset"


@dataclasses.dataclass
class PoseConfig:
    input_size: tuple = (32, 32)
    heatmap_size: tuple = (8, 8)
    sigma: float = 1.5
    lr: float = 1e-3
    epochs: int = 2
    batch_size: int = 8
    pck_thr: float = 0.2
    target_type: HeatmapType = HeatmapType.GAUSSIAN


def parse_args(argv=None):
    p = argparse.ArgumentParser("train_pose")
    p.add_argument("--sigma", type=float, default=1.5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--work-dir", default="work_dirs/pose")
    p.add_argument("--flip-test", action="store_true")
    return p.parse_args(argv)


class TinyPoseNet(nn.Module):
    def __init__(self, num_joints=len(JOINTS), width=8):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
        )
        self.final_layer = nn.Conv2d(width, num_joints, kernel_size=1)

    def forward(self, x):
        return self.final_layer(self.backbone(x))


def synthetic_batch(rng, n=8, size=32, num_joints=len(JOINTS)):
    """Random crops with keypoints in input pixels: (images, kpts[N, J, 3], bbox side, area)."""
    images = rng.standard_normal((n, 3, size, size)).astype(np.float32)
    xy = rng.uniform(2, size - 2, (n, num_joints, 2))
    vis = np.where(rng.uniform(size=(n, num_joints, 1)) > 0.2, 2.0, 0.0)
    kpts = np.concatenate([xy, vis], axis=-1)
    return torch.from_numpy(images), kpts, np.full(n, float(size)), np.full(n, float(size * size))


def make_gaussian_targets(kpts, heatmap_size, stride, sigma):
    h, w = heatmap_size
    ys, xs = np.mgrid[0:h, 0:w]
    n, j = kpts.shape[:2]
    target = np.zeros((n, j, h, w), dtype=np.float32)
    target_weight = (kpts[..., 2] > 0).astype(np.float32)
    for i in range(n):
        for k in range(j):
            mu_x, mu_y = kpts[i, k, 0] / stride, kpts[i, k, 1] / stride
            target[i, k] = np.exp(-((xs - mu_x) ** 2 + (ys - mu_y) ** 2) / (2 * sigma ** 2))
    return target, target_weight


def joints_mse(output, target, target_weight):
    w = target_weight[..., None, None]
    return 0.5 * F.mse_loss(output * w, target * w)


def get_max_preds(heatmaps):
    """argmax decoding: (N, J, H, W) numpy -> coords (N, J, 2) in heatmap pixels, maxvals (N, J)."""
    n, j, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, j, -1)
    idx = np.argmax(flat, axis=2)
    maxvals = np.max(flat, axis=2)
    preds = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
    preds *= (maxvals > 0)[..., None]
    return preds, maxvals


def flip_back(heatmaps, flip_pairs):
    flipped = heatmaps.flip(-1).clone()
    for left, right in flip_pairs:
        flipped[:, [left, right]] = flipped[:, [right, left]]
    return flipped


def flip_test(model, images, flip_pairs=FLIP_PAIRS, shift_heatmap=True):
    with torch.no_grad():
        out = model(images)
        out_flipped = flip_back(model(images.flip(-1)), flip_pairs)
        if shift_heatmap:
            out_flipped[..., 1:] = out_flipped.clone()[..., :-1]
    return (out + out_flipped) * 0.5


def pck(pred, gt, vis, bbox_size, thr):
    """Percentage of correct keypoints, normalised by the box side. Returns (overall, per joint)."""
    dist = np.linalg.norm(pred - gt, axis=-1) / bbox_size[:, None]
    visible = vis > 0
    hit = (dist <= thr) & visible
    per_joint = hit.sum(axis=0) / np.maximum(visible.sum(axis=0), 1)
    overall = hit.sum() / max(int(visible.sum()), 1)
    return overall, per_joint


def oks(pred, gt, vis, area, sigmas=KPT_SIGMAS):
    d2 = ((pred - gt) ** 2).sum(axis=-1)
    var = (2 * sigmas) ** 2
    e = d2 / (var * (area[:, None] + np.spacing(1)) * 2)
    visible = vis > 0
    return np.sum(np.exp(-e) * visible, axis=1) / np.maximum(visible.sum(axis=1), 1)


class KeypointEvaluator:
    """Accumulates per-joint pixel errors, PCK hits and OKS over a validation pass."""

    def __init__(self, joint_names=JOINTS, pck_thr=0.2, stride=4):
        self.joint_names = list(joint_names)
        self.pck_thr = pck_thr
        self.stride = stride
        self.reset()

    def reset(self):
        self.per_joint_errors = defaultdict(list)
        self.oks_scores = []
        self.preds, self.gts, self.vis, self.boxes = [], [], [], []

    def update(self, heatmaps, gt_kpts, bbox_size, area):
        preds, _ = get_max_preds(heatmaps.detach().cpu().numpy())
        preds = preds * self.stride
        gt, vis = gt_kpts[..., :2], gt_kpts[..., 2]
        err = np.linalg.norm(preds - gt, axis=-1)
        for j, name in enumerate(self.joint_names):
            seen = vis[:, j] > 0
            self.per_joint_errors[name].extend(err[seen, j])
        self.oks_scores.extend(oks(preds, gt, vis, area).tolist())
        self.preds.append(preds)
        self.gts.append(gt)
        self.vis.append(vis)
        self.boxes.append(bbox_size)

    def compute(self):
        pred, gt = np.concatenate(self.preds), np.concatenate(self.gts)
        vis, boxes = np.concatenate(self.vis), np.concatenate(self.boxes)
        overall, per_joint = pck(pred, gt, vis, boxes, self.pck_thr)
        scores = np.asarray(self.oks_scores)
        ap = np.mean([(scores >= t).mean() for t in OKS_THRESHOLDS])
        mean_err = {k: float(np.mean(v)) for k, v in self.per_joint_errors.items() if len(v)}
        return {"pck": overall, "pck_per_joint": per_joint, "AP": ap, "mean_error": mean_err}


class PoseTrainer:
    def __init__(self, cfg=None, seed=0):
        self.cfg = cfg or PoseConfig()
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.stride = np.array(self.cfg.input_size) // np.array(self.cfg.heatmap_size)
        self.model = TinyPoseNet()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=[1], gamma=0.1)
        self.evaluator = KeypointEvaluator(pck_thr=self.cfg.pck_thr, stride=int(self.stride[0]))
        self.history = []
        self.recent_losses = deque(maxlen=5)
        self.best_pck = 0.0
        self.best_epoch = -1
        self.started_at = datetime.datetime.now()

    def train_epoch(self):
        self.model.train()
        images, kpts, _, _ = synthetic_batch(self.rng, n=self.cfg.batch_size)
        target, weight = make_gaussian_targets(kpts, self.cfg.heatmap_size, self.stride[0], self.cfg.sigma)
        loss = joints_mse(self.model(images), torch.from_numpy(target), torch.from_numpy(weight))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.recent_losses.append(loss.item())
        return loss.item()

    def validate(self, use_flip=True):
        self.model.eval()
        self.evaluator.reset()
        images, kpts, boxes, areas = synthetic_batch(self.rng, n=self.cfg.batch_size)
        heatmaps = flip_test(self.model, images) if use_flip else self.model(images)
        self.evaluator.update(heatmaps, kpts, boxes, areas)
        return self.evaluator.compute()

    def fit(self):
        metrics = {}
        for epoch in range(self.cfg.epochs):
            loss = self.train_epoch()
            metrics = self.validate()
            self.history.append({"epoch": epoch, "loss": loss, "pck": metrics["pck"]})
            if metrics["pck"] >= self.best_pck:
                self.best_pck = metrics["pck"]
                self.best_epoch = epoch
            self.scheduler.step()
        return metrics


FACTORIES = {
    "HeatmapType": lambda: HeatmapType.GAUSSIAN,
    "PoseTrainer": lambda: PoseTrainer(PoseConfig(epochs=1)),
}


def save_pose_checkpoint(tmpdir):
    trainer = PoseTrainer(PoseConfig(epochs=2))
    trainer.fit()
    ckpt = {
        "epoch": trainer.cfg.epochs,
        "state_dict": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "lr_scheduler": trainer.scheduler.state_dict(),
        "best_pck": trainer.best_pck,  # truth: weights_only
        "best_epoch": trainer.best_epoch,
        "history": trainer.history,  # truth: weights_only
        "config": {**dataclasses.asdict(trainer.cfg), "target_type": trainer.cfg.target_type.value},
    }
    path = os.path.join(tmpdir, "epoch_2.pth")
    torch.save(ckpt, path)
    return path


def save_flip_test_eval(tmpdir):
    trainer = PoseTrainer(PoseConfig(epochs=1))
    trainer.fit()
    metrics = trainer.validate(use_flip=True)
    ev = trainer.evaluator
    path = os.path.join(tmpdir, "eval_flip.pth")
    torch.save(
        {
            "pck": metrics["pck"].item(),
            "pck_per_joint": torch.as_tensor(metrics["pck_per_joint"]),
            "ap": float(metrics["AP"]),
            "mean_error_px": metrics["mean_error"],
            "per_joint_errors": ev.per_joint_errors,  # truth: weights_only
            "num_instances": len(ev.oks_scores),
            "joint_names": ev.joint_names,
        },
        path,
    )
    return path


def save_export_bundle(tmpdir):
    trainer = PoseTrainer(PoseConfig(epochs=1))
    cfg = trainer.cfg
    bundle = dict(
        weights=trainer.model.state_dict(),
        joint_names=list(JOINTS),
        flip_pairs=FLIP_PAIRS,
        kpt_sigmas=torch.from_numpy(KPT_SIGMAS).float(),
        input_size=cfg.input_size,
        heatmap_size=list(cfg.heatmap_size),
        heatmap_type=cfg.target_type,  # truth: weights_only
        stride=tuple(trainer.stride),  # truth: weights_only
        stride_px=trainer.stride.tolist(),
        sigma=cfg.sigma,
        score_eps=np.finfo(np.float32).eps,  # truth: weights_only
        score_eps_torch=torch.finfo(torch.float32).eps,
        weights_sha256=hashlib.sha256(trainer.model.final_layer.weight.detach().numpy().tobytes()).digest(),
    )
    path = os.path.join(tmpdir, "pose_export.pt")
    torch.save(bundle, path)
    return path


def save_full_model(tmpdir):
    trainer = PoseTrainer(PoseConfig(epochs=1))
    trainer.fit()
    path = os.path.join(tmpdir, "pose_full.pt")
    torch.save(trainer.model, path)  # truth: weights_only
    return path


def save_resume_state(tmpdir):
    args = parse_args(["--sigma", "2.0", "--work-dir", os.path.join(tmpdir, "run"), "--flip-test"])
    cfg = PoseConfig(sigma=args.sigma, lr=args.lr, epochs=args.epochs)
    trainer = PoseTrainer(cfg)
    trainer.fit()
    ckpt = {"state_dict": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict()}
    ckpt["args"] = vars(args)
    ckpt["np_rng"] = np.random.get_state()  # truth: weights_only
    ckpt["torch_rng"] = torch.get_rng_state()
    ckpt["started_at"] = trainer.started_at  # truth: weights_only
    ckpt["recent_losses"] = trainer.recent_losses  # truth: weights_only
    ckpt["last_lr"] = trainer.scheduler.get_last_lr()[0]
    path = os.path.join(tmpdir, "latest.pth")
    torch.save(ckpt, path)
    return path


def save_clean_release(tmpdir):
    trainer = PoseTrainer(PoseConfig(epochs=2))
    metrics = trainer.fit()
    work_dir = Path(tmpdir) / "release"
    pck_curve = [h["pck"] for h in trainer.history]
    release = {
        "state_dict": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
        "meta": {
            "pck": float(metrics["pck"]),
            "pck_per_joint": dict(zip(JOINTS, metrics["pck_per_joint"].tolist())),
            "ap": metrics["AP"].item(),
            "best_epoch": int(np.argmax(pck_curve)),
            "mean_error_px": metrics["mean_error"],
            "heatmap_type": trainer.cfg.target_type.value,
            "stride": int(trainer.stride[0]),
            "kpt_sigmas": torch.tensor(KPT_SIGMAS),
            "work_dir": str(work_dir),
            "created": datetime.datetime.now().isoformat(),
            "train_seconds": time.time() - trainer.started_at.timestamp(),
            "recent_losses": list(trainer.recent_losses),
        },
    }
    path = os.path.join(tmpdir, "pose_release.pth")
    torch.save(release, path)
    return path
