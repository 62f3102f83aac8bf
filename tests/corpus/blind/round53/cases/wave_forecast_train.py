"""Significant wave height (Hs) forecasting from moored-buoy records.

Script-style training code: argparse options, pandas resampling of hourly buoy rows (NDBC
stdmet columns), Welch spectra of the heave record for spectral sea-state parameters, and a
small LSTM that maps the last `history_hours` of observations to Hs at several lead times.
Each `save_*` function runs one stage of the pipeline on synthetic buoys and writes the
checkpoint that stage writes.
"""
import argparse
import collections
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy import signal
from sklearn.metrics import mean_absolute_error, mean_squared_error
from sklearn.preprocessing import StandardScaler

FEATURES = ["WVHT", "DPD", "APD", "MWD", "WSPD", "PRES"]
TARGET = "WVHT"
STATIONS = ("46042", "46026", "46012")
SECTORS = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"]


def build_parser():
    p = argparse.ArgumentParser(description="Train an Hs forecaster on buoy records")
    p.add_argument("--stations", nargs="+", default=list(STATIONS))
    p.add_argument("--history-hours", type=int, default=24)
    p.add_argument("--lead-hours", type=int, nargs="+", default=[3, 6, 12])
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--data-root", type=Path, default=Path("data/ndbc/stdmet"))
    p.add_argument("--fs", type=float, default=1.28, help="heave sampling rate (Hz)")
    p.add_argument("--seed", type=int, default=7)
    return p


def synthetic_buoy_frame(station, days=12, seed=0):
    """Hourly stdmet-like rows for one buoy."""
    rng = np.random.default_rng(seed + int(station))
    idx = pd.date_range("2023-11-01", periods=24 * days, freq="h", tz="UTC")
    n = len(idx)
    storm = 2.5 * np.exp(-((np.arange(n) - n * 0.6) ** 2) / (2 * 30.0 ** 2))
    hs = 1.2 + 0.4 * np.sin(2 * np.pi * np.arange(n) / 36.0) + storm + rng.normal(0, 0.1, n)
    frame = pd.DataFrame({
        "WVHT": np.clip(hs, 0.2, None),
        "DPD": 9 + 4 * rng.random(n) + storm,
        "APD": 6 + 2 * rng.random(n),
        "MWD": (285 + 40 * rng.standard_normal(n)) % 360,
        "WSPD": 6 + 3 * rng.random(n) + 2 * storm,
        "PRES": 1015 - 6 * storm + rng.normal(0, 1, n),
    }, index=idx)
    frame.loc[frame.sample(frac=0.02, random_state=seed).index, "WVHT"] = np.nan  # buoy dropouts
    return frame


def load_stations(args):
    frames = {}
    for i, station in enumerate(args.stations):
        raw = synthetic_buoy_frame(station, seed=args.seed + i)
        frames[station] = raw.interpolate(limit=3).dropna()
    return frames


def heave_record(hs, tp, fs, minutes=20, seed=0):
    """Surface elevation from a single-peaked spectrum (random-phase sum)."""
    rng = np.random.default_rng(seed)
    t = np.arange(0, minutes * 60, 1.0 / fs)
    freqs = np.linspace(0.04, 0.4, 80)
    fp = 1.0 / tp
    spec = (hs ** 2 / 16) * np.exp(-1.25 * (fp / freqs) ** 4) / freqs ** 5
    spec /= np.trapezoid(spec, freqs) / (hs ** 2 / 16)
    amps = np.sqrt(2 * spec * (freqs[1] - freqs[0]))
    phases = rng.uniform(0, 2 * np.pi, freqs.size)
    return (amps[:, None] * np.cos(2 * np.pi * freqs[:, None] * t[None, :] + phases[:, None])).sum(0)


def spectral_moments(eta, fs):
    f, S = signal.welch(eta, fs=fs, nperseg=256)
    band = (f >= 0.03) & (f <= 0.5)
    f, S = f[band], S[band]
    m0 = np.trapezoid(S, f)
    m1 = np.trapezoid(S * f, f)
    m2 = np.trapezoid(S * f ** 2, f)
    return {"f": f, "S": S, "hm0": 4 * math.sqrt(m0), "tp": 1.0 / f[np.argmax(S)],
            "tm01": float(m0 / m1), "tm02": math.sqrt(m0 / m2)}


def circular_mean_deg(deg):
    rad = np.deg2rad(deg)
    return np.degrees(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean())) % 360


def make_windows(values, target, history, leads):
    X, Y = [], []
    last = len(values) - max(leads)
    for start in range(history, last):
        X.append(values[start - history:start])
        Y.append([target[start + lead - 1] for lead in leads])
    return np.asarray(X, dtype=np.float32), np.asarray(Y, dtype=np.float32)


