"""Train a GRU forecaster for PM2.5 on a low-cost sensor network.

    python aq_forecast_train.py --data-dir data/purpleair --lookback 24 --horizon 6 --epochs 40

Readings are hourly, one row per (station, hour). Gaps from sensor dropouts are resampled and
interpolated per station, every feature is standardised with a scaler fitted on the training
period only, and the last `val_frac` of the timeline is held out (no shuffling across time).
"""
import argparse
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.preprocessing import StandardScaler

SENSOR_COLUMNS = ["pm25", "pm10", "no2", "o3", "temperature", "humidity", "wind_speed"]
TARGET = "pm25"
# US EPA PM2.5 AQI breakpoints (ug/m3, 24h mean)
AQI_BREAKPOINTS = pd.DataFrame({
    "low": [0.0, 12.1, 35.5, 55.5, 150.5, 250.5],
    "high": [12.0, 35.4, 55.4, 150.4, 250.4, 500.4],
    "category": ["good", "moderate", "usg", "unhealthy", "very_unhealthy", "hazardous"],
})
WHO_DAILY_LIMIT = 15.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="PM2.5 sequence forecaster")
    p.add_argument("--data-dir", type=Path, default=Path("data/purpleair"))
    p.add_argument("--out-dir", default="runs/aq_gru")
    p.add_argument("--stations", type=int, default=4)
    p.add_argument("--hours", type=int, default=240)
    p.add_argument("--lookback", type=int, default=24)
    p.add_argument("--horizon", type=int, default=6)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--val-frac", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(argv)


def load_readings(args):
    """Raw hourly readings (a synthetic stand-in for the network's CSV export)."""
    rng = np.random.default_rng(args.seed)
    index = pd.date_range("2023-01-01", periods=args.hours, freq="h")
    frames = []
    for sid in range(101, 101 + args.stations):
        diurnal = np.sin(2 * np.pi * index.hour.to_numpy() / 24)
        base = rng.uniform(8, 30)
        df = pd.DataFrame({"timestamp": index, "station_id": sid})
        df["pm25"] = np.clip(base + 8 * diurnal + rng.normal(0, 4, len(index)), 0, None)
        df["pm10"] = df["pm25"] * rng.uniform(1.3, 1.8) + rng.normal(0, 3, len(index))
        df["no2"] = np.clip(20 + 10 * diurnal + rng.normal(0, 5, len(index)), 0, None)
        df["o3"] = np.clip(30 - 12 * diurnal + rng.normal(0, 5, len(index)), 0, None)
        df["temperature"] = 12 + 6 * diurnal + rng.normal(0, 1, len(index))
        df["humidity"] = np.clip(60 - 15 * diurnal + rng.normal(0, 5, len(index)), 5, 100)
        df["wind_speed"] = np.abs(rng.normal(3, 1.5, len(index)))
        df.loc[rng.random(len(index)) < 0.04, "pm25"] = np.nan   # optical sensor dropouts
        keep = rng.random(len(index)) > 0.03                       # missing uploads
        frames.append(df[keep])
    return pd.concat(frames, ignore_index=True)


def clean_readings(raw):
    """Resample every station onto a regular hourly grid and fill short gaps."""
    before = raw[SENSOR_COLUMNS].isna().mean()
    parts = []
    for sid, g in raw.groupby("station_id"):
        g = g.set_index("timestamp").sort_index()[SENSOR_COLUMNS].resample("h").mean()
        g = g.interpolate(limit=3).ffill().bfill()
        g["station_id"] = sid
        parts.append(g.reset_index())
    df = pd.concat(parts, ignore_index=True)
    return df, before


def split_by_time(df, val_frac):
    times = df["timestamp"].to_numpy()
    cutoff = np.sort(np.unique(times))[int((1 - val_frac) * len(np.unique(times)))]
    return df[df["timestamp"] < cutoff], df[df["timestamp"] >= cutoff], cutoff


def make_windows(df, scaler, lookback, horizon):
    xs, ys, ids = [], [], []
    target_idx = SENSOR_COLUMNS.index(TARGET)
    for sid, g in df.groupby("station_id"):
        feats = scaler.transform(g[SENSOR_COLUMNS].to_numpy(dtype=np.float64))
        for t in range(lookback, len(g) - horizon + 1):
            xs.append(feats[t - lookback:t])
            ys.append(feats[t:t + horizon, target_idx])
            ids.append(sid)
    X = torch.tensor(np.stack(xs), dtype=torch.float32)
    Y = torch.tensor(np.stack(ys), dtype=torch.float32)
    return X, Y, np.asarray(ids)


