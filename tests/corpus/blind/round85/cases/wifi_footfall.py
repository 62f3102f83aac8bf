"""Retail footfall forecasting from in-store Wi-Fi probe logs.

Pipeline:
  1. probe requests -> keep devices inside the store (RSSI gate), drop staff / always-on devices
  2. unique devices per hour -> calibrated to door-counter footfall with a per-store linear fit
  3. next-24h forecast from the last week with a small MLP on lag windows + calendar features
  4. rolling-origin backtest against seasonal-naive and ridge-AR baselines (WAPE / sMAPE / MASE)
"""
import hashlib
import os
from collections import defaultdict
from datetime import date

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.linear_model import LinearRegression, Ridge

torch.set_num_threads(1)

STORES = ("S01", "S02", "S03")
RSSI_INSIDE = -72  # dBm; weaker probes are passers-by on the street
OPEN_HOUR, CLOSE_HOUR = 8, 21
SEASON = 24 * 7
HOLIDAYS = {date(2024, 3, 29), date(2024, 4, 1)}  # Good Friday, Easter Monday
DEFAULTS = dict(lookback=48, horizon=24, hidden=64, epochs=3, lr=2e-3, batch_size=64, weight_decay=1e-4, seed=0)


def make_config(**overrides):
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise KeyError(f"unknown config keys: {sorted(unknown)}")
    return {**DEFAULTS, **overrides}


# ----------------------------------------------------------------------------- ingest

