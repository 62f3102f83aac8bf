"""HMR-style 3D human mesh recovery: image -> SMPL pose/shape/camera by iterative error feedback.

A small trainer class in the layout of the usual HMR / SPIN code bases: a dataclass config, a
`HMRTrainer` whose methods return loss dicts and metric tuples, and a few checkpoint writers
(training state, body-model assets, SWA weights, evaluation report, inference bundle).
The body model is a linearised SMPL stand-in (template + shape blend shapes + pose correctives)
so the example runs without the licensed model files.
"""
import datetime
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from enum import Enum, IntEnum

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.spatial.transform import Rotation
from torch.optim.swa_utils import AveragedModel

NUM_SMPL_JOINTS = 24
EVAL_JOINTS = ("R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle", "R_Wrist", "R_Elbow",
               "R_Shoulder", "L_Shoulder", "L_Elbow", "L_Wrist", "Neck", "Head")
FLIP_PERM = (5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13)
PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])
IMG_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMG_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class RotRepr(Enum):
    AXIS_ANGLE = "aa"
    SIX_D = "6d"


class Protocol(IntEnum):
    P1 = 1  # MPJPE after root alignment
    P2 = 2  # after Procrustes alignment


@dataclass
class CameraCfg:
    focal_length: float = 5000.0
    img_res: int = 64
    depth_init: float = 0.9


@dataclass
class HMRConfig:
    img_res: int = 64
    num_betas: int = 10
    num_verts: int = 128
    iters: int = 3
    lr: float = 5e-5
    batch_size: int = 8
    rot_repr: RotRepr = RotRepr.SIX_D
    camera: CameraCfg = field(default_factory=CameraCfg)
    loss_weights: dict = field(default_factory=lambda: {"kp2d": 300.0, "kp3d": 300.0, "pose": 60.0, "betas": 0.06})


