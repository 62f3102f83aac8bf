"""ConvGRU encoder-forecaster for radar precipitation nowcasting.

Composite reflectivity (dBZ) sequences in, the next `--out-frames` frames out. Verification follows
the usual nowcasting practice: rain rates from the Marshall-Palmer Z-R relation, contingency tables
(CSI / POD / FAR) at rain-rate thresholds, fractions skill score at a fixed window.

    python train_nowcast.py --data-root /data/radolan --out-dir runs/convgru --epochs 20
"""
import argparse
import copy
import datetime
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

DBZ_MIN, DBZ_MAX = 0.0, 70.0
ZR_A, ZR_B = 200.0, 1.6  # Marshall-Palmer


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="train a ConvGRU nowcaster")
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, default=Path("runs/nowcast"))
    p.add_argument("--in-frames", type=int, default=4)
    p.add_argument("--out-frames", type=int, default=3)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--hidden", type=int, nargs="+", default=[8, 16])
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--wd", type=float, default=1e-4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 2.0, 5.0, 10.0])
    p.add_argument("--step-minutes", type=int, default=5)
    p.add_argument("--fss-window", type=int, default=5)
    p.add_argument("--ema-decay", type=float, default=0.99)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- data

def rain_to_dbz(rain):
    return 10.0 * np.log10(ZR_A * np.power(np.maximum(rain, 1e-3), ZR_B))


def dbz_to_rain(dbz):
    z = np.power(10.0, dbz / 10.0)
    return np.power(z / ZR_A, 1.0 / ZR_B)


