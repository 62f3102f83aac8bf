"""Intra-hour PV power nowcasting from site telemetry.

train.py-style script: 15-minute telemetry per site (GHI, air temperature, cloud cover,
AC power), a clear-sky model to normalise irradiance, lagged features, and a small GRU that
predicts the next `horizon` steps of the clear-sky index of power. Each `save_*` function is
one of the checkpoint writers the script grew over time.
"""
import argparse
import hashlib
import math
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.metrics import mean_absolute_error, root_mean_squared_error
from sklearn.preprocessing import StandardScaler

SITES = {
    "freiburg_roof": (47.99, 7.84, 42.0),
    "leipzig_park": (51.34, 12.37, 750.0),
    "kassel_lab": (51.31, 9.48, 9.6),
}
FEATURES = ["csi_lag1", "csi_lag2", "csi_lag4", "cloud_cover", "temp_air", "cos_zenith", "hour_sin", "hour_cos"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="train a GRU PV nowcaster")
    p.add_argument("--data-dir", type=Path, default=Path("data/telemetry"))
    p.add_argument("--out-dir", type=Path, default=Path("runs/pv"))
    p.add_argument("--sites", nargs="+", default=list(SITES))
    p.add_argument("--tz", default="Europe/Berlin")
    p.add_argument("--lookback", type=int, default=16)
    p.add_argument("--horizon", type=int, default=4)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--days", type=int, default=6)
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(argv if argv is not None else [])


def solar_cos_zenith(index, lat, lon):
    """Cosine of the solar zenith angle (Spencer declination, no refraction)."""
    utc = index.tz_convert("UTC")
    doy = utc.dayofyear.to_numpy()
    hours = utc.hour.to_numpy() + utc.minute.to_numpy() / 60.0
    gamma = 2 * np.pi * (doy - 1) / 365.0
    decl = 0.006918 - 0.399912 * np.cos(gamma) + 0.070257 * np.sin(gamma)
    hour_angle = np.deg2rad(15.0 * (hours - 12.0) + lon)
    lat_r = np.deg2rad(lat)
    cz = np.sin(lat_r) * np.sin(decl) + np.cos(lat_r) * np.cos(decl) * np.cos(hour_angle)
    return np.clip(cz, 0.0, 1.0)


def synth_telemetry(site, days, tz, seed):
    lat, lon, capacity_kw = SITES[site]
    rng = np.random.default_rng(seed)
    index = pd.date_range("2023-06-01", periods=days * 96, freq="15min", tz=tz)
    cz = solar_cos_zenith(index, lat, lon)
    clear_ghi = 1098.0 * cz * np.exp(-0.059 / np.maximum(cz, 0.05))
    cloud = np.clip(pd.Series(rng.normal(0.4, 0.25, len(index))).rolling(8, min_periods=1).mean().to_numpy(), 0, 1)
    ghi = clear_ghi * (1.0 - 0.75 * cloud ** 3.4)
    temp = 18 + 8 * cz + rng.normal(0, 0.5, len(index))
    pv = capacity_kw * ghi / 1000.0 * (1 - 0.004 * (temp - 25)) * 0.92
    frame = pd.DataFrame(
        {"ghi": ghi, "clear_ghi": clear_ghi, "cloud_cover": cloud, "temp_air": temp, "pv_kw": pv, "cos_zenith": cz},
        index=index,
    )
    frame.loc[frame.sample(frac=0.01, random_state=seed).index, "pv_kw"] = np.nan  # logger dropouts
    return frame


def make_features(frame, capacity_kw):
    frame = frame.copy()
    frame["pv_kw"] = frame["pv_kw"].interpolate(limit=2).fillna(0.0)
    expected = capacity_kw * frame["clear_ghi"] / 1000.0
    frame["csi"] = (frame["pv_kw"] / expected.where(expected > 0.05)).clip(0, 1.5).fillna(0.0)
    for lag in (1, 2, 4):
        frame[f"csi_lag{lag}"] = frame["csi"].shift(lag)
    hour = frame.index.hour + frame.index.minute / 60.0
    frame["hour_sin"] = np.sin(2 * np.pi * hour / 24)
    frame["hour_cos"] = np.cos(2 * np.pi * hour / 24)
    return frame.dropna()


