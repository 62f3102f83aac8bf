"""Precipitation nowcasting from radar reflectivity composites (5-minute scans, 4 in -> 2 out).

OmegaConf config, functional training loop, categorical verification (CSI / POD / FAR) at rain-rate
thresholds against a persistence baseline. Synthetic advecting storm cells replace the composites.
"""
import datetime
import math
import os
import time

import numpy as np
import pandas as pd
import scipy.ndimage as ndi
import scipy.stats
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf

BASE_CONFIG = """
data:
  patch: [32, 32]
  n_in: 4
  n_out: 2
  scan_minutes: 5
  dbz_min: -10.0
  dbz_max: 60.0
  zr: {a: 200.0, b: 1.6}
  start: "2023-07-14 12:00"
model:
  hidden: 16
  depth: 2
  activation: silu
optim:
  lr: 2.0e-3
  betas: [0.9, 0.99]
  weight_decay: 1.0e-4
  ema_decay: 0.99
train:
  steps: 6
  batch_size: 2
  seed: 3
eval:
  thresholds: [0.5, 2.0, 5.0, 10.0]
  pooling: [1, 4]
run_name: unet-lite-${data.n_in}to${data.n_out}
"""


def load_config(overrides=()):
    cfg = OmegaConf.create(BASE_CONFIG)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return cfg


# ---------------------------------------------------------------------------- data

def synth_sequence(cfg, rng):
    """dBZ frames (T, H, W) of one or two gaussian cells moving with a constant velocity."""
    H, W = cfg.data.patch
    T = cfg.data.n_in + cfg.data.n_out
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    frames = np.full((T, H, W), cfg.data.dbz_min, dtype=np.float32)
    for _ in range(rng.integers(1, 3)):
        cy, cx = rng.uniform(6, H - 6), rng.uniform(6, W - 6)
        vy, vx = rng.uniform(-1.5, 1.5, size=2)
        peak, width = rng.uniform(35, 55), rng.uniform(3, 6)
        for t in range(T):
            d2 = (yy - cy - vy * t) ** 2 + (xx - cx - vx * t) ** 2
            frames[t] = np.maximum(frames[t], peak * np.exp(-d2 / (2 * width ** 2)))
    return frames


def dbz_to_rainrate(dbz, a=200.0, b=1.6):
    """Marshall-Palmer Z-R: Z = a R^b with Z in mm^6 m^-3."""
    z = 10.0 ** (dbz / 10.0)
    return (z / a) ** (1.0 / b)


def normalize(dbz, lo, hi):
    return (np.clip(dbz, lo, hi) - lo) / (hi - lo)


def make_batch(cfg, rng, n):
    seqs = np.stack([synth_sequence(cfg, rng) for _ in range(n)])
    x = normalize(seqs, cfg.data.dbz_min, cfg.data.dbz_max)
    n_in = cfg.data.n_in
    return torch.from_numpy(x[:, :n_in]), torch.from_numpy(x[:, n_in:]), seqs


# ---------------------------------------------------------------------------- model

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


class UNetLite(nn.Module):
    def __init__(self, n_in=4, n_out=2, hidden=16, depth=2, activation="silu"):
        super().__init__()
        act = ACTIVATIONS[activation]
        self.down = nn.ModuleList()
        ch = n_in
        for i in range(depth):
            self.down.append(nn.Sequential(nn.Conv2d(ch, hidden * 2 ** i, 3, padding=1), act()))
            ch = hidden * 2 ** i
        self.up = nn.ModuleList()
        for i in reversed(range(depth - 1)):
            self.up.append(nn.Sequential(nn.Conv2d(ch + hidden * 2 ** i, hidden * 2 ** i, 3, padding=1), act()))
            ch = hidden * 2 ** i
        self.head = nn.Conv2d(ch, n_out, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for block in self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = block(torch.cat([x, skips.pop()], 1))
        return torch.sigmoid(self.head(x))


def build_model(cfg):
    return UNetLite(cfg.data.n_in, cfg.data.n_out, cfg.model.hidden, cfg.model.depth, cfg.model.activation)


def build_optim(cfg, model):
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                            weight_decay=cfg.optim.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.optim.lr, total_steps=cfg.train.steps)
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.optim.ema_decay))
    return opt, sched, ema


def weighted_mae(pred, target, lo, hi):
    """Heavier weight on intense echoes (normalized dBZ above ~20 dBZ)."""
    thr = (20.0 - lo) / (hi - lo)
    w = 1.0 + 4.0 * (target > thr).float()
    return (w * (pred - target).abs()).mean()