class SeqForecaster(nn.Module):
    def __init__(self, n_features=len(SENSOR_COLUMNS), hidden=32, layers=1, horizon=6, dropout=0.0):
        super().__init__()
        self.horizon = horizon
        self.gru = nn.GRU(n_features, hidden, num_layers=layers, batch_first=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, horizon))

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(h[-1])


class EarlyStopping:
    def __init__(self, patience=5, min_delta=1e-4):
        self.patience = patience
        self.min_delta = min_delta
        self.best = np.inf
        self.bad_epochs = 0
        self.best_epoch = -1

    def step(self, value, epoch):
        if value < self.best - self.min_delta:
            self.best, self.bad_epochs, self.best_epoch = value, 0, epoch
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self):
        return self.bad_epochs >= self.patience


def inverse_target(values, scaler):
    i = SENSOR_COLUMNS.index(TARGET)
    return values * scaler.scale_[i] + scaler.mean_[i]


def evaluate(model, X, Y, scaler):
    model.eval()
    with torch.no_grad():
        pred = model(X).numpy()
    y_true = inverse_target(Y.numpy(), scaler)
    y_pred = inverse_target(pred, scaler)
    mse = mean_squared_error(y_true.ravel(), y_pred.ravel())
    return {
        "mae": mean_absolute_error(y_true.ravel(), y_pred.ravel()),
        "rmse": np.sqrt(mse),
        "r2": r2_score(y_true.ravel(), y_pred.ravel()),
        "horizon_mae": [np.abs(y_true[:, h] - y_pred[:, h]).mean() for h in range(y_true.shape[1])],
        "exceed_rate": (y_pred.max(axis=1) > WHO_DAILY_LIMIT).mean(),
        "val_loss": float(np.mean((pred - Y.numpy()) ** 2)),
    }


def prepare(args):
    raw = load_readings(args)
    df, missing_before = clean_readings(raw)
    train_df, val_df, cutoff = split_by_time(df, args.val_frac)
    scaler = StandardScaler().fit(train_df[SENSOR_COLUMNS].to_numpy(dtype=np.float64))
    X_tr, Y_tr, ids_tr = make_windows(train_df, scaler, args.lookback, args.horizon)
    X_va, Y_va, _ = make_windows(val_df, scaler, args.lookback, args.horizon)
    return {"raw": raw, "df": df, "missing_before": missing_before, "cutoff": cutoff,
            "scaler": scaler, "train": (X_tr, Y_tr, ids_tr), "val": (X_va, Y_va)}


def fit(args, data):
    torch.manual_seed(args.seed)
    X_tr, Y_tr, _ = data["train"]
    X_va, Y_va = data["val"]
    model = SeqForecaster(hidden=args.hidden, layers=args.layers, horizon=args.horizon, dropout=args.dropout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    stopper = EarlyStopping(patience=args.patience)
    history = {"train_loss": [], "val_loss": [], "val_mae": [], "lr": []}
    loss_fn = nn.SmoothL1Loss()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(X_tr))
        losses = []
        for start in range(0, len(perm), args.batch_size):
            idx = perm[start:start + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(X_tr[idx]), Y_tr[idx])
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            losses.append(loss.item())
        metrics = evaluate(model, X_va, Y_va, data["scaler"])
        scheduler.step(np.float64(metrics["val_loss"]))
        stopper.step(metrics["val_loss"], epoch)
        history["train_loss"].append(float(np.mean(losses)))
        history["val_loss"].append(metrics["val_loss"])
        history["val_mae"].append(metrics["mae"])
        history["lr"].append(optimizer.param_groups[0]["lr"])
        if stopper.should_stop:
            break
    return model, optimizer, scheduler, stopper, history, grad_norm