def windows(values, target, lookback, horizon):
    xs, ys = [], []
    for t in range(lookback, len(values) - horizon):
        xs.append(values[t - lookback:t])
        ys.append(target[t:t + horizon])
    return np.stack(xs).astype("float32"), np.stack(ys).astype("float32")


class PVNowcaster(nn.Module):
    def __init__(self, n_features=len(FEATURES), hidden=32, horizon=4):
        super().__init__()
        self.gru = nn.GRU(n_features, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, horizon))

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(h[-1])


def prepare_site(args, site):
    frame = synth_telemetry(site, args.days, args.tz, args.seed)
    feats = make_features(frame, SITES[site][2])
    split = int(len(feats) * 0.8)
    scaler = StandardScaler().fit(feats[FEATURES].iloc[:split])
    x = scaler.transform(feats[FEATURES])
    xs, ys = windows(x, feats["csi"].to_numpy(), args.lookback, args.horizon)
    cut = split - args.lookback
    return frame, feats, scaler, (xs[:cut], ys[:cut]), (xs[cut:], ys[cut:])


def fit(model, train, args):
    torch.manual_seed(args.seed)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    xs, ys = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    losses = []
    for _ in range(args.epochs):
        perm = torch.randperm(len(xs))
        epoch_loss = []
        for i in range(0, len(xs), 64):
            idx = perm[i:i + 64]
            loss = nn.functional.mse_loss(model(xs[idx]), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            epoch_loss.append(loss.item())
        sched.step()
        losses.append(sum(epoch_loss) / len(epoch_loss))
    return opt, sched, losses


@torch.no_grad()
def evaluate(model, valid):
    pred = model(torch.from_numpy(valid[0])).numpy()
    truth = valid[1]
    persistence = np.repeat(valid[0][:, -1:, 0], truth.shape[1], axis=1)
    rmse = root_mean_squared_error(truth, pred)
    mae = mean_absolute_error(truth, pred)
    rmse_persist = np.sqrt(np.mean((truth - persistence) ** 2))
    return rmse, mae, 1.0 - rmse / rmse_persist


def run(site, argv=None):
    args = parse_args(argv)
    frame, feats, scaler, train, valid = prepare_site(args, site)
    model = PVNowcaster(len(FEATURES), args.hidden, args.horizon)
    opt, sched, losses = fit(model, train, args)
    return args, frame, feats, scaler, model, opt, sched, losses, evaluate(model, valid)


def save_site_checkpoint(tmpdir):
    args, frame, feats, scaler, model, opt, sched, losses, (rmse, mae, skill) = run("freiburg_roof")
    out = Path(tmpdir) / "freiburg_roof.pt"
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "config": config,
        "data_dir": args.data_dir,  # truth: weights_only
        "features": FEATURES,
        "feature_mean": scaler.mean_,  # truth: weights_only
        "feature_scale": torch.from_numpy(scaler.scale_).float(),
        "n_features": scaler.n_features_in_,
        "train_losses": losses,
        "val_rmse": rmse,
        "val_mae": mae,
        "last_timestamp": feats.index[-1],  # truth: weights_only
        "first_timestamp": feats.index[0].isoformat(),
        "last_window": feats.index[-args.lookback:].to_pydatetime().tolist(),  # truth: weights_only
        "freq": frame.index.freqstr,
    }
    ckpt["peak_kw"] = frame["pv_kw"].max()  # truth: weights_only
    ckpt["capacity_kw"] = float(SITES["freiburg_roof"][2])
    torch.save(ckpt, out)
    return str(out)