def train(cfg, model, opt, sched, ema, rng):
    losses = []
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for _ in range(cfg.train.steps):
        x, y, _ = make_batch(cfg, rng, cfg.train.batch_size)
        loss = weighted_mae(model(x), y, cfg.data.dbz_min, cfg.data.dbz_max)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        ema.update_parameters(model)
        losses.append(loss.item())
    return losses, scaler


# ---------------------------------------------------------------------------- verification

def contingency(pred_rr, obs_rr, thr, pool=1):
    if pool > 1:
        pred_rr = ndi.maximum_filter(pred_rr, size=(1, 1, pool, pool))
        obs_rr = ndi.maximum_filter(obs_rr, size=(1, 1, pool, pool))
    p, o = pred_rr >= thr, obs_rr >= thr
    return np.sum(p & o), np.sum(~p & o), np.sum(p & ~o)


def categorical_scores(pred_rr, obs_rr, thresholds, pool=1):
    scores = {"csi": [], "pod": [], "far": {}}
    for thr in thresholds:
        hits, misses, false_alarms = contingency(pred_rr, obs_rr, thr, pool)
        scores["csi"].append(hits / max(hits + misses + false_alarms, 1))
        scores["pod"].append(float(hits / max(hits + misses, 1)))
        scores["far"][thr] = float(false_alarms / max(hits + false_alarms, 1))
    return scores


@torch.no_grad()
def evaluate(cfg, model, rng, n=4):
    model.eval()
    x, y, seqs = make_batch(cfg, rng, n)
    pred = model(x).numpy() * (cfg.data.dbz_max - cfg.data.dbz_min) + cfg.data.dbz_min
    obs = seqs[:, cfg.data.n_in:]
    persist = np.repeat(seqs[:, cfg.data.n_in - 1:cfg.data.n_in], cfg.data.n_out, axis=1)
    zr = cfg.data.zr
    pred_rr, obs_rr, pers_rr = (dbz_to_rainrate(a, zr.a, zr.b) for a in (pred, obs, persist))
    mse_model = F.mse_loss(torch.from_numpy(pred_rr), torch.from_numpy(obs_rr)).item()
    mse_pers = F.mse_loss(torch.from_numpy(pers_rr), torch.from_numpy(obs_rr)).item()
    model.train()
    return pred_rr, obs_rr, mse_model, mse_pers


def save_nowcast_checkpoint(tmpdir):
    cfg = load_config(["train.steps=4"])
    torch.manual_seed(cfg.train.seed)
    rng = np.random.default_rng(cfg.train.seed)
    model = build_model(cfg)
    opt, sched, ema = build_optim(cfg, model)
    losses, scaler = train(cfg, model, opt, sched, ema, rng)
    pred_rr, obs_rr, mse_model, mse_pers = evaluate(cfg, ema.module, rng)
    scores = categorical_scores(pred_rr, obs_rr, cfg.eval.thresholds)
    _, _, seqs = make_batch(cfg, rng, 8)
    ckpt = {
        "model": model.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "grad_scaler": scaler.state_dict(),
        "step": cfg.train.steps,
        "config": cfg,  # truth: weights_only
        "thresholds": cfg.eval.thresholds,  # truth: weights_only
        "betas": cfg.optim.betas[0:2],
        "loss_curve": losses,
        "norm": {
            "dbz_range": (cfg.data.dbz_min, cfg.data.dbz_max),
            "mean": float(seqs.mean()),
            "std": seqs.std(),  # truth: weights_only
        },
    }
    ckpt["scores"] = {
        "csi": scores["csi"],  # truth: weights_only
        "pod": scores["pod"],
        "far": scores["far"],
        "mse": mse_model,
        "skill_vs_persistence": 1.0 - mse_model / max(mse_pers, 1e-8),
    }
    ckpt["numpy_rng"] = rng.bit_generator.state
    path = os.path.join(tmpdir, f"{cfg.run_name}.ckpt")
    torch.save(ckpt, path)
    return path


def save_ema_for_inference(tmpdir):
    cfg = load_config(["train.steps=2"])
    rng = np.random.default_rng(cfg.train.seed)
    model = build_model(cfg)
    opt, sched, ema = build_optim(cfg, model)
    train(cfg, model, opt, sched, ema, rng)
    out = dict(
        ema_model=ema.module,  # truth: weights_only
        n_averaged=ema.n_averaged,
        config=OmegaConf.to_container(cfg, resolve=True),
        train=dict(cfg.train),
        activation=cfg.model.activation,
        run_name=cfg.run_name,
    )
    path = os.path.join(tmpdir, "ema_inference.pt")
    torch.save(out, path)
    return path


def forecast_times(cfg, issued):
    step = pd.Timedelta(minutes=cfg.data.scan_minutes)
    valid = pd.date_range(issued + step, periods=cfg.data.n_out, freq=step)
    return step * cfg.data.n_out, valid