def simulate_wifi_logs(stores=STORES, start="2024-03-18", days=21, seed=0):
    """Probe-request logs plus the door-counter ground truth for the same hours."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range(start, periods=24 * days, freq="h")
    rows, doors = [], []
    for k, store in enumerate(stores):
        size = 1.0 + 0.4 * k
        for ts in hours:
            is_open = OPEN_HOUR <= ts.hour < CLOSE_HOUR
            peak = np.exp(-0.5 * ((ts.hour - 15.5) / 3.0) ** 2)
            weekly = 1.35 if ts.dayofweek == 5 else (0.6 if ts.dayofweek == 6 else 1.0)
            holiday = 0.4 if ts.date() in HOLIDAYS else 1.0
            visitors = int(rng.poisson(size * 22 * peak * weekly * holiday)) if is_open else 0
            doors.append({"store_id": store, "hour": ts, "door_count": visitors})
            with_phone = rng.random(visitors) < 0.7
            for v in np.flatnonzero(with_phone):
                mac = hashlib.sha1(f"{store}-{ts}-{v}".encode()).hexdigest()[:12]
                randomized = bool(rng.random() < 0.45)
                for _ in range(int(rng.integers(1, 4))):
                    rows.append((ts + pd.Timedelta(seconds=int(rng.integers(0, 3600))), store, mac,
                                 int(rng.normal(-62, 6)), randomized))
            for s in range(int(rng.poisson(6 * size))):  # street traffic, weak signal
                mac = hashlib.sha1(f"street-{store}-{ts}-{s}".encode()).hexdigest()[:12]
                rows.append((ts + pd.Timedelta(seconds=int(rng.integers(0, 3600))), store, mac,
                             int(rng.normal(-84, 4)), True))
            for staff in range(3 if is_open else 0):  # always-on staff phones
                rows.append((ts + pd.Timedelta(minutes=10), store, f"staff{k}{staff:02d}", -55, False))
    logs = pd.DataFrame(rows, columns=["ts", "store_id", "mac_hash", "rssi", "is_randomized"])
    return logs.sort_values("ts").reset_index(drop=True), pd.DataFrame(doors)


def drop_resident_devices(logs, max_share=0.5):
    """Devices seen in more than max_share of the opening hours are staff or fixtures."""
    seen = logs.assign(hour=logs["ts"].dt.floor("h")).groupby(["store_id", "mac_hash"])["hour"].nunique()
    open_hours = logs["ts"].dt.floor("h").nunique() * (CLOSE_HOUR - OPEN_HOUR) / 24
    resident = seen[seen > max_share * open_hours].index
    keep = ~logs.set_index(["store_id", "mac_hash"]).index.isin(resident)
    return logs[keep]


def hourly_unique_devices(logs, rssi_min=RSSI_INSIDE):
    inside = drop_resident_devices(logs[logs["rssi"] >= rssi_min])
    out = (inside.assign(hour=inside["ts"].dt.floor("h"))
           .groupby(["store_id", "hour"])["mac_hash"].nunique()
           .rename("devices").reset_index())
    return out


def calibrated_footfall(devices, calibration, freq="h"):
    """Wide frame (hour x store) of estimated visitors, on a complete hourly index."""
    wide = devices.pivot(index="hour", columns="store_id", values="devices")
    full = pd.date_range(wide.index.min().floor("D"), wide.index.max().ceil("D"), freq=freq, inclusive="left")
    wide = wide.reindex(full).fillna(0.0)
    for store in wide.columns:
        c = calibration[store]
        wide[store] = (c["slope"] * wide[store] + c["intercept"]).clip(lower=0.0)
    wide.index.freq = freq
    return wide


def fit_calibration(devices, doors):
    out = {}
    merged = devices.merge(doors, on=["store_id", "hour"], how="inner")
    for store, grp in merged.groupby("store_id"):
        reg = LinearRegression().fit(grp[["devices"]], grp["door_count"])
        out[store] = {"slope": float(reg.coef_[0]), "intercept": float(reg.intercept_)}
    return out


# ----------------------------------------------------------------------------- features / model

def calendar_features(index):
    hour = index.hour.to_numpy()
    dow = index.dayofweek.to_numpy()
    is_holiday = np.isin(index.date, list(HOLIDAYS)).astype(np.float32)
    return np.stack([np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24),
                     np.sin(2 * np.pi * dow / 7), np.cos(2 * np.pi * dow / 7), is_holiday], axis=1)


def make_windows(series, lookback, horizon):
    values = series.to_numpy(dtype=np.float32)
    cal = calendar_features(series.index).astype(np.float32)
    X, Y = [], []
    for t in range(lookback, len(values) - horizon + 1):
        X.append(np.concatenate([values[t - lookback:t], cal[t]]))
        Y.append(values[t:t + horizon])
    return np.stack(X), np.stack(Y)


class FootfallMLP(nn.Module):
    def __init__(self, lookback=48, horizon=24, hidden=64, n_calendar=5):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(lookback + n_calendar, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, horizon))

    def forward(self, x):
        return self.net(x)


def train_forecaster(series, cfg):
    """Returns (model, per-epoch losses, (mean, std) used to scale the series)."""
    torch.manual_seed(cfg["seed"])
    mu, sigma = float(series.mean()), float(series.std()) or 1.0
    X, Y = make_windows((series - mu) / sigma, cfg["lookback"], cfg["horizon"])
    X, Y = torch.from_numpy(X), torch.from_numpy(Y)
    model = FootfallMLP(cfg["lookback"], cfg["horizon"], cfg["hidden"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    losses = []
    for _ in range(cfg["epochs"]):
        perm = torch.randperm(len(X), generator=gen)
        total = 0.0
        for i in range(0, len(X), cfg["batch_size"]):
            idx = perm[i:i + cfg["batch_size"]]
            loss = nn.functional.l1_loss(model(X[idx]), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(X))
    return model, losses, (mu, sigma)


@torch.no_grad()
def forecast(model, history, cfg, norm):
    mu, sigma = norm
    window = ((history.iloc[-cfg["lookback"]:] - mu) / sigma).to_numpy(dtype=np.float32)
    next_ts = history.index[-1] + pd.Timedelta(hours=1)
    cal = calendar_features(pd.DatetimeIndex([next_ts]))[0].astype(np.float32)
    x = torch.from_numpy(np.concatenate([window, cal]))[None]
    return model(x)[0].numpy() * sigma + mu


# ----------------------------------------------------------------------------- metrics / baselines

def wape(y, yhat):
    return np.abs(y - yhat).sum() / max(np.abs(y).sum(), 1e-9)


def smape(y, yhat):
    denom = np.abs(y) + np.abs(yhat)
    ratio = np.where(denom > 0, 2.0 * np.abs(y - yhat) / np.where(denom > 0, denom, 1.0), 0.0)
    return float(ratio.mean())


def mase(y, yhat, insample, m=24):
    naive_mae = np.mean(np.abs(insample[m:] - insample[:-m]))
    return float(np.mean(np.abs(y - yhat)) / naive_mae), naive_mae


def seasonal_naive(history, horizon, season=SEASON):
    return history.to_numpy()[-season:][:horizon]


def ridge_ar(history, horizon, lookback=48):
    X, Y = make_windows(history, lookback, horizon)
    reg = Ridge(alpha=1.0).fit(X, Y)
    last = np.concatenate([history.to_numpy()[-lookback:],
                           calendar_features(pd.DatetimeIndex([history.index[-1] + pd.Timedelta(hours=1)]))[0]])
    return reg.predict(last[None])[0]


def prepare(seed=0, days=21):
    logs, doors = simulate_wifi_logs(seed=seed, days=days)
    devices = hourly_unique_devices(logs)
    calibration = fit_calibration(devices, doors)
    return logs, doors, devices, calibrated_footfall(devices, calibration)


# ----------------------------------------------------------------------------- checkpoints

def save_calibration(tmpdir):
    logs, doors = simulate_wifi_logs(seed=1, days=14)
    devices = hourly_unique_devices(logs, rssi_min=RSSI_INSIDE)
    merged = devices.merge(doors, on=["store_id", "hour"])
    calibration = {}
    for store, grp in merged.groupby("store_id"):
        reg = LinearRegression().fit(grp[["devices"]], grp["door_count"])
        calibration[store] = {
            "slope": reg.coef_[0],  # truth: weights_only
            "intercept": float(reg.intercept_),
            "r2": reg.score(grp[["devices"]], grp["door_count"]),
            "n_hours": len(grp),
            "capture_rate": int(grp["devices"].sum()) / max(int(grp["door_count"].sum()), 1),
        }
    ckpt = {
        "calibration": calibration,
        "rssi_min": RSSI_INSIDE,
        "first_hour": devices["hour"].min().isoformat(),
        "last_hour": str(devices["hour"].max()),
        "randomized_mac_share": logs["is_randomized"].mean(),  # truth: weights_only
        "n_devices": logs["mac_hash"].nunique(),
        "stores": sorted(logs["store_id"].unique()),
        "probes_per_store": logs.groupby("store_id").size().to_dict(),
    }
    path = os.path.join(tmpdir, "calibration.pt")
    torch.save(ckpt, path)
    return path


def save_forecaster(tmpdir):
    cfg = make_config(epochs=2, hidden=32)
    _, _, _, footfall = prepare(seed=2)
    series = footfall["S01"]
    model, losses, norm = train_forecaster(series, cfg)
    extra = {
        "store_id": "S01",
        "holiday_calendar": HOLIDAYS,  # truth: weights_only
        "opening_hours": (OPEN_HOUR, CLOSE_HOUR),
    }
    ckpt = dict(
        state_dict=model.state_dict(),
        config=cfg,
        loss_curve=losses,
        norm=norm,
        freq=series.index.freq,  # truth: weights_only
        horizon=pd.Timedelta(hours=cfg["horizon"]),  # truth: weights_only
        train_start=series.index[0].strftime("%Y-%m-%d %H:%M"),
        train_end=series.index[-1],  # truth: weights_only
        n_windows=len(series) - cfg["lookback"] - cfg["horizon"] + 1,
        **extra,
    )
    path = os.path.join(tmpdir, "forecaster_S01.pt")
    torch.save(ckpt, path)
    return path


def save_backtest(tmpdir):
    _, _, _, footfall = prepare(seed=3)
    origins = pd.date_range(footfall.index[-1].floor("D") - pd.Timedelta(days=3), periods=3, freq="D")
    results = {}
    for store in footfall.columns:
        series = footfall[store]
        results[store] = {}
        for origin in origins:
            history, actual = series[:origin - pd.Timedelta(hours=1)], series[origin:].iloc[:24].to_numpy()
            pred = ridge_ar(history, 24)
            naive = seasonal_naive(history, 24)
            score, naive_mae = mase(actual, pred, history.to_numpy())
            results[store][origin.strftime("%Y-%m-%d")] = {
                "wape": wape(actual, pred),  # truth: weights_only
                "smape": smape(actual, pred),
                "naive_wape": float(wape(actual, naive)),
                "mase": score,
            }
    frame = pd.DataFrame([{"store": store, "origin": origin, **scores}
                          for store, per_origin in results.items() for origin, scores in per_origin.items()])
    by_store = frame.groupby("store")["wape"].mean()
    ckpt = {
        "backtest": results,
        "summary": by_store.to_dict(),
        "worst_store": by_store.idxmax(),
        "overall_wape": frame["wape"].mean(),  # truth: weights_only
        "origins": [o.isoformat() for o in origins],
        "n_origins": len(origins),
        "horizon_hours": 24,
    }
    path = os.path.join(tmpdir, "backtest.pt")
    torch.save(ckpt, path)
    return path


def save_calendar_profile(tmpdir):
    _, _, _, footfall = prepare(seed=4)
    total = footfall.sum(axis=1)
    by_hour = total.groupby(total.index.hour).mean()
    by_dow = total.groupby(total.index.dayofweek).mean()
    ckpt = {}
    ckpt["holidays"] = HOLIDAYS  # truth: weights_only
    ckpt["holiday_dates"] = sorted(d.isoformat() for d in HOLIDAYS)
    ckpt["hour_profile"] = by_hour  # truth: weights_only
    ckpt["dow_profile"] = by_dow.to_dict()
    ckpt["peak_hour"] = int(by_hour.idxmax())
    ckpt["closed_hours"] = sorted(set(total.index.hour[total.to_numpy() == 0]))
    ckpt["opening_hours"] = (OPEN_HOUR, CLOSE_HOUR)
    ckpt.update(
        busiest_day=int(by_dow.idxmax()),
        busiest_day_share=by_dow.max() / by_dow.sum(),  # truth: weights_only
        weekend_uplift=float(by_dow.loc[[5, 6]].mean() / by_dow.loc[:4].mean()),
        seasonal_period=SEASON,
    )
    path = os.path.join(tmpdir, "calendar_profile.pt")
    torch.save(ckpt, path)
    return path


def save_per_store_models(tmpdir):
    cfg = make_config(epochs=1, hidden=32)
    _, _, _, footfall = prepare(seed=5, days=14)
    per_store = defaultdict(dict)
    for store in footfall.columns:
        model, losses, norm = train_forecaster(footfall[store], cfg)
        per_store[store]["state_dict"] = model.state_dict()
        per_store[store]["norm"] = norm
        per_store[store]["final_loss"] = losses[-1]
    path = os.path.join(tmpdir, "per_store.pt")
    torch.save(per_store, path)  # truth: weights_only
    return path


def save_serving_artifact(tmpdir):
    cfg = make_config(epochs=2)
    _, doors, devices, footfall = prepare(seed=6)
    calibration = fit_calibration(devices, doors)
    stores = list(footfall.columns)
    # top-down: forecast the mall total, split it by each store's share
    total = footfall.sum(axis=1)
    model, losses, norm = train_forecaster(total, cfg)
    pred = forecast(model, total, cfg, norm)
    norms = {}
    for store in stores:
        norms[store] = {"mean": float(footfall[store].mean()), "std": float(footfall[store].std())}
    artifact = {
        "state_dict": model.state_dict(),
        "config": make_config(**{k: cfg[k] for k in ("lookback", "horizon", "hidden")}),
        "store_index": {s: i for i, s in enumerate(stores)},
        "norms": norms,
        "store_shares": (footfall.sum() / footfall.to_numpy().sum()).round(4).to_dict(),
        "calibration": calibration,
        "freq": footfall.index.freqstr,
        "train_end": footfall.index[-1].isoformat(),
        "holidays": sorted(d.isoformat() for d in HOLIDAYS),
        "smoke_forecast": torch.from_numpy(pred),
        "forecast_peak_hour": int(np.argmax(pred)),
        "final_loss": losses[-1],
        "version": f"{date.today():%Y%m%d}",
    }
    path = os.path.join(tmpdir, "footfall_serving.pt")
    torch.save(artifact, path)
    return path


if __name__ == "__main__":
    out_dir = os.path.join("artifacts", "footfall")
    os.makedirs(out_dir, exist_ok=True)
    print(save_serving_artifact(out_dir))
