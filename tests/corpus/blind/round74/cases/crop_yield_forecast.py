"""County/field-level crop-yield forecasting from Sentinel-2 time series.

train_yield.py-style script: argparse flags, a pandas long table of per-field band reflectances,
vegetation indices, a scikit-learn scaler, a small TempCNN regressor and a plain training loop.
"""
import argparse
import datetime
import math
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import signal, stats
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.preprocessing import StandardScaler

BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
INDICES = ("ndvi", "evi", "ndwi")
REGIONS = ("north", "south", "east", "west")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train a TempCNN yield regressor")
    p.add_argument("--data-root", type=Path, default=Path("data/s2_fields"))
    p.add_argument("--crop", default="maize", choices=["maize", "wheat", "soy"])
    p.add_argument("--season-start", type=datetime.date.fromisoformat, default="2021-04-01")
    p.add_argument("--seq-len", type=int, default=24)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--clip", type=float, nargs=2, default=[2.0, 98.0])
    return p.parse_args(argv)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_field_table(n_fields=48, seq_len=24, seed=0, season_start="2021-04-01"):
    """Long table: one row per (field, acquisition)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(season_start, periods=seq_len, freq="7D")
    rows = []
    for f in range(n_fields):
        region = REGIONS[f % len(REGIONS)]
        peak = rng.integers(8, 16)
        vigor = rng.uniform(0.6, 1.0)
        for t, d in enumerate(dates):
            green = vigor * math.exp(-((t - peak) ** 2) / 18.0)
            refl = rng.normal(0.08, 0.01, size=len(BANDS)).clip(0.0, 1.0)
            refl[3] += 0.35 * green  # NIR rises with canopy
            refl[2] -= 0.03 * green
            rows.append((f"F{f:03d}", region, d, *refl))
    df = pd.DataFrame(rows, columns=["field_id", "region", "date", *BANDS])
    df["year"] = df["date"].dt.year + (df["field_id"].str[-1].astype(int) % 3)
    yields = df.groupby("field_id")["B08"].max() * 12.0 + rng.normal(0, 0.3, size=n_fields)
    df["yield_t_ha"] = df["field_id"].map(yields)
    return df


def add_indices(df):
    nir, red, blue, swir = df["B08"], df["B04"], df["B02"], df["B11"]
    df["ndvi"] = (nir - red) / (nir + red + 1e-6)
    df["evi"] = 2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1.0)
    df["ndwi"] = (nir - swir) / (nir + swir + 1e-6)
    return df


def to_tensors(df, feature_cols, scaler=None):
    df = df.sort_values(["field_id", "date"])
    fields = df["field_id"].unique()
    x = df[feature_cols].to_numpy(dtype=np.float32).reshape(len(fields), -1, len(feature_cols))
    if scaler is None:
        scaler = StandardScaler().fit(x.reshape(-1, len(feature_cols)))
    x = scaler.transform(x.reshape(-1, len(feature_cols))).reshape(x.shape).astype(np.float32)
    y = df.groupby("field_id", sort=True)["yield_t_ha"].first().to_numpy(dtype=np.float32)
    return torch.from_numpy(x), torch.from_numpy(y), scaler


class TempCNN(nn.Module):
    def __init__(self, in_ch=len(BANDS) + len(INDICES), hidden=32, seq_len=24, dropout=0.2):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(in_ch, hidden, 5, padding=2), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv1d(hidden, hidden, 5, padding=2), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(hidden * seq_len, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x):  # x: [B, T, C]
        return self.head(self.convs(x.transpose(1, 2))).squeeze(-1)


def regression_metrics(y_true, y_pred):
    mse = mean_squared_error(y_true, y_pred)
    return {
        "rmse": math.sqrt(mse),
        "mae": mean_absolute_error(y_true, y_pred),
        "r2": r2_score(y_true, y_pred),
        "pearson_r": stats.pearsonr(y_true, y_pred)[0],
        "bias": float(np.mean(y_pred - y_true)),
    }


def run_training(args):
    seed_everything(args.seed)
    df = add_indices(make_field_table(seq_len=args.seq_len, seed=args.seed,
                                      season_start=args.season_start.isoformat()))
    feature_cols = [*BANDS, *INDICES]
    x, y, scaler = to_tensors(df, feature_cols)
    y_mean, y_std = df["yield_t_ha"].mean(), df["yield_t_ha"].std()
    y_norm = (y - float(y_mean)) / float(y_std)
    n_val = len(y) // 4
    model = TempCNN(len(feature_cols), args.hidden, args.seq_len, args.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * math.ceil((len(y) - n_val) / args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    history = {"train_loss": [], "val_rmse": [], "lr": []}
    best_rmse, best_epoch, best_state = float("inf"), -1, None
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(y) - n_val) + n_val
        losses = []
        for i in range(0, len(perm), args.batch_size):
            idx = perm[i:i + args.batch_size]
            loss = F.smooth_l1_loss(model(x[idx]), y_norm[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            pred = model(x[:n_val]) * float(y_std) + float(y_mean)
        metrics = regression_metrics(y[:n_val].numpy(), pred.numpy())
        history["train_loss"].append(sum(losses) / len(losses))
        history["val_rmse"].append(metrics["rmse"])
        history["lr"].append(sched.get_last_lr()[0])
        if metrics["rmse"] < best_rmse:
            best_rmse, best_epoch = metrics["rmse"], epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"model": model, "opt": opt, "sched": sched, "scaler": scaler, "df": df, "history": history,
            "best": (best_rmse, best_epoch, best_state), "metrics": metrics, "target": (y_mean, y_std),
            "features": feature_cols}


def save_best_checkpoint(tmpdir):
    args = parse_args(["--epochs", "2", "--crop", "wheat"])
    run = run_training(args)
    best_rmse, best_epoch, best_state = run["best"]
    y_mean, y_std = run["target"]
    hparams = {k: (str(v) if isinstance(v, (Path, datetime.date)) else v) for k, v in vars(args).items()}
    ckpt = {
        "model": best_state,
        "optimizer": run["opt"].state_dict(),
        "epoch": best_epoch,
        "best_val_rmse": best_rmse,
        "args": args,  # truth: weights_only
        "hparams": hparams,
        "target_stats": {
            "mean": y_mean,  # truth: weights_only
            "std": float(y_std),
        },
        "features": list(run["features"]),
        "season_start": args.season_start,  # truth: weights_only
        "data_root": args.data_root.as_posix(),
        "history": run["history"],
        "torch_version": str(torch.__version__),
    }
    path = str(Path(tmpdir) / f"tempcnn_{args.crop}_best.pt")
    torch.save(ckpt, path)
    return path


def save_scaler_bundle(tmpdir):
    args = parse_args(["--epochs", "1"])
    df = add_indices(make_field_table(seq_len=args.seq_len, seed=3))
    feature_cols = [*BANDS, *INDICES]
    _, _, scaler = to_tensors(df, feature_cols)
    lo, hi = np.percentile(df[list(BANDS)].to_numpy(), args.clip)
    bundle = dict(
        scaler_mean=torch.from_numpy(scaler.mean_).float(),
        scaler_scale=scaler.scale_,  # truth: weights_only
        n_samples_seen=scaler.n_samples_seen_,  # truth: weights_only
        n_features=scaler.n_features_in_,
        feature_names=feature_cols,
        reflectance_clip=(lo, hi),  # truth: weights_only
        clip_percentiles=tuple(args.clip),
        scaler_params=scaler.get_params(),
        dtypes=df[feature_cols].dtypes.astype(str).to_dict(),
    )
    path = str(Path(tmpdir) / "feature_scaler.pt")
    torch.save(bundle, path)
    return path


def save_region_models(tmpdir):
    args = parse_args(["--epochs", "1", "--seed", "11"])
    run = run_training(args)
    df, model = run["df"], run["model"]
    regions = sorted(df["region"].unique())
    per_region = {}
    for region in regions:
        part = df[df["region"] == region]
        x, y, _ = to_tensors(part, run["features"], run["scaler"])
        with torch.no_grad():
            pred = model.eval()(x) * float(run["target"][1]) + float(run["target"][0])
        per_region[region] = {
            "rmse": math.sqrt(mean_squared_error(y.numpy(), pred.numpy())),
            "r2": r2_score(y.numpy(), pred.numpy()),
            "n_fields": part["field_id"].nunique(),
        }
    counts = df.groupby("region")["field_id"].nunique().to_numpy()
    weights = counts / counts.sum()
    ckpt = {"model": model.state_dict(), "region_index": {r: i for i, r in enumerate(regions)}}
    ckpt["per_region"] = per_region
    ckpt["region_weights"] = weights  # truth: weights_only
    ckpt["region_weight_by_name"] = pd.Series(weights, index=regions).to_dict()
    ckpt["region_sizes"] = df.groupby("region").size().to_dict()
    ckpt["years"] = list(df["year"].unique())  # truth: weights_only
    ckpt["year_range"] = (int(df["year"].min()), int(df["year"].max()))
    metrics = run["metrics"]
    ckpt.update(
        val_rmse=metrics["rmse"],
        val_r2=metrics["r2"],
        val_pearson=metrics["pearson_r"],  # truth: weights_only
        val_bias=metrics["bias"],
    )
    path = str(Path(tmpdir) / "tempcnn_regional.pt")
    torch.save(ckpt, path)
    return path


def smooth_profile(values, window=7, polyorder=2):
    return signal.savgol_filter(values, window_length=window, polyorder=polyorder)


def phenology(df, field_id):
    part = df[df["field_id"] == field_id].sort_values("date")
    doys = part["date"].dt.dayofyear.to_numpy()
    ndvi = smooth_profile(part["ndvi"].to_numpy())
    peaks, _ = signal.find_peaks(ndvi, prominence=0.02)
    half = ndvi.min() + 0.5 * (ndvi.max() - ndvi.min())
    green_up = doys[np.argmax(ndvi >= half)]
    return {"doys": doys, "ndvi": ndvi, "peaks": peaks, "green_up": green_up,
            "peak_doy": doys[np.argmax(ndvi)], "dates": part["date"]}


def save_phenology_features(tmpdir):
    df = add_indices(make_field_table(n_fields=8, seed=5))
    feats = phenology(df, "F002")
    ckpt = {
        "field_id": "F002",
        "ndvi_curve": torch.tensor(feats["ndvi"], dtype=torch.float32),
        "green_up_doy": int(feats["green_up"]),
        "peak_doy": feats["peak_doy"],  # truth: weights_only
        "n_peaks": len(feats["peaks"]),
        "smoothing": {"window": 7, "polyorder": 2, "method": "savgol"},
        "acquisitions": feats["dates"].dt.strftime("%Y-%m-%d").tolist(),
        "first_acquisition": feats["dates"].min().isoformat(),
        "last_acquisition": feats["dates"].max(),  # truth: weights_only
        "season_length_days": int((feats["dates"].max() - feats["dates"].min()).days),
        "doy_grid": feats["doys"].tolist(),
    }
    path = str(Path(tmpdir) / "phenology_F002.pt")
    torch.save(ckpt, path)
    return path


class EarlyStopping:
    def __init__(self, patience=3, min_delta=1e-3):
        self.patience = patience
        self.min_delta = min_delta
        self.best = np.inf
        self.wait = 0

    def step(self, value):
        if value < self.best - self.min_delta:
            self.best = min(self.best, value)
            self.wait = 0
            return False
        self.wait += 1
        return self.wait >= self.patience

    def state(self):
        return {"best": self.best, "wait": self.wait, "patience": self.patience}


def save_resume_state(tmpdir):
    args = parse_args(["--epochs", "2", "--seed", "21"])
    run = run_training(args)
    stopper = EarlyStopping(patience=2)
    for v in run["history"]["val_rmse"]:
        stopper.step(np.float64(v))
    t0 = time.time()
    state = {
        "epoch": args.epochs,
        "model": run["model"].state_dict(),
        "optimizer": run["opt"].state_dict(),
        "scheduler": run["sched"].state_dict(),
        "early_stopping": {
            "best": stopper.best,  # truth: weights_only
            "wait": stopper.wait,
            "patience": stopper.patience,
        },
        "rng": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),  # truth: weights_only
            "torch": torch.get_rng_state(),
        },
        "lr_history": run["history"]["lr"],
        "wall_time": time.time() - t0,
    }
    state.update(saved_at=datetime.datetime.now().timestamp(), crop=args.crop)
    path = str(Path(tmpdir) / "last.pt")
    torch.save(state, path)
    return path


def save_forecast_snapshot(tmpdir):
    df = add_indices(make_field_table(n_fields=16, seed=9))
    feature_cols = [*BANDS, *INDICES]
    x, y, scaler = to_tensors(df, feature_cols)
    model = TempCNN(len(feature_cols), 16, x.shape[1]).eval()
    with torch.no_grad():
        pred = model(x)
    by_field = df.groupby("field_id")["yield_t_ha"].first()
    snapshot = {"predictions": pred, "targets": y, "fields": by_field.index.tolist()}
    snapshot["yield_quantiles"] = by_field.quantile([0.1, 0.5, 0.9]).to_dict()
    snapshot["median_yield"] = by_field.median()  # truth: weights_only
    snapshot["top_field"] = by_field.idxmax()
    snapshot["summary"] = by_field.describe().round(3).to_dict()
    snapshot["corr_ndvi_yield"] = float(np.corrcoef(df.groupby("field_id")["ndvi"].max(), by_field)[0, 1])
    snapshot["input_shape"] = tuple(x.shape)
    snapshot["n_obs"] = len(df)
    path = str(Path(tmpdir) / "forecast_2021.pt")
    torch.save(snapshot, path)
    return path


def save_inference_export(tmpdir):
    args = parse_args(["--epochs", "1", "--hidden", "16"])
    run = run_training(args)
    y_mean, y_std = run["target"]
    scaler = run["scaler"]
    export = {
        "state_dict": {k: v.half() if v.is_floating_point() else v for k, v in run["model"].state_dict().items()},
        "arch": {"in_ch": len(run["features"]), "hidden": args.hidden, "seq_len": args.seq_len},
        "target": {"mean": y_mean.item(), "std": round(float(y_std), 4)},
        "scaler": {"mean": scaler.mean_.tolist(), "scale": torch.tensor(scaler.scale_), "n": int(scaler.n_samples_seen_)},
        "bands": BANDS,
        "crop": args.crop,
        "cadence_days": 7,
        "max_cloud_pct": 20,
        "rmse_history": [round(v, 4) for v in run["history"]["val_rmse"]],
    }
    path = str(Path(tmpdir) / "tempcnn_export_fp16.pt")
    torch.save(export, path)
    return path


def main(argv=None):
    args = parse_args(argv)
    run = run_training(args)
    out = args.data_root / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"model": run["model"].state_dict(), "epoch": args.epochs}, out / "final.pt")


if __name__ == "__main__":
    main()