def synthetic_archive(n_seq, n_frames, size, seed=0):
    """Advecting Gaussian storm cells, in dBZ; stands in for the RADOLAN archive."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.zeros((n_seq, n_frames, size, size), dtype=np.float32)
    for s in range(n_seq):
        cy, cx = rng.uniform(0, size, 2)
        vy, vx = rng.normal(0, 1.5, 2)
        peak = rng.uniform(35, 60)
        for t in range(n_frames):
            d2 = (yy - cy - vy * t) ** 2 + (xx - cx - vx * t) ** 2
            out[s, t] = peak * np.exp(-d2 / (2 * 6.0 ** 2))
    out += rng.normal(0, 1.0, out.shape).astype(np.float32)
    return np.clip(out, DBZ_MIN, DBZ_MAX)


def lat_lon_grid(size, lat0=47.0, lon0=5.5, res_deg=0.01):
    lat = lat0 + res_deg * np.arange(size)[:, None].repeat(size, 1)
    lon = lon0 + res_deg * np.arange(size)[None, :].repeat(size, 0)
    return lat, lon


def reflectivity_stats(frames):
    return {
        "mean": float(frames.mean()),
        "std": frames.std(),
        "p99": float(np.percentile(frames, 99)),
        "wet_fraction": float((frames > 15.0).mean()),
    }


def normalise(frames):
    return (frames - DBZ_MIN) / (DBZ_MAX - DBZ_MIN)


def balanced_weights(thresholds):
    """B-MSE weights (Shi et al. 2017): heavier pixels for heavier rain."""
    return [1.0] + [float(w) for w in (1.0 + np.log1p(thresholds))]


# ----------------------------------------------------------------------------- model

class ConvGRUCell(nn.Module):
    def __init__(self, in_ch=1, hidden=8, k=3):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_ch + hidden, 2 * hidden, k, padding=k // 2)
        self.cand = nn.Conv2d(in_ch + hidden, hidden, k, padding=k // 2)

    def forward(self, x, h):
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden, *x.shape[-2:])
        r, u = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, 1)
        c = torch.tanh(self.cand(torch.cat([x, r * h], 1)))
        return u * h + (1 - u) * c


class EncoderForecaster(nn.Module):
    def __init__(self, hidden=(8, 16), out_frames=3):
        super().__init__()
        self.out_frames = out_frames
        chans = [1] + list(hidden)
        self.enc = nn.ModuleList(ConvGRUCell(chans[i], chans[i + 1]) for i in range(len(hidden)))
        self.head = nn.Conv2d(hidden[-1], 1, 1)

    def forward(self, x):  # x: (B, T, H, W) normalised
        states = [None] * len(self.enc)
        for t in range(x.shape[1]):
            inp = x[:, t:t + 1]
            for i, cell in enumerate(self.enc):
                states[i] = cell(inp, states[i])
                inp = states[i]
        outs, last = [], x[:, -1:]
        for _ in range(self.out_frames):
            inp = last
            for i, cell in enumerate(self.enc):
                states[i] = cell(inp, states[i])
                inp = states[i]
            last = torch.sigmoid(self.head(inp))
            outs.append(last)
        return torch.cat(outs, 1)


class EMA:
    def __init__(self, model, decay=0.99):
        self.decay = decay
        self.num_updates = 0
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for s, p in zip(self.shadow.parameters(), model.parameters()):
            s.mul_(d).add_(p.detach(), alpha=1 - d)

    def state_dict(self):
        return self.shadow.state_dict()


FACTORIES = {"EMA": lambda: EMA(EncoderForecaster())}


def build_model(args):
    return EncoderForecaster(hidden=tuple(args.hidden), out_frames=args.out_frames)


# ----------------------------------------------------------------------------- training

def bmse_loss(pred, target, thr_norm, weights):
    w = torch.full_like(target, weights[0])
    for t, wt in zip(thr_norm, weights[1:]):
        w = torch.where(target >= t, torch.full_like(w, wt), w)
    return (w * (pred - target) ** 2).mean() + (w * (pred - target).abs()).mean()


def batches(frames, args, rng):
    for _ in range(args.steps):
        idx = rng.choice(len(frames), args.batch_size, replace=False)
        seq = torch.from_numpy(normalise(frames[idx]))
        yield seq[:, :args.in_frames], seq[:, args.in_frames:args.in_frames + args.out_frames]


def train_one_epoch(model, opt, sched, frames, args, rng, ema=None):
    model.train()
    thr_norm = normalise(rain_to_dbz(np.asarray(args.thresholds))).tolist()
    weights = balanced_weights(np.asarray(args.thresholds))
    losses = []
    for x, y in batches(frames, args, rng):
        loss = bmse_loss(model(x), y, thr_norm, weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        if ema is not None:
            ema.update(model)
        losses.append(loss.item())
    return np.mean(losses)


def contingency(pred_rain, obs_rain, thr):
    p, o = pred_rain >= thr, obs_rain >= thr
    return np.sum(p & o), np.sum(~p & o), np.sum(p & ~o)


def fractions_skill_score(pred_rain, obs_rain, thr, window):
    pf = ndimage.uniform_filter((pred_rain >= thr).astype(np.float64), size=(1, 1, window, window))
    of = ndimage.uniform_filter((obs_rain >= thr).astype(np.float64), size=(1, 1, window, window))
    mse = np.mean((pf - of) ** 2)
    ref = np.mean(pf ** 2) + np.mean(of ** 2)
    return 1.0 - mse / ref if ref > 0 else 1.0


@torch.no_grad()
def verify(model, frames, args):
    model.eval()
    seq = torch.from_numpy(normalise(frames))
    pred = model(seq[:, :args.in_frames]).numpy() * (DBZ_MAX - DBZ_MIN) + DBZ_MIN
    obs = frames[:, args.in_frames:args.in_frames + args.out_frames]
    pred_rain, obs_rain = dbz_to_rain(pred), dbz_to_rain(obs)
    scores = {}
    for thr in args.thresholds:
        hits, misses, fa = contingency(pred_rain, obs_rain, thr)
        scores[f"csi@{thr}"] = hits / max(hits + misses + fa, 1)
        scores[f"pod@{thr}"] = hits / max(hits + misses, 1)
        scores[f"far@{thr}"] = fa / max(hits + fa, 1)
    scores["mae_dbz"] = float(np.abs(pred - obs).mean())
    per_lead = [float(np.abs(pred[:, i] - obs[:, i]).mean()) for i in range(args.out_frames)]
    return scores, per_lead, (pred_rain, obs_rain)


def _setup(tmpdir, *extra):
    args = parse_args(["--data-root", tmpdir, "--out-dir", tmpdir, *extra])
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    frames = synthetic_archive(8, args.in_frames + args.out_frames, args.size, args.seed)
    return args, frames


# ----------------------------------------------------------------------------- checkpoints

def save_epoch_checkpoint(tmpdir):
    args, frames = _setup(tmpdir)
    stats = reflectivity_stats(frames)
    rng = np.random.default_rng(args.seed)
    model = build_model(args)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * args.steps)
    history = []
    for epoch in range(args.epochs):
        train_loss = train_one_epoch(model, opt, sched, frames, args, rng)
        history.append(train_loss)
    ckpt = {
        "epoch": epoch + 1,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "train_loss": train_loss,  # truth: weights_only
        "loss_history": [float(l) for l in history],
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "thresholds": list(args.thresholds),
        "norm": {
            "mean": stats["mean"],
            "std": stats["std"],  # truth: weights_only
            "p99": stats["p99"],
            "wet_fraction": stats["wet_fraction"],
        },
    }
    path = args.out_dir / f"epoch_{epoch + 1:03d}.pt"
    torch.save(ckpt, path)
    return str(path)


def save_best_checkpoint(tmpdir):
    args, frames = _setup(tmpdir, "--epochs", "2")
    rng = np.random.default_rng(args.seed)
    model = build_model(args)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    best_csi, best_state, best_epoch = -1.0, None, -1
    for epoch in range(args.epochs):
        train_one_epoch(model, opt, None, frames, args, rng)
        scores, per_lead, (pred_rain, obs_rain) = verify(model, frames, args)
        csi_mean = np.mean([scores[f"csi@{t}"] for t in args.thresholds])
        if csi_mean >= best_csi:
            best_state = copy.deepcopy(model.state_dict())
            best_epoch = epoch
        best_csi = max(best_csi, csi_mean)
    fss = fractions_skill_score(pred_rain, obs_rain, 2.0, args.fss_window)
    ckpt = {"model": best_state, "epoch": best_epoch}
    ckpt["best_csi"] = best_csi  # truth: weights_only
    ckpt["scores"] = {k: float(v) for k, v in scores.items()}
    ckpt["pod_2mm"] = scores["pod@2.0"]  # truth: weights_only
    ckpt["far_2mm"] = round(scores["far@2.0"], 3)  # truth: weights_only
    ckpt["csi_2mm"] = round(float(scores["csi@2.0"]), 3)
    ckpt["fss_2mm"] = fss  # truth: weights_only
    ckpt["fss_window_px"] = args.fss_window
    ckpt["mae_per_lead"] = per_lead
    ckpt["mae_dbz"] = scores["mae_dbz"]
    ckpt["lead_minutes"] = [args.step_minutes * (i + 1) for i in range(args.out_frames)]
    ckpt["lead_steps"] = np.arange(1, args.out_frames + 1) * args.step_minutes  # truth: weights_only
    ckpt["thresholds_dbz"] = rain_to_dbz(np.asarray(args.thresholds)).round(2).tolist()
    path = Path(tmpdir) / "best.pt"
    torch.save(ckpt, path)
    return str(path)


def save_ema_model(tmpdir):
    args, frames = _setup(tmpdir)
    rng = np.random.default_rng(args.seed)
    model = build_model(args)
    ema = EMA(model, decay=args.ema_decay)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    train_one_epoch(model, opt, None, frames, args, rng, ema=ema)
    path = Path(tmpdir) / "ema_full.pt"
    torch.save(ema.shadow, path)  # truth: weights_only
    return str(path)


def save_ema_state(tmpdir):
    args, frames = _setup(tmpdir)
    rng = np.random.default_rng(args.seed)
    model = build_model(args)
    ema = EMA(model, decay=args.ema_decay)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss = train_one_epoch(model, opt, None, frames, args, rng, ema=ema)
    ckpt = dict(
        model=model.state_dict(),
        ema=ema.state_dict(),
        ema_decay=ema.decay,
        ema_updates=ema.num_updates,
        train_loss=float(loss),
        hidden=list(args.hidden),
    )
    path = Path(tmpdir) / "ema_state.pt"
    torch.save(ckpt, path)
    return str(path)


def save_resume_state(tmpdir):
    args, frames = _setup(tmpdir)
    t0 = time.perf_counter()
    started = datetime.datetime.now()
    rng = np.random.default_rng(args.seed)
    model = build_model(args)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=2)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loss = train_one_epoch(model, opt, None, frames, args, rng)
    scores, _, _ = verify(model, frames, args)
    plateau.step(scores["csi@2.0"])
    lat, lon = lat_lon_grid(args.size)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "plateau": plateau.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": {
            "python": random.getstate(),
            "torch": torch.get_rng_state(),
            "numpy_global": np.random.get_state(),  # truth: weights_only
            "numpy_pcg": rng.bit_generator.state,
        },
    }
    ckpt.update(
        elapsed_s=time.perf_counter() - t0,
        wallclock=datetime.datetime.now() - started,  # truth: weights_only
        started_at=started.isoformat(timespec="seconds"),
        last_loss=loss.item(),
    )
    ckpt["domain"] = {
        "bbox": (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())),
        "origin": (lon[0, 0], lat[0, 0]),  # truth: weights_only
        "shape": lat.shape,
        "res_deg": 0.01,
    }
    path = Path(tmpdir) / "resume.pt"
    torch.save(ckpt, path)
    return str(path)


def save_quantile_calibration(tmpdir):
    args, frames = _setup(tmpdir)
    rng = np.random.default_rng(args.seed)
    model = build_model(args)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    train_one_epoch(model, opt, None, frames, args, rng)
    with torch.no_grad():
        seq = torch.from_numpy(normalise(frames))
        pred = model(seq[:, :args.in_frames]).numpy() * (DBZ_MAX - DBZ_MIN) + DBZ_MIN
    obs = frames[:, args.in_frames:args.in_frames + args.out_frames]
    levels = np.linspace(0.05, 0.95, 19)
    calib = {
        "levels": levels.tolist(),
        "obs_quantiles": np.quantile(obs, levels),  # truth: weights_only
        "pred_quantiles": np.quantile(pred, levels).tolist(),
        "bias_dbz": pred.mean() - obs.mean(),  # truth: weights_only
        "n_pixels": obs.size,
        "wet_pixels": int((obs > 15.0).sum()),
        "spread": float(np.std(pred - obs)),
    }
    path = Path(tmpdir) / "calibration.pt"
    torch.save({"model": model.state_dict(), "calibration": calib, "grid": frames.shape[-2:]}, path)
    return str(path)


def save_export_bundle(tmpdir):
    args, frames = _setup(tmpdir)
    model = build_model(args)
    stats = reflectivity_stats(frames)
    meta = {
        "zr": {"a": ZR_A, "b": ZR_B},
        "dbz_range": (DBZ_MIN, DBZ_MAX),
        "in_frames": args.in_frames,
        "out_frames": args.out_frames,
        "step_minutes": args.step_minutes,
        "hidden": list(args.hidden),
        "grid": tuple(frames.shape[-2:]),
        "norm_mean": stats["mean"],
        "norm_std": stats["std"].item(),
        "thresholds": [float(t) for t in np.asarray(args.thresholds)],
        "torch": torch.__version__.split("+")[0],
        "numpy": np.__version__,
        "created": time.time(),
        "data_root": str(args.data_root),
    }
    path = Path(tmpdir) / "export.pt"
    torch.save({"state_dict": model.state_dict(), "meta": meta}, path)
    return str(path)
