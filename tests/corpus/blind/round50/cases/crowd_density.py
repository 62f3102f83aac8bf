"""CSRNet-style crowd counting: regress a density map whose integral is the head count.

Ground truth comes from head annotations: every head is a Gaussian whose sigma is either fixed
(sparse scenes, ShanghaiTech B) or geometry-adaptive (beta * mean distance to the k nearest
heads, ShanghaiTech A). The config is YAML read through OmegaConf and overridden by a dotlist.

    python crowd_density.py optim.epochs=50 density.mode=adaptive
"""
import dataclasses
import math
import os
import random
import sys
import time

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy.spatial import cKDTree

DEFAULT_YAML = """
seed: 7
data:
  dataset: shanghaitech_b
  crop_size: [32, 32]
  downsample: 4
  val_fraction: 0.25
  normalize:
    mean: [0.485, 0.456, 0.406]
    std: [0.229, 0.224, 0.225]
density:
  mode: adaptive
  beta: 0.3
  k: 3
  fixed_sigma: 4.0
model:
  frontend: [8, M, 16, M]
  backend: [16, 8]
  dilation: 2
optim:
  lr: 1.0e-4
  momentum: 0.95
  weight_decay: 5.0e-4
  epochs: 2
train:
  count_scale: 100.0
"""


@dataclasses.dataclass
class DensityConfig:
    mode: str = "adaptive"
    beta: float = 0.3
    k: int = 3
    fixed_sigma: float = 4.0
    truncate: float = 3.0


@dataclasses.dataclass
class EarlyStopper:
    patience: int = 5
    best: float = math.inf
    bad_epochs: int = 0

    def step(self, value):
        if value < self.best:
            self.best, self.bad_epochs = value, 0
            return False
        self.bad_epochs += 1
        return self.bad_epochs > self.patience


def load_config(overrides=()):
    cfg = OmegaConf.create(DEFAULT_YAML)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


def synthetic_scene(rng, h, w, n_heads):
    image = rng.random((3, h, w), dtype=np.float32) * 0.2
    points = np.stack([rng.uniform(0, w - 1, n_heads), rng.uniform(0, h - 1, n_heads)], axis=1)
    for x, y in points.astype(int):
        image[:, y, x] += 0.8
    return image, points


def adaptive_density(points, shape, dcfg):
    """Gaussian per head; sigma from the mean distance to the k nearest neighbours."""
    density = np.zeros(shape, dtype=np.float32)
    sigmas = []
    if len(points) == 0:
        return density, sigmas
    tree = cKDTree(points.copy(), leafsize=16)
    dists, _ = tree.query(points, k=min(dcfg.k + 1, len(points)))
    for i, (x, y) in enumerate(points):
        delta = np.zeros(shape, dtype=np.float32)
        delta[min(int(y), shape[0] - 1), min(int(x), shape[1] - 1)] = 1.0
        if dcfg.mode == "adaptive" and len(points) > 1:
            sigma = dcfg.beta * np.mean(dists[i][1:])
        else:
            sigma = dcfg.fixed_sigma
        sigmas.append(sigma)
        density += ndi.gaussian_filter(delta, sigma, mode="constant", truncate=dcfg.truncate)
    return density, sigmas


def sum_pool(density, factor):
    h, w = density.shape
    return density.reshape(h // factor, factor, w // factor, factor).sum(axis=(1, 3))


def make_layers(spec, in_ch, dilation=1):
    layers = []
    for v in spec:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(in_ch, v, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)]
            in_ch = v
    return nn.Sequential(*layers), in_ch


class CSRNet(nn.Module):
    def __init__(self, frontend=(8, "M", 16, "M"), backend=(16, 8), dilation=2):
        super().__init__()
        self.frontend, ch = make_layers(frontend, 3)
        self.backend, ch = make_layers(backend, ch, dilation=dilation)
        self.output = nn.Conv2d(ch, 1, 1)
        self.downsample = 2 ** sum(1 for v in frontend if v == "M")

    def forward(self, x):
        return F.relu(self.output(self.backend(self.frontend(x))))