class WaveLSTM(nn.Module):
    def __init__(self, n_features=len(FEATURES), hidden=16, n_leads=3):
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_leads)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def prepare(args):
    frames = load_stations(args)
    scaler = StandardScaler().fit(pd.concat(frames.values())[FEATURES].to_numpy())
    xs, ys = [], []
    for frame in frames.values():
        X, Y = make_windows(scaler.transform(frame[FEATURES].to_numpy()), frame[TARGET].to_numpy(),
                            args.history_hours, args.lead_hours)
        xs.append(X)
        ys.append(Y)
    X, Y = np.concatenate(xs), np.concatenate(ys)
    cut = int(0.8 * len(X))
    return frames, scaler, (X[:cut], Y[:cut]), (X[cut:], Y[cut:])


def train(args, train_set, val_set):
    torch.manual_seed(args.seed)
    model = WaveLSTM(hidden=args.hidden, n_leads=len(args.lead_hours))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    Xtr, Ytr = map(torch.from_numpy, train_set)
    Xva, Yva = map(torch.from_numpy, val_set)
    history = collections.defaultdict(list)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(Xtr))
        for i in range(0, len(Xtr), args.batch_size):
            b = perm[i:i + args.batch_size]
            loss = nn.functional.smooth_l1_loss(model(Xtr[b]), Ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            pred = model(Xva).numpy()
        history["train_loss"].append(loss.item())
        history["val_rmse"].append(math.sqrt(mean_squared_error(val_set[1], pred)))
        history["val_mae"].append(mean_absolute_error(val_set[1], pred))
    best_epoch = np.argmin(history["val_rmse"])
    return model, opt, sched, history, best_epoch


def persistence_skill(val_set, pred):
    """Skill score against persistence (Hs at issue time held constant)."""
    X, Y = val_set
    persist = np.repeat(X[:, -1, :1], Y.shape[1], axis=1)
    rmse_model = np.sqrt(((pred - Y) ** 2).mean(0))
    rmse_persist = np.sqrt(((persist - Y) ** 2).mean(0))
    return 1.0 - rmse_model / rmse_persist


def save_hs_forecaster(tmpdir):
    args = build_parser().parse_args([])
    frames, scaler, train_set, val_set = prepare(args)
    model, opt, sched, history, best_epoch = train(args, train_set, val_set)
    hparams = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": args.epochs,
        "args": args,  # truth: weights_only
        "hparams": hparams,
        "features": FEATURES,
        "stations": list(frames),
        "scaler_mean": scaler.mean_,  # truth: weights_only
        "scaler_scale": scaler.scale_.tolist(),
        "n_windows": len(train_set[0]),
        "best_epoch": best_epoch,  # truth: weights_only
        "best_val_rmse": min(history["val_rmse"]),
        "val_mae": history["val_mae"][-1],
        "data_root": args.data_root,  # truth: weights_only
        "saved_at": time.time(),
    }
    path = os.path.join(tmpdir, "hs_lstm.pt")
    torch.save(ckpt, path)
    return path


def save_spectral_climatology(tmpdir):
    args = build_parser().parse_args(["--stations", "46042", "46026"])
    frames = load_stations(args)
    station_stats = {}
    for k, (station, frame) in enumerate(frames.items()):
        eta = heave_record(frame[TARGET].median(), frame["DPD"].median(), args.fs, seed=k)
        mom = spectral_moments(eta, args.fs)
        station_stats[station] = {
            "hm0": mom["hm0"],
            "tp": mom["tp"],  # truth: weights_only
            "tm01": mom["tm01"],
            "tm02": mom["tm02"],
            "n_hours": int(frame.shape[0]),
        }
    last = spectral_moments(heave_record(1.5, 10.0, args.fs), args.fs)
    ckpt = {
        "station_stats": station_stats,
        "freq_bins": last["f"],  # truth: weights_only
        "mean_psd": torch.from_numpy(last["S"]).float(),
        "fs_hz": args.fs,
        "band_hz": (0.03, 0.5),
        "lead_steps": range(1, 25),  # truth: weights_only
        "jonswap_gamma": 3.3,
    }
    path = os.path.join(tmpdir, "spectral_climatology.pt")
    torch.save(ckpt, path)
    return path


def direction_summary(frame):
    sector = np.digitize((frame["MWD"].to_numpy() + 22.5) % 360, np.arange(45, 360, 45))
    return {
        "mean_dir": circular_mean_deg(frame["MWD"].to_numpy()),
        "sector_hist": collections.Counter(sector),
        "sector_share": pd.Series(sector).map(dict(enumerate(SECTORS))).value_counts(normalize=True).to_dict(),
        "monthly_hs": frame.groupby(frame.index.month)[TARGET].mean().to_dict(),
    }