def rot6d_to_rotmat(x):
    x = x.reshape(-1, 3, 2)
    a1, a2 = x[..., 0], x[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.stack([b1, b2, torch.cross(b1, b2, dim=-1)], dim=-1)


def perspective_projection(points, cam, focal_length, img_res):
    """Weak-perspective camera (s, tx, ty) turned into a translation, then pinhole projection."""
    s, tx, ty = cam[:, 0], cam[:, 1], cam[:, 2]
    tz = 2 * focal_length / (img_res * s.abs() + 1e-9)
    p = points + torch.stack([tx, ty, tz], -1)[:, None]
    return focal_length * p[..., :2] / p[..., 2:] / (img_res / 2.0)


def similarity_align(pred, gt):
    """Procrustes: scale, rotation and translation that map pred onto gt (numpy, J x 3)."""
    mu_p, mu_g = pred.mean(0), gt.mean(0)
    p0, g0 = pred - mu_p, gt - mu_g
    u, s, vt = np.linalg.svd(p0.T @ g0)
    r = vt.T @ u.T
    if np.linalg.det(r) < 0:
        vt[-1] *= -1
        s[-1] *= -1
        r = vt.T @ u.T
    scale = s.sum() / (p0 ** 2).sum()
    return scale * p0 @ r.T + mu_g


class SMPLLite(nn.Module):
    def __init__(self, num_verts=128, num_betas=10, num_joints=len(EVAL_JOINTS), seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("v_template", torch.randn(num_verts, 3, generator=g) * 0.3)
        self.register_buffer("shapedirs", torch.randn(num_verts, 3, num_betas, generator=g) * 0.01)
        self.register_buffer("posedirs", torch.randn(num_verts * 3, (NUM_SMPL_JOINTS - 1) * 9, generator=g) * 1e-3)
        reg = torch.rand(num_joints, num_verts, generator=g)
        self.register_buffer("J_regressor", reg / reg.sum(1, keepdim=True))

    def forward(self, rotmats, betas):
        v = self.v_template + torch.einsum("vcb,nb->nvc", self.shapedirs, betas)
        eye = torch.eye(3, device=rotmats.device)
        pose_feat = (rotmats[:, 1:] - eye).flatten(1)
        v = v + (pose_feat @ self.posedirs.T).view(v.shape)
        return v, torch.einsum("jv,nvc->njc", self.J_regressor, v)


class HMRNet(nn.Module):
    def __init__(self, cfg=None):
        super().__init__()
        cfg = cfg or HMRConfig()
        self.iters = cfg.iters
        self.npose = NUM_SMPL_JOINTS * (6 if cfg.rot_repr is RotRepr.SIX_D else 3)
        self.backbone = nn.Sequential(nn.Conv2d(3, 16, 5, 2, 2), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        n_params = self.npose + cfg.num_betas + 3
        self.regressor = nn.Sequential(nn.Linear(32 + n_params, 128), nn.ReLU(), nn.Dropout(0.1),
                                       nn.Linear(128, n_params))
        init = torch.zeros(n_params)
        init[: self.npose] = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).repeat(NUM_SMPL_JOINTS)
        init[-3] = cfg.camera.depth_init
        self.register_buffer("init_params", init)

    def forward(self, img):
        feat = self.backbone(img)
        theta = self.init_params.expand(img.shape[0], -1)
        for _ in range(self.iters):
            theta = theta + self.regressor(torch.cat([feat, theta], 1))
        pose, betas, cam = theta[:, : self.npose], theta[:, self.npose:-3], theta[:, -3:]
        return rot6d_to_rotmat(pose).view(-1, NUM_SMPL_JOINTS, 3, 3), betas, cam


class HMRTrainer:
    def __init__(self, cfg=None, seed=0):
        torch.manual_seed(seed)
        self.cfg = cfg or HMRConfig()
        self.smpl = SMPLLite(self.cfg.num_verts, self.cfg.num_betas)
        self.model = HMRNet(self.cfg)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=100, gamma=0.5)
        self.history = defaultdict(list)
        self.best_pa_mpjpe = float("inf")
        self.global_step = 0

    def make_batch(self, n):
        rot = Rotation.random(n * NUM_SMPL_JOINTS, random_state=self.global_step)
        rotmats = torch.tensor(rot.as_matrix(), dtype=torch.float32).view(n, NUM_SMPL_JOINTS, 3, 3)
        betas = torch.randn(n, self.cfg.num_betas) * 0.5
        _, joints = self.smpl(rotmats, betas)
        cam = torch.tensor([[0.9, 0.0, 0.0]]).repeat(n, 1)
        kp2d = perspective_projection(joints, cam, self.cfg.camera.focal_length, self.cfg.img_res)
        img = torch.randn(n, 3, self.cfg.img_res, self.cfg.img_res)
        return {"img": img, "rotmats": rotmats, "betas": betas, "kp3d": joints, "kp2d": kp2d}

    def compute_losses(self, batch):
        rotmats, betas, cam = self.model(batch["img"])
        _, joints = self.smpl(rotmats, betas)
        kp2d = perspective_projection(joints, cam, self.cfg.camera.focal_length, self.cfg.img_res)
        root = lambda j: j - j[:, 2:4].mean(1, keepdim=True)  # noqa: E731  pelvis = mid-hips
        return {
            "kp2d": F.mse_loss(kp2d, batch["kp2d"]),
            "kp3d": F.mse_loss(root(joints), root(batch["kp3d"])),
            "pose": F.mse_loss(rotmats, batch["rotmats"]),
            "betas": betas.pow(2).mean(),
        }

    def train_step(self, batch):
        self.model.train()
        losses = self.compute_losses(batch)
        total = sum(self.cfg.loss_weights[k] * v for k, v in losses.items())
        self.optimizer.zero_grad()
        total.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.global_step += 1
        out = {k: v.item() for k, v in losses.items()}
        out["total"] = total.item()
        for k, v in out.items():
            self.history[k].append(v)
        return out

    @torch.no_grad()
    def predict_joints(self, n):
        self.model.eval()
        batch = self.make_batch(n)
        rotmats, betas, _ = self.model(batch["img"])
        _, joints = self.smpl(rotmats, betas)
        return joints.numpy() * 1000.0, batch["kp3d"].numpy() * 1000.0  # millimetres

    def validate(self, n=16):
        pred, gt = self.predict_joints(n)
        pelvis = lambda j: j - j[:, 2:4].mean(1, keepdims=True)  # noqa: E731
        mpjpe = np.linalg.norm(pelvis(pred) - pelvis(gt), axis=-1).mean()
        pa = np.mean([np.linalg.norm(similarity_align(p, g) - g, axis=-1).mean() for p, g in zip(pred, gt)])
        self.best_pa_mpjpe = min(self.best_pa_mpjpe, pa)
        return mpjpe, pa

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "global_step": self.global_step,
        }


def save_hmr_training_state(tmpdir):
    cfg = HMRConfig(iters=2)
    trainer = HMRTrainer(cfg)
    for _ in range(3):
        last = trainer.train_step(trainer.make_batch(cfg.batch_size))
    ckpt = trainer.state_dict()
    hp = asdict(cfg)
    hp["rot_repr"] = cfg.rot_repr.value
    ckpt["hparams"] = hp
    ckpt["config"] = cfg  # truth: weights_only
    ckpt["history"] = trainer.history  # truth: weights_only
    ckpt["last_losses"] = last
    mpjpe, pa = trainer.validate(8)
    ckpt.update(
        mpjpe=mpjpe,  # truth: weights_only
        pa_mpjpe=float(pa),
    )
    ckpt["best_pa_mpjpe"] = trainer.best_pa_mpjpe  # truth: weights_only
    ckpt["lr"] = trainer.scheduler.get_last_lr()[0]
    path = os.path.join(tmpdir, f"hmr_step{trainer.global_step:06d}.pt")
    torch.save(ckpt, path)
    return path


