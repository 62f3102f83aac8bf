"""Learned visual-odometry front-end + translation pose-graph back-end.

A small PoseNet-style regressor predicts relative motion between stacked frame
pairs; a synthetic feature tracker decides keyframes; loop closures found by
radius search go into a least-squares pose graph. Configuration is a tree of
dataclasses, as in the rest of the SLAM repo.
"""
import dataclasses
import math
import os
from collections import Counter, deque, namedtuple
from dataclasses import asdict, dataclass, field
from enum import Enum
from fractions import Fraction

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation


class Sequence(Enum):
    KITTI_00 = "00"
    KITTI_05 = "05"
    EUROC_MH01 = "MH_01_easy"


@dataclass
class CameraIntrinsics:
    fx: float = 120.0
    fy: float = 120.0
    cx: float = 80.0
    cy: float = 24.0
    width: int = 160
    height: int = 48

    @property
    def K(self):
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass
class KeyframePolicy:
    min_parallax_px: float = 6.0
    min_inlier_ratio: float = 0.35
    max_gap: int = 4


@dataclass
class VOConfig:
    seq: Sequence = Sequence.KITTI_00
    camera: CameraIntrinsics = field(default_factory=CameraIntrinsics)
    keyframes: KeyframePolicy = field(default_factory=KeyframePolicy)
    num_frames: int = 24
    lr: float = 1e-3
    epochs: int = 2
    rot_weight: float = 50.0
    ransac_px: float = 1.5
    loop_radius_m: float = 1.5
    seed: int = 0


TrajectorySnapshot = namedtuple("TrajectorySnapshot", ["timestamps", "positions", "quaternions", "sequence"])


# ---------------------------------------------------------------- geometry helpers

def make_pose(rotvec, t):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


def synth_trajectory(n, seed=0):
    """A noisy loop so that the end revisits the start."""
    rng = np.random.default_rng(seed)
    poses = []
    for i in range(n):
        a = 2 * math.pi * i / n
        t = np.array([5 * math.cos(a), 5 * math.sin(a), 0.05 * rng.standard_normal()])
        poses.append(make_pose([0.0, 0.0, a + math.pi / 2], t))
    return poses


def relative_pose(Ti, Tj):
    return np.linalg.inv(Ti) @ Tj


def pose_to_vec(T):
    return np.concatenate([T[:3, 3], Rotation.from_matrix(T[:3, :3]).as_rotvec()])


def ate_rmse(est, gt):
    err = np.stack([e[:3, 3] - g[:3, 3] for e, g in zip(est, gt)])
    return np.sqrt(np.mean(np.sum(err ** 2, axis=1)))


def rotation_error_rad(est, gt):
    errs = [np.linalg.norm(Rotation.from_matrix(e[:3, :3].T @ g[:3, :3]).as_rotvec()) for e, g in zip(est, gt)]
    return np.mean(errs)


def integrate(rel_vecs, start):
    poses = [start]
    for v in rel_vecs:
        poses.append(poses[-1] @ make_pose(v[3:], v[:3]))
    return poses


# ---------------------------------------------------------------- model and front-end