def receptive_field(model_cfg):
    rf, jump = 1, 1
    for v in model_cfg.frontend:
        if v == "M":
            rf, jump = rf + jump, jump * 2
        else:
            rf += 2 * jump
    return rf + len(model_cfg.backend) * 2 * model_cfg.dilation * jump


def build_samples(cfg, n, seed=None):
    rng = np.random.default_rng(cfg.seed if seed is None else seed)
    h, w = cfg.data.crop_size
    dcfg = DensityConfig(**OmegaConf.to_container(cfg.density))
    samples = []
    for _ in range(n):
        image, points = synthetic_scene(rng, h, w, int(rng.integers(3, 12)))
        density, sigmas = adaptive_density(points, (h, w), dcfg)
        samples.append({"image": image, "points": points, "density": density, "sigmas": sigmas,
                        "target": sum_pool(density, cfg.data.downsample)})
    return samples


def build_model(cfg):
    return CSRNet(tuple(cfg.model.frontend), tuple(cfg.model.backend), cfg.model.dilation)


def train_one_epoch(model, optimizer, samples, count_scale):
    model.train()
    total = 0.0
    for s in samples:
        x = torch.from_numpy(s["image"])[None]
        y = torch.from_numpy(s["target"])[None, None] * count_scale
        loss = F.mse_loss(model(x), y, reduction="sum")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(samples)


@torch.no_grad()
def evaluate(model, samples, count_scale):
    model.eval()
    abs_err, sq_err, dens_err = [], [], []
    for s in samples:
        pred = model(torch.from_numpy(s["image"])[None]).sum().item() / count_scale
        abs_err.append(abs(pred - len(s["points"])))
        sq_err.append((pred - len(s["points"])) ** 2)
        dens_err.append(abs(pred - s["density"].sum()))
    return {"mae": sum(abs_err) / len(abs_err), "rmse": math.sqrt(sum(sq_err) / len(sq_err)),
            "density_mae": np.mean(dens_err)}


def game(pred_maps, gt_maps, level):
    """Grid Average Mean absolute Error: split each map into 4**level cells."""
    cells = 2 ** level
    errs = []
    for p, g in zip(pred_maps, gt_maps):
        for rows_p, rows_g in zip(np.array_split(p, cells, 0), np.array_split(g, cells, 0)):
            for cp, cg in zip(np.array_split(rows_p, cells, 1), np.array_split(rows_g, cells, 1)):
                errs.append(abs(cp.sum() - cg.sum()))
    return np.sum(errs) / len(pred_maps)


def save_csrnet_checkpoint(tmpdir):
    cfg = load_config(["optim.epochs=2"])
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                weight_decay=cfg.optim.weight_decay)
    train, val = build_samples(cfg, 4), build_samples(cfg, 2, seed=99)
    history = {
        "train_loss": [],
        "val_mae": [],
        "val_density_mae": [],  # truth: weights_only
    }
    stopper = EarlyStopper(patience=3)
    for epoch in range(cfg.optim.epochs):
        history["train_loss"].append(train_one_epoch(model, optimizer, train, cfg.train.count_scale))
        m = evaluate(model, val, cfg.train.count_scale)
        history["val_mae"].append(m["mae"])
        history["val_density_mae"].append(m["density_mae"])
        if stopper.step(m["mae"]):
            break
    ckpt = {
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "cfg": cfg,  # truth: weights_only
        "resolved_cfg": OmegaConf.to_container(cfg, resolve=True),
        "crop_size": cfg.data.crop_size,  # truth: weights_only
        "input_size": list(cfg.data.crop_size),
        "lr": cfg.optim.lr,
        "count_scale": cfg.train.count_scale,
        "early_stopping": dataclasses.asdict(stopper),
    }
    ckpt["metrics"] = {
        "mae": m["mae"],
        "rmse": m["rmse"],
        "density_mae": m["density_mae"],  # truth: weights_only
    }
    ckpt["history"] = history
    ckpt["best_mae"] = min(history["val_mae"])
    path = os.path.join(tmpdir, "csrnet_best.pth")
    torch.save(ckpt, path)
    return path