def save_verification_report(tmpdir):
    """Scores per lead time and per neighbourhood size, for the verification dashboard."""
    cfg = load_config()
    rng = np.random.default_rng(11)
    model = build_model(cfg)
    pred_rr, obs_rr, mse_model, mse_pers = evaluate(cfg, model, rng)
    issued = pd.Timestamp(cfg.data.start)
    horizon, valid = forecast_times(cfg, issued)
    report = {}
    report["issued"] = issued.isoformat()
    report["horizon"] = horizon  # truth: weights_only
    report["horizon_minutes"] = horizon.total_seconds() / 60.0
    report["valid_times"] = valid  # truth: weights_only
    report["valid_labels"] = valid.strftime("%Y%m%d%H%M").tolist()
    report["thresholds"] = list(cfg.eval.thresholds)
    for pool in cfg.eval.pooling:
        by_lead = []
        for lead in range(cfg.data.n_out):
            s = categorical_scores(pred_rr[:, lead:lead + 1], obs_rr[:, lead:lead + 1], cfg.eval.thresholds, pool)
            by_lead.append([round(float(c), 4) for c in s["csi"]])
        report[f"csi_pool{pool}"] = by_lead
    _, n_cells = ndi.label(obs_rr[0, 0] >= cfg.eval.thresholds[0])
    report["n_cells_first_frame"] = n_cells
    report["obs_max_rr"] = float(obs_rr.max())
    report["pearson"] = scipy.stats.pearsonr(pred_rr.ravel(), obs_rr.ravel())  # truth: weights_only
    report["spearman"] = float(scipy.stats.spearmanr(pred_rr.ravel(), obs_rr.ravel())[0])
    report["mse"] = {"model": mse_model, "persistence": mse_pers}
    report["generated"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    path = os.path.join(tmpdir, "verification.pt")
    torch.save(report, path)
    return path


def input_stats(cfg, rng, n_seq=6):
    seqs = np.stack([synth_sequence(cfg, rng) for _ in range(n_seq)])
    rr = dbz_to_rainrate(seqs, cfg.data.zr.a, cfg.data.zr.b)
    wet = rr >= cfg.eval.thresholds[0]
    return {
        "wet_fraction": float(wet.mean()),
        "rr_p99": float(np.percentile(rr, 99)),
        "log_rr_mean": float(np.log1p(rr).mean()),
        "log_rr_std": float(np.log1p(rr).std()),
    }, rr


def save_preprocessing_stats(tmpdir):
    cfg = load_config()
    rng = np.random.default_rng(5)
    stats, rr = input_stats(cfg, rng)
    H, W = cfg.data.patch
    torch.save(
        {
            "stats": stats,
            "eps": np.finfo(np.float32).eps,  # truth: weights_only
            "torch_eps": torch.finfo(torch.float32).eps,
            "n_pixels": np.prod(cfg.data.patch),  # truth: weights_only
            "n_pixels_checked": math.prod(cfg.data.patch),
            "patch": (H, W),
            "zr": dict(cfg.data.zr),
            "rr_hist": torch.histc(torch.from_numpy(rr).float(), bins=8, min=0.0, max=50.0),
            "rr_quantiles": torch.quantile(torch.from_numpy(rr[:1]).flatten().float(),
                                           torch.tensor([0.5, 0.9, 0.99])),
            "created": time.time(),
        },
        os.path.join(tmpdir, "prep_stats.pt"),
    )
    return os.path.join(tmpdir, "prep_stats.pt")


def save_operational_export(tmpdir):
    """What the nowcasting service loads every five minutes; kept to plain types on purpose."""
    cfg = load_config()
    model = build_model(cfg)
    meta = {
        "arch": type(model).__name__,
        "model_kwargs": OmegaConf.to_container(cfg.model),
        "n_in": cfg.data.n_in,
        "n_out": cfg.data.n_out,
        "scan_minutes": cfg.data.scan_minutes,
        "zr": [cfg.data.zr.a, cfg.data.zr.b],
        "thresholds": [float(t) for t in cfg.eval.thresholds],
        "dbz_range": [cfg.data.dbz_min, cfg.data.dbz_max],
        "input_shape": tuple(torch.Size([1, cfg.data.n_in, *cfg.data.patch])),
        "dtype": torch.float32,
        "device": torch.device("cpu"),
        "config_yaml": OmegaConf.to_yaml(cfg, resolve=True),
    }
    path = os.path.join(tmpdir, "operational.pt")
    torch.save({"state_dict": model.state_dict(), "meta": meta}, path)
    return path