def save_forecaster_checkpoint(tmpdir):
    args = parse_args(["--out-dir", tmpdir])
    data = prepare(args)
    model, optimizer, scheduler, stopper, history, grad_norm = fit(args, data)
    metrics = evaluate(model, *data["val"], data["scaler"])
    ckpt = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": len(history["train_loss"]),
        "best_epoch": stopper.best_epoch,
        "best_val_loss": stopper.best,
        "args": args,  # truth: weights_only
        "history": history,
        "val_mae": metrics["mae"],
        "val_rmse": metrics["rmse"],  # truth: weights_only
        "val_r2": metrics["r2"],
        "last_grad_norm": grad_norm,
        "scaler_mean": data["scaler"].mean_.tolist(),
        "scaler_scale": torch.from_numpy(data["scaler"].scale_).float(),
        "feature_columns": list(SENSOR_COLUMNS),
    }
    path = os.path.join(tmpdir, "gru_last.pt")
    torch.save(ckpt, path)
    return path


def save_data_manifest(tmpdir):
    """Provenance of the training data, written next to every run."""
    args = parse_args(["--stations", "3"])
    data = prepare(args)
    raw, df = data["raw"], data["df"]
    _, _, train_ids = data["train"]
    gaps = raw.sort_values("timestamp").groupby("station_id")["timestamp"].diff()
    manifest = {
        "n_rows_raw": len(raw),
        "n_rows_clean": int(df.shape[0]),
        "stations": sorted(df["station_id"].unique().tolist()),
        "first_timestamp": df["timestamp"].min().isoformat(),
        "last_timestamp": df["timestamp"].max(),  # truth: weights_only
        "sampling_interval": gaps.median(),  # truth: weights_only
        "max_gap_hours": gaps.max().total_seconds() / 3600,
        "missing_rate": data["missing_before"].to_dict(),
        "nan_fraction": df[SENSOR_COLUMNS].isna().mean(),  # truth: weights_only
        "windows_per_station": Counter(train_ids),  # truth: weights_only
        "split_cutoff": data["cutoff"],  # truth: weights_only
        "split_cutoff_str": str(pd.Timestamp(data["cutoff"])),
        "aqi_breakpoints": AQI_BREAKPOINTS.to_dict("records"),
    }
    manifest["source"] = {"data_dir": args.data_dir, "created": time.time(), "format": "csv"}  # truth: weights_only
    path = os.path.join(tmpdir, "data_manifest.pt")
    torch.save(manifest, path)
    return path


def save_scaler_state(tmpdir):
    args = parse_args(["--hours", "200"])
    data = prepare(args)
    scaler = data["scaler"]
    state = {"columns": list(SENSOR_COLUMNS), "target": TARGET}
    state["scaler"] = {
        "mean": scaler.mean_.tolist(),
        "var": [float(v) for v in scaler.var_],
        "n_samples_seen": scaler.n_samples_seen_,  # truth: weights_only
        "params": scaler.get_params(),
    }
    station_means = data["df"].groupby("station_id")[TARGET].mean()
    state["station_pm25_mean"] = station_means.to_dict()
    path = os.path.join(tmpdir, "scaler.pt")
    torch.save(state, path)
    return path


def save_eval_report(tmpdir):
    args = parse_args(["--epochs", "1"])
    data = prepare(args)
    model, _, _, _, history, _ = fit(args, data)
    metrics = evaluate(model, *data["val"], data["scaler"])
    report = dict(
        model="gru",
        lookback=args.lookback,
        horizon=args.horizon,
        mae=metrics["mae"],
        rmse=float(metrics["rmse"]),
        horizon_mae=metrics["horizon_mae"],  # truth: weights_only
        exceed_rate=metrics["exceed_rate"],  # truth: weights_only
        final_train_loss=history["train_loss"][-1],
        n_val_windows=len(data["val"][0]),
    )
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


def save_for_inference(tmpdir):
    """Slim artifact for the edge gateway: weights, normalisation and the config it was trained with."""
    args = parse_args(["--epochs", "1", "--hidden", "16"])
    data = prepare(args)
    model, *_ = fit(args, data)
    scaler = data["scaler"]
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    artifact = {
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "config": config,
        "norm": {"mean": torch.tensor(scaler.mean_, dtype=torch.float32),
                 "std": torch.tensor(scaler.scale_, dtype=torch.float32)},
        "target_index": SENSOR_COLUMNS.index(TARGET),
        "input_shape": tuple(data["train"][0].shape[1:]),
        "torch_version": str(torch.__version__),
        "numpy_version": np.__version__,
        "best_possible": np.inf,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    path = os.path.join(tmpdir, "gru_edge.pt")
    torch.save(artifact, path)
    return path


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    print("checkpoint:", save_forecaster_checkpoint(args.out_dir))
    print("manifest:", save_data_manifest(args.out_dir))


if __name__ == "__main__":
    main()