def save_fleet_checkpoint(tmpdir):
    args = parse_args(["--epochs", "1", "--days", "4"])
    per_site, states = {}, {}
    for site in args.sites:
        _, frame, feats, scaler, model, _, _, _, (rmse, mae, skill) = run(site, ["--epochs", "1", "--days", "4"])
        states[site] = model.state_dict()
        per_site[site] = {
            "rmse": rmse,
            "mae": mae,
            "skill_vs_persistence": skill,  # truth: weights_only
            "night_fraction": float((feats["cos_zenith"] <= 0).mean()),
            "n_missing": int(frame["pv_kw"].isna().sum()),
        }
    tz = ZoneInfo(args.tz)
    fleet = {
        "states": states,
        "per_site": per_site,
        "tz": tz,  # truth: weights_only
        "tz_name": str(tz),
        "horizon_steps": range(1, args.horizon + 1),  # truth: weights_only
        "lead_minutes": [15 * h for h in range(1, args.horizon + 1)],
        "sites": args.sites,
        "written_at": time.time(),
    }
    out = Path(tmpdir) / "fleet.pt"
    torch.save(fleet, out)
    return str(out)


def save_preprocessing_bundle(tmpdir):
    args = parse_args([])
    frame = synth_telemetry("leipzig_park", args.days, args.tz, args.seed)
    feats = make_features(frame, SITES["leipzig_park"][2])
    scaler = StandardScaler().fit(feats[FEATURES])
    step = feats.index.to_series().diff().median()
    stats = feats[FEATURES].describe().to_dict()
    bundle = dict(
        scaler=scaler,  # truth: weights_only
        feature_stats=stats,
        correlations=feats[FEATURES + ["csi"]].corr()["csi"].round(4).to_dict(),
        sample_interval=step,  # truth: weights_only
        sample_seconds=step.total_seconds(),
        dtypes={c: str(t) for c, t in feats.dtypes.items()},
        csi_p99=float(feats["csi"].quantile(0.99)),
        night_steps=(feats["cos_zenith"] <= 0).sum(),  # truth: weights_only
        rows=len(feats),
    )
    out = Path(tmpdir) / "preproc.pt"
    torch.save(bundle, out)
    return str(out)


def save_full_model(tmpdir):
    args, *_rest = run("kassel_lab", ["--epochs", "1", "--days", "3"])
    model = _rest[3]
    model.eval()
    out = Path(tmpdir) / "kassel_full.pt"
    torch.save(
        model,  # truth: weights_only
        out,
    )
    return str(out)


def _fingerprint(frame):
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()).digest()


def save_export_weights(tmpdir):
    """What we ship to the edge box: weights plus plain metadata only."""
    args, frame, feats, scaler, model, opt, sched, losses, (rmse, mae, skill) = run("leipzig_park")
    peak = frame["pv_kw"].max()
    hourly = feats.groupby(feats.index.hour)["csi"].mean()
    export = {
        "weights": {k: v.half() for k, v in model.state_dict().items()},
        "scaler_mean": scaler.mean_.tolist(),
        "scaler_scale": torch.tensor(scaler.scale_, dtype=torch.float32),
        "peak_kw": float(peak),
        "peak_hour": int(hourly.idxmax()),
        "hourly_csi": hourly.round(3).to_dict(),
        "window_labels": feats.index[-args.lookback:].strftime("%H:%M").tolist(),
        "skill": float(skill),
        "rmse": round(rmse, 5),
        "persistence_is_worse": bool(skill > 0),
        "tz": str(feats.index.tz),
        "horizon_minutes": list(range(15, 15 * args.horizon + 1, 15)),
        "fingerprint": _fingerprint(frame),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": str(torch.__version__),
        "rng": torch.get_rng_state(),
        "last_lr": sched.get_last_lr()[0],
        "valid_until": (feats.index[-1] + pd.Timedelta(days=30)).isoformat(),
        "mean_train_loss": math.fsum(losses) / len(losses),
    }
    out = Path(tmpdir) / "export.pt"
    torch.save(export, out)
    return str(out)
