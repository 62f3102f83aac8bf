"""Battery prognostics: state of health (SOH) and remaining useful life (RUL) from cycling data.

Cycle tables follow the usual lab export: one row per (cell, cycle) with discharge capacity,
internal resistance, max temperature and charge time. Features are computed per cell with
pandas; SOH is fitted by a small MLP, RUL by a ridge model on early-life features.
"""
from __future__ import annotations

import math
import statistics
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml
from omegaconf import DictConfig, OmegaConf
from scipy import stats
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.preprocessing import StandardScaler

CONFIG_YAML = """
cell:
  nominal_ah: 2.0
  chemistry: NMC
  n_cells: 8
  max_cycles: 240
eol:
  soh_threshold: 0.8
features:
  window: 5
  early_cycles: 30
  columns: [capacity_ah, ir_mohm, temp_max_c, charge_time_s, dq_from_start, ir_rise, cap_roll]
split:
  val_frac: 0.25
  seed: 7
model:
  hidden: 32
  epochs: 40
  lr: 0.003
ridge:
  alpha: 1.0
paths:
  data: data/cycles
  runs: runs/soh
"""


def load_config(overrides=()):
    base = OmegaConf.create(yaml.safe_load(CONFIG_YAML))
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


def simulate_cycles(cfg: DictConfig) -> pd.DataFrame:
    """Synthetic stand-in for the lab export (same columns, same per-cell fade shape)."""
    rng = np.random.default_rng(cfg.split.seed)
    rows = []
    start = pd.Timestamp("2023-03-01 08:00")
    for i in range(cfg.cell.n_cells):
        cell = f"B{i + 5:04d}"
        knee = rng.uniform(120, 200)
        lin = rng.uniform(2e-4, 5e-4)
        q0 = cfg.cell.nominal_ah * rng.uniform(0.98, 1.02)
        for n in range(1, cfg.cell.max_cycles + 1):
            fade = lin * n + 0.02 * np.exp((n - knee) / 25.0)
            rows.append({
                "cell_id": cell,
                "cycle": n,
                "timestamp": start + pd.Timedelta(hours=2.5 * n + 400 * i),
                "capacity_ah": q0 * (1.0 - fade) + rng.normal(0, 0.003),
                "ir_mohm": 18.0 + 0.01 * n + 4.0 * fade + rng.normal(0, 0.05),
                "temp_max_c": 31.0 + 6.0 * fade + rng.normal(0, 0.3),
                "charge_time_s": 3600.0 * (1.0 - 0.5 * fade) + rng.normal(0, 20),
            })
    return pd.DataFrame(rows)


def engineer_features(df: pd.DataFrame, cfg: DictConfig) -> pd.DataFrame:
    df = df.sort_values(["cell_id", "cycle"]).reset_index(drop=True)
    g = df.groupby("cell_id")
    df["soh"] = df["capacity_ah"] / cfg.cell.nominal_ah
    df["cap_roll"] = g["capacity_ah"].transform(lambda s: s.rolling(cfg.features.window, min_periods=1).mean())
    df["dq_from_start"] = df["capacity_ah"] - g["capacity_ah"].transform("first")
    df["ir_rise"] = df["ir_mohm"] - g["ir_mohm"].transform("first")
    return df


def label_rul(df: pd.DataFrame, cfg: DictConfig):
    below = df[df["soh"] < cfg.eol.soh_threshold]
    eol = below.groupby("cell_id")["cycle"].min()
    eol = eol.reindex(df["cell_id"].unique(), fill_value=cfg.cell.max_cycles)
    df = df.assign(eol_cycle=df["cell_id"].map(eol))
    df["rul"] = (df["eol_cycle"] - df["cycle"]).clip(lower=0)
    return df, eol


def split_by_cell(df: pd.DataFrame, cfg: DictConfig):
    rng = np.random.default_rng(cfg.split.seed)
    cells = df["cell_id"].unique()
    n_val = max(1, int(round(len(cells) * cfg.split.val_frac)))
    val_cells = rng.choice(cells, n_val, replace=False)
    train_cells = [c for c in cells if c not in set(val_cells)]
    mask = df["cell_id"].isin(val_cells)
    return df[~mask], df[mask], train_cells, val_cells


