"""Downscaling of daily precipitation: coarse reanalysis (0.25 deg) -> 0.0625 deg station grid.

Train an SRCNN or a residual downscaler on (coarse, fine) precipitation pairs plus static
orography, evaluate with RMSE / CSI at rain thresholds, and fit an empirical quantile mapping
for the residual bias.  Data loading is replaced by a gamma-distributed synthetic generator here.

    python precip_downscaling.py --data-root /data/era5_cerra --scale 4 --epochs 40 --log-transform
"""
import argparse
import datetime
import math
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import stats

THRESHOLDS_MM = (0.1, 1.0, 5.0, 20.0)
INPUT_VARS = ["tp", "tcwv", "z500"]


def build_parser():
    p = argparse.ArgumentParser(description="precipitation downscaling")
    p.add_argument("--data-root", type=Path, default=Path("/data/era5_cerra"))
    p.add_argument("--out-dir", type=str, default="runs/downscale")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--patch", type=int, default=32)
    p.add_argument("--n-samples", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--log-transform", action="store_true")
    p.add_argument("--train-period", type=str, default="1991-01-01:2010-12-31")
    p.add_argument("--wet-threshold", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=7)
    return p


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- data

def synthetic_fields(n, patch, scale, rng):
    """Gamma-distributed rain with ~40% dry pixels; coarse field = block mean of the fine one."""
    fine = rng.gamma(shape=0.6, scale=4.0, size=(n, 1, patch, patch)).astype(np.float32)
    fine *= rng.random((n, 1, patch, patch)) > 0.4
    coarse = fine.reshape(n, 1, patch // scale, scale, patch // scale, scale).mean(axis=(3, 5))
    extra = rng.normal(size=(n, len(INPUT_VARS) - 1, patch // scale, patch // scale)).astype(np.float32)
    coarse = np.concatenate([coarse, extra], axis=1)
    orography = np.abs(rng.normal(500.0, 300.0, size=(patch, patch))).astype(np.float32)
    lat = np.linspace(45.0, 45.0 + 0.0625 * (patch - 1), patch)
    lon = np.linspace(5.0, 5.0 + 0.0625 * (patch - 1), patch)
    return coarse, fine, orography, lat, lon


def fit_normalizer(coarse, log_transform):
    x = np.log1p(coarse[:, 0]) if log_transform else coarse[:, 0]
    return {"mean": x.mean(), "std": x.std() + 1e-6, "log": log_transform}


def normalise(x, norm):
    x = x.copy()
    if norm["log"]:
        x[:, 0] = np.log1p(x[:, 0])
    x[:, 0] = (x[:, 0] - norm["mean"]) / norm["std"]
    return x


def station_table(lat, lon, rng, n=12):
    return pd.DataFrame({
        "station": [f"ST{i:03d}" for i in range(n)],
        "lat": rng.choice(lat, n),
        "lon": rng.choice(lon, n),
        "elevation": rng.uniform(100, 2500, n),
        "annual_mm": rng.gamma(8.0, 120.0, n),
    })


# --------------------------------------------------------------------------- models

class SRCNN(nn.Module):
    def __init__(self, in_ch=len(INPUT_VARS), scale=4, width=32):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(in_ch + 1, width, 9, padding=4), nn.ReLU(),
            nn.Conv2d(width, width // 2, 5, padding=2), nn.ReLU(),
            nn.Conv2d(width // 2, 1, 5, padding=2),
        )

    def forward(self, coarse, orog):
        x = F.interpolate(coarse, scale_factor=self.scale, mode="bicubic", align_corners=False)
        x = torch.cat([x, orog.expand(x.shape[0], 1, -1, -1)], dim=1)
        return F.relu(self.body(x))


class ResBlock(nn.Module):
    def __init__(self, ch=32):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.gelu(self.conv1(x)))


class ResidualDownscaler(nn.Module):
    def __init__(self, in_ch=len(INPUT_VARS), scale=4, ch=32, n_blocks=2):
        super().__init__()
        self.head = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.blocks = nn.Sequential(*[ResBlock(ch) for _ in range(n_blocks)])
        self.up = nn.Sequential(nn.Conv2d(ch, ch * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        self.tail = nn.Conv2d(ch + 1, 1, 3, padding=1)

    def forward(self, coarse, orog):
        h = self.up(self.blocks(self.head(coarse)))
        h = torch.cat([h, orog.expand(h.shape[0], 1, -1, -1)], dim=1)
        return F.softplus(self.tail(h))


# --------------------------------------------------------------------------- train / eval

def train_one_epoch(model, opt, coarse, fine, orog, batch_size):
    model.train()
    perm = torch.randperm(coarse.shape[0])
    total = 0.0
    for i in range(0, len(perm), batch_size):
        idx = perm[i:i + batch_size]
        pred = model(coarse[idx], orog)
        loss = F.l1_loss(pred, fine[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    return total / len(perm)


def critical_success_index(pred, obs, thr):
    hits = np.sum((pred >= thr) & (obs >= thr))
    misses = np.sum((pred < thr) & (obs >= thr))
    false_alarms = np.sum((pred >= thr) & (obs < thr))
    return hits / max(hits + misses + false_alarms, 1)


@torch.no_grad()
def evaluate(model, coarse, fine, orog):
    model.eval()
    pred = model(coarse, orog).numpy()
    obs = fine.numpy()
    rmse = np.sqrt(np.mean((pred - obs) ** 2))
    bias = pred.mean() - obs.mean()
    csi = {thr: critical_success_index(pred, obs, thr) for thr in THRESHOLDS_MM}
    return rmse, bias, csi, pred


def quantile_mapping(model_vals, obs_vals, n_q=50):
    qs = np.linspace(0.01, 0.99, n_q)
    return qs, np.quantile(model_vals, qs), np.quantile(obs_vals, qs)


def prepare(args):
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    coarse, fine, orog, lat, lon = synthetic_fields(args.n_samples, args.patch, args.scale, rng)
    norm = fit_normalizer(coarse, args.log_transform)
    x = torch.from_numpy(normalise(coarse, norm))
    y = torch.from_numpy(fine)
    o = torch.from_numpy((orog - orog.mean()) / orog.std())[None, None]
    return rng, x, y, o, norm, lat, lon


# --------------------------------------------------------------------------- checkpoints

def save_srcnn_checkpoint(out_dir, argv=()):
    args = build_parser().parse_args(list(argv) + ["--log-transform"])
    rng, x, y, o, norm, lat, lon = prepare(args)
    model = SRCNN(scale=args.scale)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=3)
    best_rmse, best_state = math.inf, None
    for epoch in range(args.epochs):
        train_one_epoch(model, opt, x, y, o, args.batch_size)
        val_rmse, bias, csi, _ = evaluate(model, x, y, o)
        sched.step(val_rmse)
        if val_rmse < best_rmse:
            best_rmse = val_rmse
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ckpt = {
        "epoch": epoch,
        "model_state": best_state,
        "optimizer_state": opt.state_dict(),
        "scheduler_state": sched.state_dict(),
        "args": args,  # truth: weights_only
        "norm": {
            "mean": float(norm["mean"]),
            "std": norm["std"],  # truth: weights_only
            "log": norm["log"],
        },
        "val_rmse": round(float(val_rmse), 4),
        "best_rmse": best_rmse,  # truth: weights_only
        "csi": {f"{thr:g}mm": float(v) for thr, v in csi.items()},
        "scale": args.scale,
    }
    path = Path(out_dir) / "srcnn_last.pt"
    torch.save(ckpt, path)
    return str(path)


def save_quantile_mapping(out_dir, argv=()):
    args = build_parser().parse_args(list(argv))
    rng, x, y, o, norm, lat, lon = prepare(args)
    model = SRCNN(scale=args.scale)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    train_one_epoch(model, opt, x, y, o, args.batch_size)
    _, _, _, pred = evaluate(model, x, y, o)
    obs = y.numpy()
    wet = obs > args.wet_threshold
    qs, q_model, q_obs = quantile_mapping(pred[wet], obs[wet])
    start, end = args.train_period.split(":")
    period = pd.date_range(start, end, freq="D")
    ks = stats.ks_2samp(pred[wet].ravel(), obs[wet].ravel())
    stations = station_table(lat, lon, rng)
    qm = dict(
        quantiles=qs.tolist(),
        model_q=torch.from_numpy(q_model).float(),
        obs_q=q_obs,  # truth: weights_only
        wet_day_freq=float(wet.mean()),
        model_wet_freq=float((pred > args.wet_threshold).mean()),
        period=(period[0], period[-1]),  # truth: weights_only
        n_days=len(period),
        ks_pvalue=float(ks.pvalue),
        stations=stations.describe().to_dict(),
        station_ids=stations["station"].tolist(),
        max_station_mm=float(stations["annual_mm"].max()),
    )
    path = Path(out_dir) / "quantile_mapping.pt"
    torch.save(qm, path)
    return str(path)


def save_downscaler_best(out_dir, argv=()):
    args = build_parser().parse_args(list(argv) + ["--epochs", "3"])
    rng, x, y, o, norm, lat, lon = prepare(args)
    model = ResidualDownscaler(scale=args.scale)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    history = defaultdict(list)
    best = float("inf")
    for epoch in range(args.epochs):
        tr = train_one_epoch(model, opt, x, y, o, args.batch_size)
        rmse, bias, csi, pred = evaluate(model, x, y, o)
        sched.step()
        history["train_l1"].append(tr)
        history["val_rmse"].append(float(rmse))
        history["val_bias"].append(float(bias))
        is_best = rmse < best
        best = min(best, float(rmse))
    r, p = stats.pearsonr(pred.ravel(), y.numpy().ravel())
    land_mask = o.squeeze().numpy() > -0.5
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    ckpt["history"] = history  # truth: weights_only
    ckpt["lr_trace"] = [g["lr"] for g in opt.param_groups]
    ckpt["orography"] = o.squeeze(0).clone()
    ckpt["land_mask"] = torch.from_numpy(land_mask)
    ckpt["grid"] = {"lat": lat.tolist(), "lon": lon.tolist(), "res_deg": 0.0625}
    ckpt["pearson"] = {"r": r, "p": float(p)}  # truth: weights_only
    ckpt["is_best"] = is_best  # truth: weights_only
    ckpt["best_rmse"] = best
    path = Path(out_dir) / "resdown_best.pt"
    torch.save(ckpt, path)
    return str(path)


def save_inference_bundle(out_dir, argv=()):
    args = build_parser().parse_args(list(argv))
    rng, x, y, o, norm, lat, lon = prepare(args)
    model = ResidualDownscaler(scale=args.scale, n_blocks=1)
    export_dir = Path(out_dir) / "export"
    export_dir.mkdir(parents=True, exist_ok=True)
    bundle = {
        "model": model,  # truth: weights_only
        "input_vars": list(INPUT_VARS),
        "target_dtype": str(y.numpy().dtype),
        "hr_shape": y.shape[-2:],
        "lr_shape": tuple(x.shape[-2:]),
        "norm_mean": float(norm["mean"]),
        "norm_std": float(norm["std"]),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "torch_version": str(torch.__version__),
        "data_root": args.data_root,  # truth: weights_only
        "export_dir": str(export_dir),
        "orography_source": args.data_root.name,
    }
    path = export_dir / "bundle.pt"
    torch.save(bundle, path)
    return str(path)


def save_ensemble_members(out_dir, argv=()):
    args = build_parser().parse_args(list(argv))
    members, seed_rmse, seed_csi = [], {}, {}
    for seed in (1, 2, 3):
        args.seed = seed
        rng, x, y, o, norm, lat, lon = prepare(args)
        m = SRCNN(scale=args.scale, width=16)
        opt = torch.optim.SGD(m.parameters(), lr=1e-2, momentum=0.9)
        train_one_epoch(m, opt, x, y, o, args.batch_size)
        rmse, _, csi, _ = evaluate(m, x, y, o)
        members.append(m.state_dict())
        seed_rmse[str(seed)] = float(rmse)
        seed_csi[str(seed)] = [round(float(c), 4) for c in csi.values()]
    spread = float(np.std(list(seed_rmse.values())))
    ckpt = {
        "members": members,
        "seed_rmse": seed_rmse,
        "seed_csi": seed_csi,
        "spread": spread,
        "thresholds": list(THRESHOLDS_MM),
        "rng": {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy_pcg": rng.bit_generator.state,
        },
        "hparams": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    path = Path(out_dir) / "ensemble.pt"
    torch.save(ckpt, path)
    return str(path)


def save_resume_state(out_dir, argv=()):
    args = build_parser().parse_args(list(argv))
    t0 = time.time()
    rng, x, y, o, norm, lat, lon = prepare(args)
    model = SRCNN(scale=args.scale)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    order = np.random.permutation(x.shape[0])
    step = 0
    for start in range(0, len(order), args.batch_size):
        idx = torch.as_tensor(order[start:start + args.batch_size])
        loss = F.mse_loss(model(x[idx], o), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    state = {"model": model.state_dict(), "optim": opt.state_dict(), "step": step}
    state.update(
        np_random=np.random.get_state(),  # truth: weights_only
        torch_random=torch.get_rng_state(),
        sampler_order=order,  # truth: weights_only
        cursor=int(order[-1]),
        patch=args.patch,
        n_pixels=math.prod(y.shape),
        elapsed=str(datetime.timedelta(seconds=round(time.time() - t0))),
        wall_time=time.time() - t0,
    )
    path = Path(out_dir) / "resume.pt"
    torch.save(state, path)
    return str(path)


if __name__ == "__main__":
    out = build_parser().parse_args().out_dir
    Path(out).mkdir(parents=True, exist_ok=True)
    print(save_srcnn_checkpoint(out))