def save_direction_model(tmpdir):
    args = build_parser().parse_args(["--stations", "46012"])
    frame = load_stations(args)["46012"]
    summary = direction_summary(frame)
    ckpt = {"station": "46012", "sectors": SECTORS}
    ckpt["mean_wave_dir"] = summary["mean_dir"]  # truth: weights_only
    ckpt["sector_counts"] = summary["sector_hist"]  # truth: weights_only
    ckpt["sector_share"] = summary["sector_share"]
    ckpt["monthly_mean_hs"] = summary["monthly_hs"]
    ckpt["wind_dir_offset"] = math.degrees(math.atan2(0.2, 1.0))
    ckpt["record_start"] = frame.index[0].isoformat()
    ckpt["peak_wspd"] = float(frame["WSPD"].max())
    path = os.path.join(tmpdir, "direction.pt")
    torch.save(ckpt, path)
    return path


def run_ensemble(args, train_set, val_set, n_members=3):
    members, preds = [], []
    for m in range(n_members):
        args.seed = 100 + m
        model, *_ = train(args, train_set, val_set)
        with torch.no_grad():
            preds.append(model(torch.from_numpy(val_set[0])).numpy())
        members.append(model.state_dict())
    preds = np.stack(preds)
    return members, preds


def save_ensemble_forecast(tmpdir):
    args = build_parser().parse_args(["--epochs", "1"])
    frames, scaler, train_set, val_set = prepare(args)
    members, preds = run_ensemble(args, train_set, val_set)
    issue_time = frames[args.stations[0]].index[-1]
    mean_pred = preds.mean(0)
    skill = persistence_skill(val_set, mean_pred)
    ckpt = dict(
        members=members,
        member_seeds=[100 + m for m in range(len(members))],
        spread=preds.std(0).mean(),  # truth: weights_only
        skill_by_lead={f"+{h}h": float(s) for h, s in zip(args.lead_hours, skill)},
        issued_at=issue_time,  # truth: weights_only
        valid_times=[(issue_time + pd.Timedelta(hours=h)).isoformat() for h in args.lead_hours],
        horizon=pd.Timedelta(hours=max(args.lead_hours)),  # truth: weights_only
        horizon_s=pd.Timedelta(hours=max(args.lead_hours)).total_seconds(),
        ens_rmse=math.sqrt(mean_squared_error(val_set[1], mean_pred)),
    )
    path = os.path.join(tmpdir, "ensemble.pt")
    torch.save(ckpt, path)
    return path


def save_storm_finetune(tmpdir):
    """Fine-tune on the storm window only; every value is converted before saving."""
    args = build_parser().parse_args(["--epochs", "2", "--lr", "1e-3"])
    frames, scaler, train_set, val_set = prepare(args)
    model, opt, sched, history, best_epoch = train(args, train_set, val_set)
    storm = {s: f[f[TARGET] > f[TARGET].quantile(0.9)] for s, f in frames.items()}
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "best_epoch": int(best_epoch),
        "history": dict(history),
        "storm_hours": {s: len(f) for s, f in storm.items()},
        "storm_peak_hs": {s: round(float(f[TARGET].max()), 2) for s, f in storm.items()},
        "storm_threshold": float(frames[args.stations[0]][TARGET].quantile(0.9)),
        "scaler": {"mean": scaler.mean_.tolist(), "var": scaler.var_.tolist(),
                   "n_seen": int(scaler.n_samples_seen_)},
        "lead_hours": tuple(args.lead_hours),
        "data_root": os.fspath(args.data_root),
        "torch": str(torch.__version__),
        "rng": torch.get_rng_state(),
    }
    path = os.path.join(tmpdir, "storm_ft.pt")
    torch.save(ckpt, path)
    return path


def save_station_registry(tmpdir):
    """Per-station QC bookkeeping, saved as the registry object itself."""
    args = build_parser().parse_args([])
    registry = collections.defaultdict(dict)
    for station, frame in load_stations(args).items():
        registry[station]["n_valid"] = int(frame[TARGET].notna().sum())
        registry[station]["hs_p99"] = float(np.percentile(frame[TARGET], 99))
        registry[station]["first"] = frame.index[0].isoformat()
    path = os.path.join(tmpdir, "station_registry.pt")
    torch.save(registry, path)  # truth: weights_only
    return path


if __name__ == "__main__":
    cli = build_parser().parse_args()
    out = cli.data_root.parent / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)
    print(save_hs_forecaster(str(out)))
