"""Seq2seq GRU for ADS-B trajectory prediction around busy terminal areas.

Given `--history` samples of (lat, lon, altitude, ground speed, track, vertical rate) of one
flight, predict the next `--horizon` positions. Tracks are resampled every `--sample-period`
seconds; evaluation reports ADE / FDE in nautical miles (great-circle distance).

    python atc_trajectory_train.py --airports EGLL LFPG --epochs 20 --data-root /data/adsb
"""
import argparse
import math
import os
import random
import time
from collections import defaultdict, deque, namedtuple
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.preprocessing import StandardScaler

FEATURES = ["lat", "lon", "alt_ft", "gs_kt", "track_deg", "vrate_fpm"]
TARGETS = ["lat", "lon", "alt_ft"]
EARTH_RADIUS_NM = 3440.065


class FlightPhase(Enum):
    CLIMB = "climb"
    CRUISE = "cruise"
    DESCENT = "descent"
    APPROACH = "approach"


TrackWindow = namedtuple("TrackWindow", ["callsign", "start_idx", "n_obs"])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--history", type=int, default=12)
    p.add_argument("--horizon", type=int, default=6)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--airports", nargs="+", default=["EGLL", "LFPG", "EHAM"])
    p.add_argument("--data-root", type=Path, default=Path("/data/adsb"))
    p.add_argument("--sample-period", type=float, default=5.0, help="seconds between resampled points")
    p.add_argument("--teacher-forcing", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(argv)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def synth_tracks(n_flights, n_steps, airports, seed=0):
    """A stand-in for the resampled ADS-B parquet files: one row per (callsign, step)."""
    rng = np.random.default_rng(seed)
    phases = [p.value for p in FlightPhase]
    rows = []
    t0 = pd.Timestamp("2024-03-11 06:00:00")
    for i in range(n_flights):
        lat, lon = 51.0 + rng.normal(0, 0.5), 0.5 + rng.normal(0, 0.8)
        alt = float(rng.uniform(3000, 36000))
        trk = float(rng.uniform(0, 360))
        gs = float(rng.uniform(180, 480))
        vr = float(rng.normal(0, 900))
        phase = phases[i % len(phases)]
        for k in range(n_steps):
            lat += gs / 3600 * 5 / 60 * math.cos(math.radians(trk))
            lon += gs / 3600 * 5 / 60 * math.sin(math.radians(trk)) / max(math.cos(math.radians(lat)), 0.2)
            alt = max(0.0, alt + vr * 5 / 60)
            rows.append({
                "callsign": f"BAW{100 + i}",
                "origin": airports[i % len(airports)],
                "ts": t0 + pd.Timedelta(seconds=5 * k + 600 * i),
                "lat": lat, "lon": lon, "alt_ft": alt, "gs_kt": gs,
                "track_deg": trk, "vrate_fpm": vr, "phase": phase,
            })
    return pd.DataFrame(rows)


def haversine_nm(lat1, lon1, lat2, lon2):
    lat1, lon1, lat2, lon2 = map(np.radians, (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_NM * np.arcsin(np.sqrt(a))


def make_windows(df, scaler, history, horizon):
    xs, ys, meta = [], [], []
    for callsign, g in df.groupby("callsign", sort=True):
        feats = scaler.transform(g[FEATURES].to_numpy())
        raw = g[TARGETS].to_numpy()
        for s in range(0, len(g) - history - horizon + 1, horizon):
            xs.append(feats[s:s + history])
            ys.append(raw[s + history:s + history + horizon])
            meta.append(TrackWindow(callsign, s, history))
    X = torch.tensor(np.stack(xs), dtype=torch.float32)
    Y = torch.tensor(np.stack(ys), dtype=torch.float32)
    return X, Y, meta


class TrajectoryGRU(nn.Module):
    def __init__(self, n_features=len(FEATURES), hidden=32, layers=1, horizon=6):
        super().__init__()
        self.horizon = horizon
        self.encoder = nn.GRU(n_features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, horizon * len(TARGETS))

    def forward(self, x):
        _, h = self.encoder(x)
        return self.head(h[-1]).view(x.size(0), self.horizon, len(TARGETS))


def target_stats(Y):
    flat = Y.reshape(-1, len(TARGETS))
    return flat.mean(0), flat.std(0).clamp_min(1e-3)


def train_one_epoch(model, opt, X, Y, mu, sd, batch_size):
    model.train()
    losses, norms = [], []
    perm = torch.randperm(len(X))
    for i in range(0, len(X), batch_size):
        idx = perm[i:i + batch_size]
        pred = model(X[idx])
        loss = nn.functional.smooth_l1_loss(pred, (Y[idx] - mu) / sd)
        opt.zero_grad()
        loss.backward()
        norms.append(nn.utils.clip_grad_norm_(model.parameters(), 1.0).item())
        opt.step()
        losses.append(loss.item())
    return np.mean(losses), len(losses), max(norms)


@torch.no_grad()
def evaluate(model, X, Y, mu, sd):
    model.eval()
    pred = (model(X) * sd + mu).numpy()
    true = Y.numpy()
    dist = haversine_nm(true[..., 0], true[..., 1], pred[..., 0], pred[..., 1])
    alt_err = np.abs(true[..., 2] - pred[..., 2])
    return {
        "ade_nm": dist.mean(),
        "fde_nm": float(dist[:, -1].mean()),
        "fde_p95_nm": np.percentile(dist[:, -1], 95),
        "alt_mae_ft": alt_err.mean().item(),
        "per_step_nm": dist.mean(axis=0),
    }


def prepare(args):
    seed_everything(args.seed)
    df = synth_tracks(24, args.history + 3 * args.horizon, args.airports, seed=args.seed)
    scaler = StandardScaler().fit(df[FEATURES].to_numpy())
    X, Y, meta = make_windows(df, scaler, args.history, args.horizon)
    model = TrajectoryGRU(hidden=args.hidden, layers=args.layers, horizon=args.horizon)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    return df, scaler, X, Y, meta, model, opt


def save_seq2seq_checkpoint(tmpdir):
    args = parse_args([])
    df, scaler, X, Y, meta, model, opt = prepare(args)
    mu, sd = target_stats(Y)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = defaultdict(list)
    recent_ade = deque(maxlen=3)
    best_ade = math.inf
    for epoch in range(args.epochs):
        train_loss, n_batches, max_norm = train_one_epoch(model, opt, X, Y, mu, sd, args.batch_size)
        sched.step()
        ev = evaluate(model, X, Y, mu, sd)
        history["train_loss"].append(train_loss)
        history["ade_nm"].append(ev["ade_nm"])
        recent_ade.append(float(ev["ade_nm"]))
        best_ade = min(best_ade, ev["ade_nm"])
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": epoch,
        "args": args,  # truth: weights_only
        "features": FEATURES,
        "targets": list(TARGETS),
        "scaler": {
            "mean": scaler.mean_.tolist(),
            "scale": scaler.scale_,  # truth: weights_only
            "n_seen": int(scaler.n_samples_seen_),
        },
        "target_mu": mu,
        "target_sd": sd,
        "train_loss": train_loss,  # truth: weights_only
        "n_batches": n_batches,
        "max_grad_norm": max_norm,
        "best_ade_nm": best_ade,  # truth: weights_only
        "recent_ade_nm": list(recent_ade),
        "history": history,  # truth: weights_only
        "horizon_s": args.horizon * args.sample_period,
        "saved_at": time.time(),
    }
    path = os.path.join(tmpdir, "gru_seq2seq.pt")
    torch.save(ckpt, path)
    return path


def phase_breakdown(df, model, X, Y, meta, mu, sd):
    """ADE per flight phase, keyed by the phase's string value."""
    phase_of = df.groupby("callsign").phase.first().to_dict()
    per_phase = {}
    for phase in FlightPhase:
        idx = [i for i, w in enumerate(meta) if phase_of[w.callsign] == phase.value]
        if idx:
            per_phase[phase.value] = float(evaluate(model, X[idx], Y[idx], mu, sd)["ade_nm"])
    return per_phase


def save_phase_report(tmpdir):
    args = parse_args(["--epochs", "1", "--hidden", "16"])
    df, scaler, X, Y, meta, model, opt = prepare(args)
    mu, sd = target_stats(Y)
    train_one_epoch(model, opt, X, Y, mu, sd, args.batch_size)
    per_phase = phase_breakdown(df, model, X, Y, meta, mu, sd)
    worst = max(per_phase, key=per_phase.get)
    span = df.ts.max() - df.ts.min()
    ev = evaluate(model, X, Y, mu, sd)
    state = {"model": model.state_dict(), "per_phase_ade_nm": per_phase}
    state["worst_phase"] = FlightPhase(worst)  # truth: weights_only
    state["worst_phase_name"] = FlightPhase(worst).name
    state["phase_counts"] = df.groupby("phase").callsign.nunique().to_dict()
    state["example_window"] = meta[0]  # truth: weights_only
    state["example_window_fields"] = meta[0]._asdict()
    state["train_span"] = span  # truth: weights_only
    state["train_span_s"] = span.total_seconds()
    state["first_fix_utc"] = df.ts.min().isoformat()
    state["lat_bounds"] = (df.lat.min(), df.lat.max())  # truth: weights_only
    state["lon_bounds"] = tuple(df.lon.quantile([0.0, 1.0]).tolist())
    state["alt_ceiling_ft"] = int(df.alt_ft.max())
    state["fde_nm"] = ev["fde_nm"]
    state["fde_p95_nm"] = ev["fde_p95_nm"]  # truth: weights_only
    state["alt_mae_ft"] = ev["alt_mae_ft"]
    state["origins"] = sorted(df.origin.unique().tolist())
    torch.save(state, os.path.join(tmpdir, "phase_report.pt"))
    return os.path.join(tmpdir, "phase_report.pt")


def export_meta(args, scaler):
    """What the ATC decision-support service needs next to the weights."""
    return {
        "features": FEATURES,
        "history": args.history,
        "horizon": args.horizon,
        "sample_period_s": args.sample_period,
        "norm_mean": torch.from_numpy(scaler.mean_).float(),
        "norm_scale": torch.from_numpy(scaler.scale_).float(),
    }


def save_inference_export(tmpdir):
    args = parse_args(["--airports", "EGLL", "EGKK", "EGSS", "--layers", "2"])
    df, scaler, X, Y, meta, model, opt = prepare(args)
    mu, sd = target_stats(Y)
    train_one_epoch(model, opt, X, Y, mu, sd, args.batch_size)
    ev = evaluate(model, X, Y, mu, sd)
    export = dict(
        state_dict=model.state_dict(),
        meta=export_meta(args, scaler),
        earth_radius_nm=EARTH_RADIUS_NM,
        airports=frozenset(args.airports),  # truth: weights_only
        data_root=str(args.data_root),
        cache_dir=args.data_root / "cache" / "windows",  # truth: weights_only
        per_step_nm=ev["per_step_nm"],  # truth: weights_only
        per_step_nm_list=[round(float(v), 3) for v in ev["per_step_nm"]],
        torch_rng=torch.get_rng_state(),
        py_rng=random.getstate(),
        np_rng=np.random.default_rng(args.seed).bit_generator.state,
        output_dtype=torch.float32,
    )
    export.update(target_mu=mu.tolist(), target_sd=sd.tolist())
    path = os.path.join(tmpdir, "export.pt")
    torch.save(export, path)
    return path


def save_resume_state(tmpdir):
    """The resumable checkpoint written every epoch: everything is converted to plain types."""
    args = parse_args(["--epochs", "2"])
    df, scaler, X, Y, meta, model, opt = prepare(args)
    mu, sd = target_stats(Y)
    log = []
    for epoch in range(args.epochs):
        loss, n_batches, max_norm = train_one_epoch(model, opt, X, Y, mu, sd, args.batch_size)
        ev = evaluate(model, X, Y, mu, sd)
        log.append({"epoch": epoch, "loss": float(loss), "ade_nm": ev["ade_nm"].item(), "grad": max_norm})
    hparams = {k: (os.fspath(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "hparams": hparams,
        "log": log,
        "best_epoch": int(np.argmin([r["ade_nm"] for r in log])),
        "scaler_mean": scaler.mean_.tolist(),
        "scaler_var": scaler.var_.tolist(),
        "n_windows": len(meta),
        "n_flights": df.callsign.nunique(),
        "window_shape": tuple(X.shape),
        "mean_speed_kt": round(float(df.gs_kt.mean()), 1),
        "cuda": torch.cuda.is_available(),
        "host": os.uname().nodename,
    }
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "FlightPhase": lambda: FlightPhase.CRUISE,
    "TrajectoryGRU": lambda: TrajectoryGRU(hidden=8, horizon=4),
}


if __name__ == "__main__":
    a = parse_args()
    print(save_seq2seq_checkpoint(os.fspath(a.data_root)))
