"""Unsupervised deformable registration of 3D brain MRI (VoxelMorph-style).

The config is a YAML string loaded with OmegaConf (the real repo reads `configs/oasis.yaml`),
volumes are preprocessed with numpy (percentile clipping, resampling to the atlas grid), a tiny
3D U-Net predicts a stationary velocity field that is integrated by scaling and squaring, and a
spatial transformer warps the moving image.  Checkpoints go through a small CheckpointIO helper.
"""
import datetime
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf

CONFIG_YAML = """
data:
  shape: [16, 16, 16]
  spacing: [1.0, 1.0, 1.2]
  clip_percentiles: [0.5, 99.5]
  labels: [0, 2, 3, 4]
model:
  enc_channels: [8, 16]
  int_steps: 4
  bidirectional: false
loss:
  similarity: ncc
  ncc_window: 5
  smooth_weight: 0.02
optim:
  lr: 0.0001
  iters: 3
out_dir: runs/oasis
"""


def load_config(overrides=None):
    cfg = OmegaConf.create(yaml.safe_load(CONFIG_YAML))
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    return cfg


# ---------------------------------------------------------------- preprocessing

def clip_and_scale(vol, lo_pct, hi_pct):
    lo, hi = np.percentile(vol, [lo_pct, hi_pct])
    vol = np.clip(vol, lo, hi)
    return (vol - lo) / (hi - lo + 1e-8), lo, hi


def make_pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    r = np.sqrt((grid ** 2).sum(0))
    fixed = (r < 0.6).astype(np.float32) + 0.05 * rng.standard_normal(shape).astype(np.float32)
    moving = (np.roll(r, 1, axis=0) < 0.55).astype(np.float32) + 0.05 * rng.standard_normal(shape).astype(np.float32)
    seg = (r < 0.3) * 2 + ((r >= 0.3) & (r < 0.6)) * 3
    return fixed, moving, seg.astype(np.int64)


def voxel_affine(spacing):
    aff = np.eye(4)
    aff[:3, :3] = np.diag(spacing)
    return aff


def dice_per_label(a, b, labels):
    out = {}
    for lab in labels:
        if lab == 0:
            continue
        x, y = a == lab, b == lab
        denom = x.sum() + y.sum()
        out[lab] = 2.0 * (x & y).sum() / denom if denom else 1.0
    return out


# ---------------------------------------------------------------- model

class SpatialTransformer(nn.Module):
    def __init__(self, shape=(16, 16, 16)):
        super().__init__()
        vecs = [torch.arange(s, dtype=torch.float32) for s in shape]
        grid = torch.stack(torch.meshgrid(*vecs, indexing="ij")).unsqueeze(0)
        self.register_buffer("grid", grid, persistent=False)
        self.shape = tuple(shape)

    def forward(self, src, flow):
        loc = self.grid + flow
        for i, s in enumerate(self.shape):
            loc[:, i] = 2 * (loc[:, i] / (s - 1) - 0.5)
        loc = loc.permute(0, 2, 3, 4, 1)[..., [2, 1, 0]]
        return F.grid_sample(src, loc, align_corners=True)


class VecInt(nn.Module):
    def __init__(self, shape=(16, 16, 16), steps=4):
        super().__init__()
        self.steps = steps
        self.scale = 1.0 / (2 ** steps)
        self.transformer = SpatialTransformer(shape)

    def forward(self, v):
        v = v * self.scale
        for _ in range(self.steps):
            v = v + self.transformer(v, v)
        return v


class TinyRegNet(nn.Module):
    def __init__(self, shape=(16, 16, 16), enc=(8, 16), int_steps=4):
        super().__init__()
        c1, c2 = enc
        self.enc1 = nn.Conv3d(2, c1, 3, padding=1)
        self.enc2 = nn.Conv3d(c1, c2, 3, stride=2, padding=1)
        self.dec = nn.Conv3d(c2 + c1, c1, 3, padding=1)
        self.flow = nn.Conv3d(c1, 3, 3, padding=1)
        nn.init.normal_(self.flow.weight, 0, 1e-5)
        nn.init.zeros_(self.flow.bias)
        self.integrate = VecInt(shape, int_steps)
        self.warp = SpatialTransformer(shape)

    def forward(self, moving, fixed):
        x1 = F.leaky_relu(self.enc1(torch.cat([moving, fixed], 1)), 0.2)
        x2 = F.leaky_relu(self.enc2(x1), 0.2)
        up = F.interpolate(x2, size=x1.shape[2:], mode="trilinear", align_corners=False)
        v = self.flow(F.leaky_relu(self.dec(torch.cat([up, x1], 1)), 0.2))
        phi = self.integrate(v)
        return self.warp(moving, phi), phi