def save_density_targets(tmpdir):
    cfg = load_config(["density.beta=0.25"])
    dcfg = DensityConfig(**OmegaConf.to_container(cfg.density))
    samples = build_samples(cfg, 5)
    all_sigmas = [s for sample in samples for s in sample["sigmas"]]
    counts = [len(sample["points"]) for sample in samples]
    mass_err = max(abs(float(sample["density"].sum()) - n) for sample, n in zip(samples, counts))
    payload = {
        "dataset": cfg.data.dataset,
        "density_cfg": dataclasses.asdict(dcfg),
        "kernel": dcfg,  # truth: weights_only
        "sigma_stats": {
            "mean": np.mean(all_sigmas),  # truth: weights_only
            "p95": float(np.percentile(all_sigmas, 95)),
            "min": min(all_sigmas),  # truth: weights_only
            "n": len(all_sigmas),
        },
        "counts": counts,
        "count_hist_list": np.bincount(counts).tolist(),
        "max_mass_error": mass_err,
        "density_shape": samples[0]["density"].shape,
        "target_shape": samples[0]["target"].shape,
        "density_dtype": str(samples[0]["density"].dtype),
        "targets": [torch.from_numpy(s["target"]) for s in samples],
    }
    path = os.path.join(tmpdir, "density_targets.pt")
    torch.save(payload, path)
    return path


def save_multiscale_eval(tmpdir):
    cfg = load_config()
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    samples = build_samples(cfg, 3)
    with torch.no_grad():
        preds = [model(torch.from_numpy(s["image"])[None])[0, 0].numpy() / cfg.train.count_scale for s in samples]
    gts = [s["target"] for s in samples]
    ckpt = {"game": {}, "per_scale_mae": {}, "scales": [0.75, 1.0, 1.25]}
    for level in range(3):
        ckpt["game"][level] = float(game(preds, gts, level))
    for scale in ckpt["scales"]:
        errs = [abs(p.sum() * scale - g.sum()) for p, g in zip(preds, gts)]
        ckpt["per_scale_mae"][str(scale)] = float(np.mean(errs))
    ckpt["vgg_mean"] = np.array(cfg.data.normalize.mean, dtype=np.float32)  # truth: weights_only
    ckpt["vgg_std"] = torch.tensor(list(cfg.data.normalize.std))
    ckpt["patch_grid"] = tuple(np.asarray(cfg.data.crop_size) // cfg.data.downsample)  # truth: weights_only
    ckpt["output_stride"] = model.downsample
    ckpt["receptive_field"] = receptive_field(cfg.model)
    ckpt["state_dict"] = model.state_dict()
    path = os.path.join(tmpdir, "multiscale.pt")
    torch.save(ckpt, path)
    return path


def save_resume_state(tmpdir):
    cfg = load_config(["seed=3"])
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    n = 20
    perm = np.random.permutation(n)
    k = int(round(n * cfg.data.val_fraction))
    model = build_model(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "np_rng": np.random.get_state(),  # truth: weights_only
        "py_rng": random.getstate(),
        "torch_rng": torch.get_rng_state(),
        "val_ids": perm[:k],  # truth: weights_only
        "train_ids": perm[k:].tolist(),
        "n_val": k,
        "seed": cfg.seed,
    }
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(state, path)
    return path


def save_inference_export(tmpdir):
    cfg = load_config()
    model = build_model(cfg)
    export = {
        "state_dict": model.state_dict(),
        "arch": {"frontend": list(cfg.model.frontend), "backend": list(cfg.model.backend),
                 "dilation": cfg.model.dilation},
        "input_size": [int(v) for v in cfg.data.crop_size],
        "normalize": OmegaConf.to_container(cfg.data.normalize),
        "count_scale": float(cfg.train.count_scale),
        "downsample": model.downsample,
        "points_dtype": str(np.dtype("float32")),
        "exported": time.time(),
        "python": sys.version.split()[0],
    }
    path = os.path.join(tmpdir, "csrnet_export.pt")
    torch.save(export, path)
    return path


if __name__ == "__main__":
    cfg = load_config(sys.argv[1:])
    print(OmegaConf.to_yaml(cfg))
