"""Daily streamflow forecasting with an LSTM over CAMELS-style basins.

Script layout follows the usual neuralhydrology-like train script: argparse flags, a YAML run
config with the train/validation periods, pandas preprocessing per basin, NSE/KGE evaluation and a
checkpoint written at the end of every run.
"""
import argparse
import collections
import datetime
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from scipy import stats
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, Dataset

DYNAMIC_INPUTS = ["prcp", "tmax", "tmin", "srad", "vp"]
TARGET = "qobs"

RUN_CONFIG = """
experiment_name: camels_lstm_daily
train_start: 1980-10-01
train_end: 1981-03-31
validation_start: 1981-04-01
validation_end: 1981-06-30
seq_length: 30
predict_last_n: 1
loss: nse
clip_gradient_norm: 1.0
"""


def load_run_config(text=RUN_CONFIG):
    return yaml.safe_load(text)


def make_camels_frame(basins=("01013500", "01022500", "01030500"), n_days=273, seed=7):
    """Synthetic forcing + discharge per basin, one row per basin-day."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("1980-10-01", periods=n_days, freq="D")
    frames = []
    for i, basin in enumerate(basins):
        prcp = rng.gamma(0.6, 4.0, n_days)
        tmax = 12 + 10 * np.sin(np.arange(n_days) / 58.0) + rng.normal(0, 2, n_days)
        q = np.convolve(prcp, np.exp(-np.arange(20) / (4.0 + i)), mode="full")[:n_days] * 0.1
        frames.append(pd.DataFrame({
            "basin": basin,
            "date": dates,
            "prcp": prcp,
            "tmax": tmax,
            "tmin": tmax - 8 + rng.normal(0, 1, n_days),
            "srad": 200 + 80 * np.sin(np.arange(n_days) / 58.0),
            "vp": 900 + rng.normal(0, 50, n_days),
            TARGET: q + rng.normal(0, 0.05, n_days).clip(0),
        }))
    return pd.concat(frames, ignore_index=True)


def split_periods(df, cfg):
    train = df[(df.date >= pd.Timestamp(cfg["train_start"])) & (df.date <= pd.Timestamp(cfg["train_end"]))]
    val = df[(df.date >= pd.Timestamp(cfg["validation_start"])) & (df.date <= pd.Timestamp(cfg["validation_end"]))]
    return train.reset_index(drop=True), val.reset_index(drop=True)


class BasinWindows(Dataset):
    """Sliding windows of length seq_length, target is the discharge of the last day."""

    def __init__(self, frame=None, scaler=None, seq_length=30, target_mean=0.0, target_std=1.0):
        if frame is None:
            frame = make_camels_frame(n_days=60)
        self.seq_length = seq_length
        self.samples = []
        for basin, g in frame.groupby("basin", sort=True):
            x = g[DYNAMIC_INPUTS].to_numpy(dtype=np.float32)
            if scaler is not None:
                x = scaler.transform(x).astype(np.float32)
            y = ((g[TARGET].to_numpy() - target_mean) / target_std).astype(np.float32)
            for end in range(seq_length, len(g)):
                self.samples.append((basin, x[end - seq_length:end], y[end - 1]))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        basin, x, y = self.samples[i]
        return torch.from_numpy(x), torch.tensor([y])


class CudaLSTM(nn.Module):
    def __init__(self, input_size=len(DYNAMIC_INPUTS), hidden_size=32, dropout=0.2, initial_forget_bias=3.0):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, 1)
        with torch.no_grad():
            self.lstm.bias_hh_l0[hidden_size:2 * hidden_size].fill_(initial_forget_bias)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(self.dropout(out[:, -1]))


def nse(obs, sim):
    obs, sim = np.asarray(obs), np.asarray(sim)
    return 1.0 - np.sum((sim - obs) ** 2) / np.sum((obs - obs.mean()) ** 2)


def kge(obs, sim):
    r = np.corrcoef(obs, sim)[0, 1]
    alpha = np.std(sim) / np.std(obs)
    beta = np.mean(sim) / np.mean(obs)
    return 1 - math.sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2), r, alpha, beta


def build_parser():
    p = argparse.ArgumentParser(description="Train a daily LSTM rainfall-runoff model")
    p.add_argument("--hidden-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--basins", nargs="+", default=["01013500", "01022500", "01030500"])
    return p


def train_epoch(model, loader, optimizer, clip=1.0):
    model.train()
    losses = []
    for x, y in loader:
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        losses.append(loss.item())
    return np.mean(losses)


@torch.no_grad()
def evaluate_basins(model, frame, scaler, seq_length, target_mean, target_std):
    """Per-basin NSE and KGE in discharge units."""
    model.eval()
    results = {}
    for basin, g in frame.groupby("basin", sort=True):
        ds = BasinWindows(g, scaler, seq_length, target_mean, target_std)
        x = torch.stack([ds[i][0] for i in range(len(ds))])
        sim = model(x).squeeze(-1).numpy() * target_std + target_mean
        obs = g[TARGET].to_numpy()[seq_length - 1:-1]
        k, r, _, _ = kge(obs, sim)
        results[basin] = {"nse": float(nse(obs, sim)), "kge": k, "r": float(r), "n_days": len(obs)}
    return results


def prepare(args, cfg):
    torch.manual_seed(args.seed)
    df = make_camels_frame(tuple(args.basins))
    train_df, val_df = split_periods(df, cfg)
    scaler = StandardScaler().fit(train_df[DYNAMIC_INPUTS].to_numpy())
    t_mean, t_std = train_df[TARGET].mean(), train_df[TARGET].std()
    return df, train_df, val_df, scaler, t_mean, t_std


def save_lstm_run(tmpdir):
    args = build_parser().parse_args(["--run-dir", tmpdir, "--epochs", "2", "--hidden-size", "16"])
    cfg = load_run_config()
    df, train_df, val_df, scaler, t_mean, t_std = prepare(args, cfg)
    ds = BasinWindows(train_df, scaler, cfg["seq_length"], t_mean, t_std)
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True)
    model = CudaLSTM(hidden_size=args.hidden_size, dropout=args.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    history = {
        "train_loss": [],  # truth: weights_only
        "median_nse": [],
    }
    best_median = -math.inf
    for epoch in range(1, args.epochs + 1):
        history["train_loss"].append(train_epoch(model, loader, optimizer, cfg["clip_gradient_norm"]))
        per_basin = evaluate_basins(model, val_df, scaler, cfg["seq_length"], t_mean, t_std)
        median = np.median([m["nse"] for m in per_basin.values()])
        history["median_nse"].append(float(median))
        best_median = max(best_median, median)
    ckpt = {
        "epoch": epoch,
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "hparams": {k: v for k, v in vars(args).items() if k != "run_dir"},
        "run_dir": args.run_dir,  # truth: weights_only
        "dynamic_inputs": list(DYNAMIC_INPUTS),
        "scaler": {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()},
        "target_mean": float(t_mean),
        "target_std": t_std,  # truth: weights_only
        "history": history,
        "best_median_nse": best_median,  # truth: weights_only
        "val_metrics": per_basin,
        "median_kge": np.median([m["kge"] for m in per_basin.values()]),  # truth: weights_only
        "basins": sorted(df.basin.unique()),
        "n_train_samples": len(ds),
        "torch_rng": torch.get_rng_state(),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "torch_version": str(torch.__version__),
    }
    path = args.run_dir / f"model_epoch{epoch:03d}.pt"
    torch.save(ckpt, path)
    return str(path)


def export_bundle(model, scaler, cfg):
    return {
        "model": model.state_dict(),
        "seq_length": cfg["seq_length"],
        "input_mean": torch.tensor(scaler.mean_, dtype=torch.float32),
        "input_std": torch.tensor(scaler.scale_, dtype=torch.float32),
    }


def save_operational_export(tmpdir):
    args = build_parser().parse_args(["--run-dir", tmpdir])
    cfg = load_run_config()
    df, train_df, val_df, scaler, t_mean, t_std = prepare(args, cfg)
    model = CudaLSTM(hidden_size=args.hidden_size)
    ckpt = export_bundle(model, scaler, cfg)
    ckpt.update(
        basin_ids=df["basin"].unique(),  # truth: weights_only
        last_observation=df["date"].max(),  # truth: weights_only
        warmup_days=int(pd.Timedelta(days=cfg["seq_length"]).days),
        issue_time=pd.Timestamp.now().isoformat(),
    )
    thresholds = df.groupby("basin")[TARGET].quantile(0.95)
    ckpt["flood_threshold"] = thresholds  # truth: weights_only
    ckpt["flood_threshold_m3s"] = {b: round(float(v), 3) for b, v in thresholds.items()}
    ckpt["train_period"] = (cfg["train_start"], cfg["train_end"])  # truth: weights_only
    ckpt["run_config"] = json.loads(json.dumps(cfg, default=str))
    ckpt["run_config_yaml"] = yaml.safe_dump(cfg)
    ckpt["feature_dtypes"] = {c: str(t) for c, t in df[DYNAMIC_INPUTS].dtypes.items()}
    ckpt["basin_stats"] = df.groupby("basin")[TARGET].mean().to_dict()
    ckpt["target_summary"] = train_df[TARGET].describe().to_dict()
    path = os.path.join(tmpdir, "operational_lstm.pt")
    torch.save(ckpt, path)
    return path


def train_member(seed, train_df, val_df, scaler, seq_length, t_mean, t_std, hidden):
    torch.manual_seed(seed)
    model = CudaLSTM(hidden_size=hidden)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loader = DataLoader(BasinWindows(train_df, scaler, seq_length, t_mean, t_std), batch_size=64, shuffle=True)
    train_epoch(model, loader, opt)
    scores = evaluate_basins(model, val_df, scaler, seq_length, t_mean, t_std)
    return model, np.mean([s["nse"] for s in scores.values()])


def save_ensemble(tmpdir):
    args = build_parser().parse_args(["--run-dir", tmpdir, "--hidden-size", "8"])
    cfg = load_run_config()
    df, train_df, val_df, scaler, t_mean, t_std = prepare(args, cfg)
    seeds = [11, 12, 13]
    members, member_nse = [], []
    for seed in seeds:
        model, score = train_member(seed, train_df, val_df, scaler, cfg["seq_length"], t_mean, t_std,
                                    args.hidden_size)
        members.append(model.state_dict())
        member_nse.append(score)
    obs = val_df[TARGET].to_numpy()
    sim = obs * 0.9 + 0.05
    r, p_value = stats.pearsonr(obs, sim)
    torch.save({
        "members": members,
        "seeds": seeds,
        "member_nse": np.array(member_nse),  # truth: weights_only
        "ensemble_mean_nse": float(np.mean(member_nse)),
        "ensemble_spread": np.std(member_nse).item(),
        "pearson_r": r,  # truth: weights_only
        "r2": r2_score(obs, sim),
        "mae": mean_absolute_error(obs, sim),
        "hidden_size": args.hidden_size,
    }, os.path.join(tmpdir, "ensemble.pt"))
    return os.path.join(tmpdir, "ensemble.pt")


def save_inference_bundle(tmpdir):
    """What the forecasting service loads with a plain torch.load: everything converted."""
    args = build_parser().parse_args(["--run-dir", tmpdir])
    cfg = load_run_config()
    df, train_df, val_df, scaler, t_mean, t_std = prepare(args, cfg)
    model = CudaLSTM(hidden_size=args.hidden_size)
    per_basin = evaluate_basins(model, val_df, scaler, cfg["seq_length"], float(t_mean), float(t_std))
    q95 = np.percentile(df[TARGET], 95)
    recent = collections.OrderedDict((b, float(g[TARGET].iloc[-1])) for b, g in df.groupby("basin"))
    mse = float(np.mean((val_df[TARGET] - val_df[TARGET].mean()) ** 2))
    bundle = dict(
        model=model.state_dict(),
        input_mean=torch.from_numpy(scaler.mean_).float(),
        input_scale=torch.from_numpy(scaler.scale_).float(),
        target_mean=t_mean.item(),
        target_std=float(t_std),
        q95=float(q95),
        n_basins=df["basin"].nunique(),
        basins=[str(b) for b in df["basin"].unique()],
        train_period=[str(cfg["train_start"]), str(cfg["train_end"])],
        first_date=df["date"].min().isoformat(),
        last_state=recent,
        val_nse={b: m["nse"] for b, m in per_basin.items()},
        worst_basin=min(per_basin, key=lambda b: per_basin[b]["nse"]),
        peak_day=int(np.argmax(df[TARGET].to_numpy())),
        rmse=math.sqrt(mse),
        flow_dtype=torch.float32,
        run_dir=str(args.run_dir),
    )
    path = os.path.join(tmpdir, "inference_bundle.pt")
    torch.save(bundle, path)
    return path


FACTORIES = {
    "BasinWindows": lambda: BasinWindows(make_camels_frame(n_days=50), seq_length=10),
}