def early_life_features(df: pd.DataFrame, cfg: DictConfig) -> pd.DataFrame:
    """Severson-style features from the first `early_cycles` cycles of each cell."""
    early = df[df["cycle"] <= cfg.features.early_cycles]
    out = early.groupby("cell_id").agg(
        q_first=("capacity_ah", "first"),
        q_last=("capacity_ah", "last"),
        ir_mean=("ir_mohm", "mean"),
        temp_max=("temp_max_c", "max"),
        ct_mean=("charge_time_s", "mean"),
    )
    out["dq"] = out["q_last"] - out["q_first"]
    out["log_var_dq"] = np.log(early.groupby("cell_id")["dq_from_start"].var() + 1e-9)
    return out


def knee_point(soh: np.ndarray) -> int:
    """Cycle index of maximum curvature of the (smoothed) SOH curve."""
    smooth = np.convolve(soh, np.ones(5) / 5, mode="valid")
    curvature = np.abs(np.diff(smooth, n=2))
    return int(np.argmax(curvature)) + 3


class FeaturePipeline:
    def __init__(self, columns=("capacity_ah", "ir_mohm"), window=5):
        self.requested = list(columns)
        self.window = window
        self.scaler = StandardScaler()
        self.columns = None

    def fit(self, df):
        frame = df[self.requested].dropna(axis=1, how="all")
        self.columns = frame.columns
        self.scaler.fit(frame.to_numpy(dtype=np.float64))
        return self

    def transform(self, df):
        return torch.tensor(self.scaler.transform(df[self.columns].to_numpy(dtype=np.float64)), dtype=torch.float32)

    def state(self):
        return {
            "columns": [str(c) for c in self.columns],
            "mean": self.scaler.mean_.tolist(),
            "scale": self.scaler.scale_.tolist(),
            "window": self.window,
        }


class SOHNet(nn.Module):
    def __init__(self, n_features=7, hidden=32):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                  nn.Linear(hidden, 1))

    def forward(self, x):
        return self.body(x).squeeze(-1)