def ncc_loss(a, b, win=5):
    k = torch.ones(1, 1, win, win, win) / win ** 3
    pad = win // 2
    mu_a, mu_b = F.conv3d(a, k, padding=pad), F.conv3d(b, k, padding=pad)
    cross = F.conv3d(a * b, k, padding=pad) - mu_a * mu_b
    var_a = F.conv3d(a * a, k, padding=pad) - mu_a ** 2
    var_b = F.conv3d(b * b, k, padding=pad) - mu_b ** 2
    return -(cross * cross / (var_a * var_b + 1e-5)).mean()


def grad_loss(phi):
    dx = (phi[:, :, 1:] - phi[:, :, :-1]).pow(2).mean()
    dy = (phi[:, :, :, 1:] - phi[:, :, :, :-1]).pow(2).mean()
    dz = (phi[..., 1:] - phi[..., :-1]).pow(2).mean()
    return (dx + dy + dz) / 3


def jacobian_det(phi):
    """Determinant of the Jacobian of x + phi(x), numpy, (D-2, H-2, W-2)."""
    p = phi[0].detach().numpy()
    grads = [np.gradient(p[i]) for i in range(3)]
    j = np.empty((3, 3) + p.shape[1:])
    for i in range(3):
        for k in range(3):
            j[i, k] = grads[i][k] + (1.0 if i == k else 0.0)
    return np.linalg.det(np.moveaxis(j, (0, 1), (-2, -1)))[1:-1, 1:-1, 1:-1]


# ---------------------------------------------------------------- training

def linear_decay(it, total=1000):
    return max(0.0, 1.0 - it / total)


class RegistrationRunner:
    def __init__(self, cfg=None):
        self.cfg = cfg if cfg is not None else load_config()
        shape = tuple(self.cfg.data.shape)
        self.model = TinyRegNet(shape, tuple(self.cfg.model.enc_channels), self.cfg.model.int_steps)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.optim.lr)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, linear_decay)
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)
        fixed, moving, self.seg = make_pair(shape)
        lo_p, hi_p = self.cfg.data.clip_percentiles
        fixed, self.clip_lo, self.clip_hi = clip_and_scale(fixed, lo_p, hi_p)
        moving, _, _ = clip_and_scale(moving, lo_p, hi_p)
        self.fixed = torch.from_numpy(fixed).float()[None, None]
        self.moving = torch.from_numpy(moving).float()[None, None]
        self.iteration = 0
        self.losses = []

    def train(self):
        lam = self.cfg.loss.smooth_weight
        for _ in range(self.cfg.optim.iters):
            warped, phi = self.model(self.moving, self.fixed)
            sim = ncc_loss(warped, self.fixed, self.cfg.loss.ncc_window)
            loss = sim + lam * grad_loss(phi)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.sched.step()
            self.iteration += 1
            self.losses.append((sim.item(), loss.item()))
        return self

    @torch.no_grad()
    def validate(self):
        warped, phi = self.model(self.moving, self.fixed)
        seg_m = torch.from_numpy(self.seg).float()[None, None]
        warped_seg = self.model.warp(seg_m, phi).round().long()[0, 0].numpy()
        dice = dice_per_label(warped_seg, self.seg, self.cfg.data.labels)
        jac = jacobian_det(phi)
        folding = (jac <= 0).mean()
        return dice, folding, jac


class CheckpointIO:
    """Saves the runner's state plus whatever the caller hands in."""

    def __init__(self, root="checkpoints"):
        self.root = root
        self.saved = []

    def base_state(self, runner):
        return {
            "model": runner.model.state_dict(),
            "optimizer": runner.opt.state_dict(),
            "scheduler": runner.sched.state_dict(),
            "grad_scaler": runner.scaler.state_dict(),
            "iteration": runner.iteration,
        }

    def write(self, runner, name, **extra):
        state = self.base_state(runner)
        state.update(extra)
        path = os.path.join(self.root, name)
        torch.save(state, path)
        self.saved.append(path)
        return path