def make_faces(num_verts, seed=0):
    rng = np.random.default_rng(seed)
    return np.sort(rng.integers(0, num_verts, size=(2 * num_verts, 3)), axis=1)


def save_smpl_assets(tmpdir):
    smpl = SMPLLite()
    faces = make_faces(smpl.v_template.shape[0])
    j_dense = smpl.J_regressor.numpy()
    j_dense[j_dense < np.quantile(j_dense, 0.9)] = 0.0
    rest = Rotation.from_rotvec([np.pi, 0.0, 0.0])
    assets = {
        "v_template": smpl.v_template.clone(),
        "shapedirs": smpl.shapedirs.clone(),
        "posedirs": smpl.posedirs.clone(),
        "J_regressor": torch.from_numpy(j_dense).to_sparse(),
        "J_regressor_h36m": sp.csr_matrix(j_dense),  # truth: weights_only
        "f": faces,  # truth: weights_only
        "parents": PARENTS.tolist(),
        "joint_names": list(EVAL_JOINTS),
        "flip_perm": FLIP_PERM,
        "rest_orient": rest,  # truth: weights_only
        "rest_orient_quat": rest.as_quat().tolist(),
        "gender": "neutral",
        "num_faces": len(faces),
    }
    path = os.path.join(tmpdir, "smpl_lite_neutral.pt")
    torch.save(assets, path)
    return path


def save_swa_weights(tmpdir):
    trainer = HMRTrainer(HMRConfig(iters=1))
    # running mean of the weights over the last iterations
    swa = AveragedModel(trainer.model)
    for _ in range(2):
        trainer.train_step(trainer.make_batch(4))
        swa.update_parameters(trainer.model)
    ckpt = dict(
        swa_state=swa.module.state_dict(),
        n_averaged=swa.n_averaged,
        swa_start=0,
        img_norm=dict(
            mean=IMG_MEAN,  # truth: weights_only
            std=IMG_STD.tolist(),
        ),
        swa_model=swa,  # truth: weights_only
        step=trainer.global_step,
    )
    path = os.path.join(tmpdir, "hmr_swa.pt")
    torch.save(ckpt, path)
    return path


def save_eval_report(tmpdir):
    trainer = HMRTrainer(HMRConfig(iters=1), seed=3)
    pred, gt = trainer.predict_joints(12)
    aligned = np.stack([similarity_align(p, g) for p, g in zip(pred, gt)])
    errs = np.linalg.norm(aligned - gt, axis=-1)  # frames x joints, mm
    per_joint = {}
    for j, name in enumerate(EVAL_JOINTS):
        per_joint[name] = float(errs[:, j].mean())
    thresholds = np.linspace(0, 150, 16)
    pck_curve = [(errs < t).mean() for t in thresholds]
    report = {
        "dataset": "synthetic-3dpw",
        "protocol": Protocol.P2,  # truth: weights_only
        "protocol_id": int(Protocol.P2),
        "n_frames": errs.shape[0],
        "per_joint_pa_mpjpe": per_joint,
        "worst_joint": max(per_joint, key=per_joint.get),
        "pck@150": float((errs < 150).mean()),
        "pck_curve": pck_curve,  # truth: weights_only
        "auc": np.trapezoid(pck_curve, thresholds) / 150.0,  # truth: weights_only
        "thresholds_mm": thresholds.tolist(),
        "eval_date_str": datetime.date.today().isoformat(),
    }
    path = os.path.join(tmpdir, "eval_3dpw.pt")
    torch.save(report, path)
    return path


def save_inference_bundle(tmpdir):
    cfg = HMRConfig()
    trainer = HMRTrainer(cfg)
    model = trainer.model
    bundle = {
        "model": model.state_dict(),
        "img_res": cfg.img_res,
        "focal_length": cfg.camera.focal_length,
        "camera": asdict(cfg.camera),
        "rot_repr": cfg.rot_repr.value,
        "init_params": model.init_params.clone(),
        "J_regressor": trainer.smpl.J_regressor.to_sparse(),
        "flip_perm": list(FLIP_PERM),
        "img_mean": torch.from_numpy(IMG_MEAN),
        "img_std": IMG_STD.tolist(),
        "num_params": sum(p.numel() for p in model.parameters()),
        "torch": str(torch.__version__),
        "dtype": torch.float32,
        "device": torch.device("cpu"),
        "input_shape": torch.Size([1, 3, cfg.img_res, cfg.img_res]),
    }
    path = os.path.join(tmpdir, "hmr_infer.pt")
    torch.save(bundle, path)
    return path


FACTORIES = {
    "RotRepr": lambda: RotRepr.SIX_D,
    "Protocol": lambda: Protocol.P1,
}