def train_soh(pipe, train_df, val_df, cfg):
    torch.manual_seed(cfg.split.seed)
    X, y = pipe.transform(train_df), torch.tensor(train_df["soh"].to_numpy(), dtype=torch.float32)
    Xv, yv = pipe.transform(val_df), val_df["soh"].to_numpy()
    net = SOHNet(X.shape[1], cfg.model.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.model.lr)
    history = []
    for epoch in range(cfg.model.epochs):
        net.train()
        loss = nn.functional.mse_loss(net(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            pred = net.eval()(Xv).numpy()
        history.append({"epoch": epoch, "train_mse": loss.item(), "val_rmse": math.sqrt(mean_squared_error(yv, pred))})
    return net, opt, history


def prepare(overrides=()):
    cfg = load_config(overrides)
    df, eol = label_rul(engineer_features(simulate_cycles(cfg), cfg), cfg)
    return cfg, df, eol


def save_soh_model(tmpdir):
    cfg, df, _ = prepare(["model.epochs=25"])
    train_df, val_df, train_cells, val_cells = split_by_cell(df, cfg)
    pipe = FeaturePipeline(cfg.features.columns, cfg.features.window).fit(train_df)
    net, opt, history = train_soh(pipe, train_df, val_df, cfg)
    ckpt = {
        "cfg": cfg,  # truth: weights_only
        "cfg_resolved": OmegaConf.to_container(cfg, resolve=True),
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),
        "feature_names": list(pipe.columns),
        "scaler_mean": pipe.scaler.mean_,  # truth: weights_only
        "scaler_scale": pipe.scaler.scale_.tolist(),
        "n_train_rows": pipe.scaler.n_samples_seen_,  # truth: weights_only
        "n_features": pipe.scaler.n_features_in_,
        "nominal_ah": cfg.cell.nominal_ah,
        "history": history,
        "best_val_rmse": min(h["val_rmse"] for h in history),
    }
    path = Path(tmpdir) / "soh_mlp.pt"
    torch.save(ckpt, path)
    return str(path)


def save_rul_regressor(tmpdir):
    cfg, df, eol = prepare()
    feats = early_life_features(df, cfg)
    target = np.log(eol.loc[feats.index].astype(float))
    ridge = Ridge(alpha=cfg.ridge.alpha).fit(feats.to_numpy(), target.to_numpy())
    pred_cycles = np.exp(ridge.predict(feats.to_numpy()))
    abs_err = np.abs(pred_cycles - eol.loc[feats.index].to_numpy())
    metrics = {
        "mae_cycles": mean_absolute_error(eol.loc[feats.index], pred_cycles),
        "r2_log": r2_score(target, ridge.predict(feats.to_numpy())),
        "p90_abs_err": np.percentile(abs_err, 90),  # truth: weights_only
        "worst_cell": feats.index[int(abs_err.argmax())],
    }
    ckpt = {
        "estimator": ridge,  # truth: weights_only
        "coef": torch.from_numpy(ridge.coef_).float(),
        "intercept": ridge.intercept_,  # truth: weights_only
        "alpha": ridge.alpha,
        "feature_names": feats.columns.tolist(),
        "eol_by_cell": eol.to_dict(),
        "eol_threshold": cfg.eol.soh_threshold,
    }
    ckpt["metrics"] = metrics
    path = f"{tmpdir}/rul_ridge.pt"
    torch.save(ckpt, path)
    return path


def save_cycle_summary(tmpdir):
    cfg, df, eol = prepare()
    summary = {}
    summary["cells"] = df["cell_id"].unique()  # truth: weights_only
    summary["n_cells"] = df["cell_id"].nunique()
    summary["n_rows"] = len(df)
    summary["first_test_start"] = df["timestamp"].min()  # truth: weights_only
    summary["last_test_end"] = df["timestamp"].max().isoformat()
    summary["max_temp_c"] = float(df["temp_max_c"].max())
    summary["rows_per_cell"] = df.groupby("cell_id").size().to_dict()
    summary["describe"] = df[["capacity_ah", "ir_mohm", "temp_max_c"]].describe().to_dict()
    fleet = df.groupby("cycle")["soh"].mean()
    summary["fade_poly"] = np.polyfit(fleet.index.to_numpy(), fleet.to_numpy(), deg=2)  # truth: weights_only
    fit = stats.linregress(fleet.index[:100], fleet.to_numpy()[:100])
    summary["early_fade"] = fit  # truth: weights_only
    summary["early_fade_per_100"] = float(fit.slope) * 100
    summary["early_fade_r2"] = float(fit.rvalue) ** 2
    knees = {}
    for cell, part in df.groupby("cell_id"):
        knees[cell] = knee_point(part["soh"].to_numpy())
    summary["knee_cycle"] = knees
    summary["eol_median"] = statistics.median(eol.tolist())
    path = f"{tmpdir}/cycle_summary.pt"
    torch.save(summary, path)
    return path


def save_feature_pipeline(tmpdir):
    cfg, df, _ = prepare(["split.seed=11"])
    train_df, val_df, train_cells, val_cells = split_by_cell(df, cfg)
    pipe = FeaturePipeline(cfg.features.columns, cfg.features.window).fit(train_df)
    soh_val = val_df["soh"].to_numpy()
    ckpt = {"pipeline": pipe.state(), "window": cfg.features.window}
    ckpt.update(
        columns=pipe.columns,  # truth: weights_only
        train_cells=sorted(train_cells),
        val_cells=list(val_cells),
        data_dir=Path(cfg.paths.data),  # truth: weights_only
        runs_dir=str(Path(cfg.paths.runs) / "features"),
        created=datetime.now().isoformat(timespec="seconds"),
    )
    ckpt["val_soh_mean"] = statistics.mean(soh_val)  # truth: weights_only
    ckpt["val_soh_std"] = statistics.pstdev(soh_val)
    ckpt["val_soh_fmean"] = statistics.fmean(soh_val)
    path = f"{tmpdir}/feature_pipeline.pt"
    torch.save(ckpt, path)
    return path


def save_soh_inference_bundle(tmpdir):
    cfg, df, _ = prepare(["model.epochs=5"])
    train_df, val_df, _, _ = split_by_cell(df, cfg)
    pipe = FeaturePipeline(cfg.features.columns).fit(train_df)
    net, _, history = train_soh(pipe, train_df, val_df, cfg)
    last = df.sort_values("cycle").groupby("cell_id").tail(1)
    bundle = {
        "weights": net.state_dict(),
        "input_columns": [str(c) for c in pipe.columns],
        "input_mean": torch.tensor(pipe.scaler.mean_, dtype=torch.float32),
        "input_std": torch.tensor(pipe.scaler.scale_, dtype=torch.float32),
        "eol_soh": float(cfg.eol.soh_threshold),
        "nominal_ah": float(df["capacity_ah"].iloc[0] / df["soh"].iloc[0]),
        "final_val_rmse": history[-1]["val_rmse"],
        "last_soh_by_cell": dict(zip(last["cell_id"], last["soh"].round(4).tolist())),
        "chemistry": cfg.cell.chemistry,
        "units": {"capacity": "Ah", "ir": "mOhm", "temp": "degC"},
    }
    path = f"{tmpdir}/soh_bundle.pt"
    torch.save(bundle, path)
    return path