FACTORIES = {
    "RegistrationRunner": lambda: RegistrationRunner(load_config(["optim.iters=1"])),
}


# ---------------------------------------------------------------- checkpoints

def save_training_state(tmpdir):
    cfg = load_config()
    runner = RegistrationRunner(cfg).train()
    io = CheckpointIO(tmpdir)
    extra = dict(
        config=cfg,  # truth: weights_only
        config_plain=OmegaConf.to_container(cfg, resolve=True),
        losses=runner.losses,
        clip_range=(runner.clip_lo, runner.clip_hi),  # truth: weights_only
        shape=tuple(cfg.data.shape),
    )
    return io.write(runner, "reg_train.pt", **extra)


def save_validation(tmpdir):
    cfg = load_config(["optim.iters=2"])
    runner = RegistrationRunner(cfg).train()
    dice, folding, jac = runner.validate()
    record = {"model": runner.model.state_dict()}
    record["dice_per_label"] = list(dice.values())  # truth: weights_only
    record["dice_py"] = {int(k): float(v) for k, v in dice.items()}
    record["mean_dice"] = float(np.mean(list(dice.values())))
    record["folding_ratio"] = folding  # truth: weights_only
    record["folding_pct"] = round(100 * float(folding), 3)
    record["jac_std"] = float(jac.std())
    record["jac_hist"] = torch.histc(torch.from_numpy(jac).float(), bins=10)
    record["labels"] = list(cfg.data.labels)
    record["evaluated_at"] = datetime.datetime.now()  # truth: weights_only
    record["evaluated_at_iso"] = datetime.datetime.now().isoformat(timespec="seconds")
    path = os.path.join(tmpdir, "reg_val.pt")
    torch.save(record, path)
    return path


def save_atlas(tmpdir):
    cfg = load_config()
    spacing = np.asarray(cfg.data.spacing)
    fixed, _, seg = make_pair(tuple(cfg.data.shape), seed=5)
    atlas = {
        "image": torch.from_numpy(fixed),
        "seg": torch.from_numpy(seg).to(torch.uint8),
        "affine": voxel_affine(spacing),  # truth: weights_only
        "affine_t": torch.as_tensor(voxel_affine(spacing)),
        "spacing": tuple(spacing),  # truth: weights_only
        "spacing_f": tuple(float(s) for s in spacing),
        "voxel_volume_mm3": float(np.prod(spacing)),
        "array_shape": fixed.shape,
        "label_ids": np.unique(seg).tolist(),
        "crop": slice(2, 14),  # truth: weights_only
        "crop_bounds": (2, 14),
        "source_str": str(Path("atlases") / "oasis_avg.nii.gz"),
    }
    path = os.path.join(tmpdir, "atlas.pt")
    torch.save(atlas, path)
    return path


def save_release(tmpdir):
    """The weights published with the paper: only plain types on purpose."""
    cfg = load_config()
    runner = RegistrationRunner(cfg)
    dice, folding, jac = runner.validate()
    container = OmegaConf.to_container(cfg, resolve=True)
    meta = dict(
        torch_version=str(torch.__version__),
        numpy_version=np.__version__,
        n_params=sum(p.numel() for p in runner.model.parameters()),
        in_shape=torch.Size([1, 1, *cfg.data.shape]),
        dtype=torch.float32,
        dice_mean=np.mean(list(dice.values())).item(),
        negative_jacobians=int((jac <= 0).sum()),
        int_steps=runner.model.integrate.steps,
        scale=runner.model.integrate.scale,
    )
    release = {"state_dict": runner.model.state_dict(), "config": container, "meta": meta}
    path = os.path.join(tmpdir, "release.pt")
    torch.save(release, path)
    return path


def save_with_versions(tmpdir):
    cfg = load_config()
    runner = RegistrationRunner(cfg)
    ckpt = {
        "model": runner.model.state_dict(),
        "torch_version": torch.__version__,  # truth: weights_only
        "int_steps": cfg.model.int_steps,
        "enc_channels": cfg.model.enc_channels,  # truth: weights_only
        "similarity": cfg.loss.similarity,
        "out_dir": cfg.out_dir,
    }
    path = os.path.join(tmpdir, "versions.pt")
    torch.save(ckpt, path)
    return path