class PoseRegressor(nn.Module):
    def __init__(self, in_ch=2, width=16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, width, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(width, width * 2, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d((1, 4)),
        )
        self.head = nn.Linear(width * 2 * 4, 6)

    def forward(self, pair):
        return self.head(self.features(pair).flatten(1))


class FeatureTracker:
    """Projects a fixed landmark map into each frame and measures tracking quality."""

    def __init__(self, camera=None, num_landmarks=200, noise_px=0.8, seed=0):
        self.camera = camera or CameraIntrinsics()
        rng = np.random.default_rng(seed)
        self.landmarks = rng.uniform([-8, -8, -1], [8, 8, 3], size=(num_landmarks, 3))
        self.noise_px = noise_px
        self.rng = rng

    def project(self, T):
        Tcw = np.linalg.inv(T)
        pc = self.landmarks @ Tcw[:3, :3].T + Tcw[:3, 3]
        uv = pc @ self.camera.K.T
        return uv[:, :2] / np.clip(uv[:, 2:], 1e-3, None), pc[:, 2] > 0.1

    def track(self, Ti, Tj, thresh_px):
        ui, vis_i = self.project(Ti)
        uj, vis_j = self.project(Tj)
        both = vis_i & vis_j
        noisy = uj + self.rng.normal(0, self.noise_px, uj.shape)
        reproj = np.linalg.norm(noisy - uj, axis=1)
        inliers = both & (reproj < thresh_px)
        parallax = np.linalg.norm(uj[inliers] - ui[inliers], axis=1)
        return inliers, parallax


class PoseGraph:
    def __init__(self):
        self.nodes = []
        self.edges = []  # (i, j, measured translation in world frame)

    def add_odometry(self, poses):
        self.nodes = [p.copy() for p in poses]
        for i in range(len(poses) - 1):
            self.edges.append((i, i + 1, poses[i + 1][:3, 3] - poses[i][:3, 3]))

    def detect_loops(self, gt, radius):
        pos = np.stack([p[:3, 3] for p in gt])
        dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        gap = np.abs(np.arange(len(pos))[:, None] - np.arange(len(pos))[None])
        pairs = np.argwhere(np.triu((dist < radius) & (gap > len(pos) // 2)))
        loops = [tuple(p) for p in pairs]
        for i, j in loops:
            self.edges.append((i, j, gt[j][:3, 3] - gt[i][:3, 3]))
        return loops

    def optimize(self):
        x0 = np.concatenate([n[:3, 3] for n in self.nodes])

        def residuals(x):
            P = x.reshape(-1, 3)
            r = [P[j] - P[i] - m for i, j, m in self.edges]
            r.append(P[0] - x0[:3])
            return np.concatenate(r)

        res = least_squares(residuals, x0, loss="huber", f_scale=0.5)
        for n, p in zip(self.nodes, res.x.reshape(-1, 3)):
            n[:3, 3] = p
        return res


class VOTrainer:
    def __init__(self, cfg=None):
        self.cfg = cfg or VOConfig()
        torch.manual_seed(self.cfg.seed)
        self.gt = synth_trajectory(self.cfg.num_frames, self.cfg.seed)
        h, w = self.cfg.camera.height, self.cfg.camera.width
        self.frames = torch.rand(self.cfg.num_frames, 1, h // 2, w // 2)
        self.targets = torch.tensor(np.stack([pose_to_vec(relative_pose(a, b))
                                              for a, b in zip(self.gt[:-1], self.gt[1:])]), dtype=torch.float32)
        self.model = PoseRegressor()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.5)
        self.tracker = FeatureTracker(self.cfg.camera, seed=self.cfg.seed)
        self.policy = self.cfg.keyframes
        self.residual_window = deque(maxlen=8)
        self.epoch = 0

    def pairs(self):
        return torch.cat([self.frames[:-1], self.frames[1:]], dim=1)

    def train_epoch(self):
        self.model.train()
        pred = self.model(self.pairs())
        t_loss = (pred[:, :3] - self.targets[:, :3]).norm(dim=1).mean()
        r_loss = (pred[:, 3:] - self.targets[:, 3:]).norm(dim=1).mean()
        loss = t_loss + self.cfg.rot_weight * r_loss
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.epoch += 1
        self.residual_window.append(loss.item())
        return loss.item(), {"trans": t_loss.item(), "rot": r_loss.item()}

    @torch.no_grad()
    def estimate_trajectory(self):
        rel = self.model(self.pairs()).double().numpy()
        return integrate(rel, self.gt[0])

    def run_frontend(self):
        keyframes, last_kf, parallaxes, ratios = [0], 0, [], []
        for i in range(1, len(self.gt)):
            inliers, parallax = self.tracker.track(self.gt[last_kf], self.gt[i], self.cfg.ransac_px)
            ratio = inliers.mean()
            med = np.median(parallax) if len(parallax) else 0.0
            parallaxes.append(med)
            ratios.append(ratio)
            if (med > self.policy.min_parallax_px or ratio < self.policy.min_inlier_ratio
                    or i - last_kf >= self.policy.max_gap):
                keyframes.append(i)
                last_kf = i
        return np.array(keyframes), {"median_parallax": np.median(parallaxes),
                                     "min_inlier_ratio": float(np.min(ratios)),
                                     "num_keyframes": len(keyframes)}


# ---------------------------------------------------------------- checkpoints

def save_vo_checkpoint(tmpdir):
    cfg = VOConfig(seq=Sequence.KITTI_05, epochs=2)
    trainer = VOTrainer(cfg)
    for _ in range(cfg.epochs):
        loss, parts = trainer.train_epoch()
    est = trainer.estimate_trajectory()
    rot_err = rotation_error_rad(est, trainer.gt)
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler,  # truth: weights_only
        "epoch": trainer.epoch,
        "cfg": {**asdict(cfg), "seq": cfg.seq.value},
        "sequence": cfg.seq,  # truth: weights_only
        "loss": loss,
        "loss_parts": parts,
        "rot_err_deg": math.degrees(rot_err),
        "ate_m": float(ate_rmse(est, trainer.gt)),
        "input_hw": trainer.frames.shape[-2:],
        "dtype": trainer.frames.dtype,
    }
    path = os.path.join(tmpdir, f"vo_{cfg.seq.value}.pth")
    torch.save(ckpt, path)
    return path


def save_calibration(tmpdir):
    cam = CameraIntrinsics(fx=718.856, fy=718.856, cx=607.19, cy=185.22, width=1241, height=376)
    imu_to_cam = Rotation.from_euler("xyz", [-90.0, 0.0, -90.0], degrees=True)
    fps = Fraction(30000, 1001)
    calib = dict(
        camera=asdict(cam),
        intrinsics=cam.K,  # truth: weights_only
        K=torch.from_numpy(cam.K).float(),
        K_rows=cam.K.tolist(),
        image_wh=(cam.width, cam.height),
        rig_rotation=imu_to_cam,  # truth: weights_only
        rig_quat_xyzw=imu_to_cam.as_quat().tolist(),
        rig_translation=torch.tensor([0.27, -0.08, 0.01]),
        fps=fps,  # truth: weights_only
        frame_period_s=float(1 / fps),
        distortion=torch.zeros(5),
        model="pinhole-radtan",
    )
    path = os.path.join(tmpdir, "calib.pt")
    torch.save(calib, path)
    return path


def save_pose_graph(tmpdir):
    cfg = VOConfig(num_frames=30, loop_radius_m=1.2)
    trainer = VOTrainer(cfg)
    graph = PoseGraph()
    drifted = integrate([pose_to_vec(relative_pose(a, b)) * 1.03 for a, b in zip(trainer.gt[:-1], trainer.gt[1:])],
                        trainer.gt[0])
    graph.add_odometry(drifted)
    loops = graph.detect_loops(trainer.gt, cfg.loop_radius_m)
    ate_before = ate_rmse(graph.nodes, trainer.gt)
    res = graph.optimize()
    ate_after = math.sqrt(np.mean([np.sum((n[:3, 3] - g[:3, 3]) ** 2) for n, g in zip(graph.nodes, trainer.gt)]))
    state = {"poses": torch.from_numpy(np.stack(graph.nodes))}
    state["odometry_edges"] = [(i, j) for i, j, _ in graph.edges[: len(graph.nodes) - 1]]
    state["loop_closures"] = loops  # truth: weights_only
    state["num_loops"] = len(loops)
    state["measurements"] = torch.tensor(np.stack([m for _, _, m in graph.edges]))
    state["solver"] = {
        "cost": res.cost,  # truth: weights_only
        "nfev": res.nfev,
        "status": res.status,
        "success": res.success,
        "optimality": float(res.optimality),
        "message": res.message,
    }
    state["ate_before_m"] = round(ate_before.item(), 4)
    state["ate_after_m"] = ate_after
    path = os.path.join(tmpdir, "pose_graph.pt")
    torch.save(state, path)
    return path


def save_frontend_state(tmpdir):
    trainer = VOTrainer(VOConfig(keyframes=KeyframePolicy(min_parallax_px=4.0, max_gap=3)))
    for _ in range(3):
        trainer.train_epoch()
    keyframes, stats = trainer.run_frontend()
    gaps = np.diff(keyframes)
    state = {}
    state.update({
        "keyframe_ids": keyframes.tolist(),
        "gap_histogram": Counter(gaps.tolist()),
        "median_parallax": stats["median_parallax"],  # truth: weights_only
        "min_inlier_ratio": stats["min_inlier_ratio"],
        "num_keyframes": stats["num_keyframes"],
        "policy": trainer.policy,  # truth: weights_only
        "policy_dict": dataclasses.asdict(trainer.policy),
        "recent_residuals": list(trainer.residual_window),
        "landmarks": torch.as_tensor(trainer.tracker.landmarks, dtype=torch.float32),
        "tracker_rng": trainer.tracker.rng.bit_generator.state,
    })
    path = os.path.join(tmpdir, "frontend.pt")
    torch.save(state, path)
    return path


def save_trajectory_export(tmpdir):
    trainer = VOTrainer()
    trainer.train_epoch()
    est = trainer.estimate_trajectory()
    positions = torch.tensor(np.stack([T[:3, 3] for T in est]), dtype=torch.float32)
    quats = torch.tensor(Rotation.from_matrix(np.stack([T[:3, :3] for T in est])).as_quat(), dtype=torch.float32)
    stamps = torch.arange(len(est), dtype=torch.float64) / 10.0
    snapshot = TrajectorySnapshot(stamps, positions, quats, trainer.cfg.seq.value)
    path = os.path.join(tmpdir, "trajectory.pt")
    torch.save(snapshot, path)  # truth: weights_only
    return path


def save_eval_table(tmpdir):
    trainer = VOTrainer(VOConfig(num_frames=16))
    rows = []
    for epoch in range(2):
        loss, parts = trainer.train_epoch()
        est = trainer.estimate_trajectory()
        rows.append({"epoch": epoch, "loss": loss, "ate": float(ate_rmse(est, trainer.gt)),
                     "rot_deg": math.degrees(rotation_error_rad(est, trainer.gt))})
    table = pd.DataFrame(rows)
    out = {
        "rows": table.to_dict("records"),
        "columns": table.columns.tolist(),
        "best_epoch": int(table["ate"].idxmin()),
        "best_ate": table["ate"].min(),  # truth: weights_only
        "csv": table.to_csv(index=False),
        "table": table,  # truth: weights_only
    }
    path = os.path.join(tmpdir, "eval_table.pt")
    torch.save(out, path)
    return path


FACTORIES = {
    "Sequence": lambda: Sequence("05"),
    "FeatureTracker": lambda: FeatureTracker(CameraIntrinsics(), num_landmarks=64),
}
