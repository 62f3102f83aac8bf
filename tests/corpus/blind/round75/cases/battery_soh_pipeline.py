"""Battery state-of-health (SoH) estimation from cycling summaries.

Config: a structured OmegaConf config (dataclasses below) merged with the YAML of the experiment and
dot-list overrides, e.g. ``train.lr=1e-3 cell.chemistry=LFP``. Per-cycle features come from a small
registry (capacity, internal resistance, temperature, constant-current charge time, ...); a sliding
window of them feeds an MLP regressor for SoH = capacity / nominal capacity. Degradation analysis
(linear fade, power-law fit, knee point, end-of-life cycle) is stored next to the model.
"""
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from scipy import optimize, stats
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, WhiteKernel
from sklearn.preprocessing import MinMaxScaler
from torch import nn


class Chemistry(str, Enum):
    NMC = "nmc"
    LFP = "lfp"
    LCO = "lco"


@dataclass
class CellSpec:
    chemistry: Chemistry = Chemistry.NMC
    nominal_capacity_ah: float = 2.0
    eol_fraction: float = 0.8


@dataclass
class ModelSpec:
    hidden: int = 32
    layers: int = 2
    dropout: float = 0.1


@dataclass
class TrainSpec:
    lr: float = 3e-3
    epochs: int = 3
    batch_size: int = 64
    window: int = 8
    seed: int = 0
    val_cells: list = field(default_factory=lambda: ["B0018"])


@dataclass
class SoHConfig:
    cell: CellSpec = field(default_factory=CellSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    features: list = field(default_factory=lambda: ["capacity_ah", "ir_mohm", "temp_mean", "cc_time_s"])
    run_name: str = "soh-${cell.chemistry}"


EXPERIMENT_YAML = """
train:
  lr: 0.004
  epochs: 3
features: [capacity_ah, ir_mohm, temp_mean, cc_time_s, capacity_slope]
"""


def load_config(overrides=()):
    base = OmegaConf.structured(SoHConfig)
    exp = OmegaConf.create(EXPERIMENT_YAML)
    return OmegaConf.merge(base, exp, OmegaConf.from_dotlist(list(overrides)))


# ---------------------------------------------------------------- feature registry

FEATURE_REGISTRY = {}


def register_feature(name):
    def wrap(fn):
        FEATURE_REGISTRY[name] = fn
        return fn
    return wrap


@register_feature("capacity_ah")
def capacity(window):
    return window["capacity_ah"].iloc[-1]


@register_feature("ir_mohm")
def internal_resistance(window):
    return window["ir_mohm"].mean()


@register_feature("temp_mean")
def temperature(window):
    return float(window["temp_c"].mean())


@register_feature("cc_time_s")
def cc_charge_time(window):
    return window["cc_time_s"].median()


@register_feature("capacity_slope")
def capacity_slope(window):
    return np.polyfit(window["cycle"], window["capacity_ah"], 1)[0]


def simulate_cells(cells=("B0005", "B0006", "B0007", "B0018"), n_cycles=120, nominal=2.0, seed=0):
    """Synthetic cycling summaries with a power-law fade and a late knee."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, cell in enumerate(cells):
        cyc = np.arange(1, n_cycles + 1)
        fade = 0.0015 * (1 + 0.2 * k) * cyc ** 0.9 + 0.25 * np.clip(cyc - 90 - 5 * k, 0, None) / n_cycles
        cap = nominal * (1 - fade) + rng.normal(0, 0.004, n_cycles)
        frames.append(pd.DataFrame({
            "cell_id": cell,
            "cycle": cyc,
            "capacity_ah": cap,
            "ir_mohm": 45 + 30 * fade + rng.normal(0, 0.5, n_cycles),
            "temp_c": 24 + 4 * rng.random(n_cycles),
            "cc_time_s": 3600 * cap / nominal + rng.normal(0, 20, n_cycles),
            "timestamp": pd.Timestamp("2023-03-01") + pd.to_timedelta(cyc * 5.5, unit="h"),
        }))
    df = pd.concat(frames, ignore_index=True)
    df["soh"] = df["capacity_ah"] / nominal
    return df


def window_features(df, names, window):
    rows, targets = [], []
    for _, cell in df.groupby("cell_id"):
        cell = cell.sort_values("cycle")
        for end in range(window, len(cell) + 1):
            win = cell.iloc[end - window:end]
            rows.append([FEATURE_REGISTRY[n](win) for n in names])
            targets.append(win["soh"].iloc[-1])
    return np.asarray(rows, dtype=np.float32), np.asarray(targets, dtype=np.float32)


class SoHRegressor(nn.Module):
    def __init__(self, n_inputs=4, hidden=32, layers=2, dropout=0.1):
        super().__init__()
        dims = [n_inputs] + [hidden] * layers
        blocks = []
        for a, b in zip(dims[:-1], dims[1:]):
            blocks += [nn.Linear(a, b), nn.SiLU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*blocks)
        self.out = nn.Linear(dims[-1], 1)

    def forward(self, x):
        return self.out(self.body(x)).squeeze(-1)


class SoHTrainer:
    def __init__(self, cfg, n_inputs):
        torch.manual_seed(cfg.train.seed)
        self.cfg = cfg
        self.model = SoHRegressor(n_inputs, cfg.model.hidden, cfg.model.layers, cfg.model.dropout)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.train.lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=0.5, patience=2)
        self.scaler = MinMaxScaler()
        self.log = []

    def _batches(self, X, y, shuffle):
        idx = np.random.permutation(len(X)) if shuffle else np.arange(len(X))
        for i in range(0, len(X), self.cfg.train.batch_size):
            j = idx[i:i + self.cfg.train.batch_size]
            yield torch.from_numpy(X[j]), torch.from_numpy(y[j])

    def validate(self, X, y):
        self.model.eval()
        with torch.no_grad():
            pred = self.model(torch.from_numpy(X)).numpy()
        err = pred - y
        return np.sqrt(np.mean(err ** 2)), np.abs(err).mean()

    def fit(self, X_tr, y_tr, X_va, y_va):
        X_tr = self.scaler.fit_transform(X_tr).astype(np.float32)
        X_va = self.scaler.transform(X_va).astype(np.float32)
        best_rmse, best_epoch = math.inf, -1
        for epoch in range(self.cfg.train.epochs):
            self.model.train()
            for xb, yb in self._batches(X_tr, y_tr, shuffle=True):
                loss = nn.functional.mse_loss(self.model(xb), yb)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
            rmse, mae = self.validate(X_va, y_va)
            self.scheduler.step(rmse)
            self.log.append({"epoch": epoch, "rmse": float(rmse), "mae": float(mae),
                             "lr": self.optimizer.param_groups[0]["lr"]})
            if rmse < best_rmse:
                best_rmse, best_epoch = rmse, epoch
        return best_rmse, best_epoch


def run_training(overrides=()):
    cfg = load_config(overrides)
    np.random.seed(cfg.train.seed)
    df = simulate_cells(nominal=cfg.cell.nominal_capacity_ah, seed=cfg.train.seed)
    val = df["cell_id"].isin(list(cfg.train.val_cells))
    X_tr, y_tr = window_features(df[~val], cfg.features, cfg.train.window)
    X_va, y_va = window_features(df[val], cfg.features, cfg.train.window)
    trainer = SoHTrainer(cfg, X_tr.shape[1])
    best_rmse, best_epoch = trainer.fit(X_tr, y_tr, X_va, y_va)
    return cfg, df, trainer, best_rmse, best_epoch


# ---------------------------------------------------------------- degradation analysis

def fit_linear_fade(cell):
    return stats.linregress(cell["cycle"], cell["soh"])


def power_law(n, a, b):
    return 1.0 - a * n ** b


def fit_power_law(cell):
    popt, pcov = optimize.curve_fit(power_law, cell["cycle"].to_numpy(float), cell["soh"].to_numpy(),
                                    p0=[1e-3, 1.0], maxfev=5000)
    return popt, np.sqrt(np.diag(pcov))


def knee_point(soh, smooth=9):
    s = np.convolve(soh, np.ones(smooth) / smooth, mode="valid")
    curvature = np.gradient(np.gradient(s))
    return np.argmin(curvature) + smooth // 2


def end_of_life(cell, eol_fraction):
    s = cell.set_index("cycle")["soh"]
    below = s[s < eol_fraction]
    return below.index[0] if len(below) else None


# ---------------------------------------------------------------- checkpoints

def save_soh_checkpoint(tmpdir):
    cfg, df, trainer, best_rmse, best_epoch = run_training(["train.epochs=3"])
    ckpt = dict(
        model=trainer.model.state_dict(),
        optimizer=trainer.optimizer.state_dict(),
        scheduler=trainer.scheduler.state_dict(),
        config=cfg,  # truth: weights_only
        config_yaml=OmegaConf.to_yaml(cfg),
        config_dict=OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        features=list(cfg.features),
        window=cfg.train.window,
    )
    ckpt["chemistry"] = cfg.cell.chemistry  # truth: weights_only
    ckpt["chemistry_name"] = cfg.cell.chemistry.value
    ckpt["nominal_capacity_ah"] = cfg.cell.nominal_capacity_ah
    ckpt.update(best_rmse=best_rmse, best_epoch=best_epoch)  # truth: weights_only
    ckpt["scaler"] = {
        "min": trainer.scaler.data_min_,  # truth: weights_only
        "range": trainer.scaler.data_range_.tolist(),
        "feature_range": trainer.scaler.feature_range,
    }
    ckpt["log"] = trainer.log
    ckpt["last_lr"] = trainer.scheduler.get_last_lr()[0]
    path = os.path.join(tmpdir, f"{cfg.run_name}.ckpt")
    torch.save(ckpt, path)
    return path


def save_fade_fit(tmpdir):
    cfg = load_config()
    df = simulate_cells(n_cycles=160, nominal=cfg.cell.nominal_capacity_ah)
    cell = df[df["cell_id"] == "B0006"]
    lin = fit_linear_fade(cell)
    popt, perr = fit_power_law(cell)
    knee = knee_point(cell["soh"].to_numpy())
    fade = {
        "cell_id": "B0006",
        "linear": lin,  # truth: weights_only
        "slope_per_cycle": float(lin.slope),
        "intercept": lin.intercept.item(),
        "r2": lin.rvalue ** 2,  # truth: weights_only
        "power_law": {"a": popt[0].item(), "b": float(popt[1]), "stderr": perr.tolist()},
        "knee_cycle": int(cell["cycle"].iloc[knee]),
        "eol_cycle": end_of_life(cell, cfg.cell.eol_fraction),
        "cycles_observed": len(cell),
        "first_cycle": cell["soh"].idxmax(),
    }
    fade["knee_soh"] = round(float(cell["soh"].iloc[knee]), 4)
    fade["degraded"] = (cell["soh"] < 0.9).any()  # truth: weights_only
    path = os.path.join(tmpdir, "fade_fit_B0006.pt")
    torch.save(fade, path)
    return path


def save_cycle_history(tmpdir):
    df = simulate_cells(n_cycles=60)
    history = defaultdict(list)
    for cell_id, cell in df.groupby("cell_id"):
        history["cell_id"].append(cell_id)
        history["final_soh"].append(float(cell["soh"].iloc[-1]))
        history["cycles"].append(len(cell))
    path = os.path.join(tmpdir, "cycle_history.pt")
    torch.save(history, path)  # truth: weights_only
    return path


def save_rul_snapshot(tmpdir):
    cfg = load_config(["cell.chemistry=LFP"])
    df = simulate_cells(n_cycles=100, seed=4)
    ts = df["timestamp"]
    names = list(cfg.features)
    last = df[df["cell_id"] == "B0005"].tail(cfg.train.window)
    snapshot = {
        "cells": sorted(df["cell_id"].unique()),
        "cycles_per_cell": df.groupby("cell_id").size().to_dict(),
        "last_cycle_at": ts.max(),  # truth: weights_only
        "last_cycle_iso": ts.max().isoformat(),
        "duration_h": (ts.max() - ts.min()).total_seconds() / 3600,
        "test_window": timedelta(hours=5.5 * cfg.train.window),  # truth: weights_only
        "mean_temp_c": df["temp_c"].mean(),  # truth: weights_only
        "features": {n: float(FEATURE_REGISTRY[n](last)) for n in names},
        "chemistry": str(cfg.cell.chemistry.value),
    }
    rul = {}
    for cell_id, cell in df.groupby("cell_id"):
        eol = end_of_life(cell, cfg.cell.eol_fraction)
        rul[cell_id] = -1 if eol is None else int(eol) - int(cell["cycle"].max())
    snapshot["rul_cycles"] = rul
    path = os.path.join(tmpdir, "rul_snapshot.pt")
    torch.save(snapshot, path)
    return path


def save_gp_baseline(tmpdir):
    df = simulate_cells(n_cycles=40, seed=2)
    cell = df[df["cell_id"] == "B0007"]
    X, y = cell[["cycle"]].to_numpy(float), cell["soh"].to_numpy()
    gp = GaussianProcessRegressor(RBF(length_scale=20.0) + WhiteKernel(1e-4), normalize_y=True).fit(X, y)
    mean, std = gp.predict(X, return_std=True)
    baseline = {
        "kernel": str(gp.kernel_),
        "theta": torch.from_numpy(gp.kernel_.theta),
        "log_marginal_likelihood": float(gp.log_marginal_likelihood_value_),
        "r2": gp.score(X, y),
        "mean_std": std.mean().item(),
        "pred_last": mean[-1].item(),
        "train_cycles": cell["cycle"].tolist(),
        "cfg": OmegaConf.to_container(load_config().model),
        "nominal": load_config().cell.nominal_capacity_ah,
    }
    path = os.path.join(tmpdir, "gp_baseline.pt")
    torch.save(baseline, path)
    return path


FACTORIES = {
    "SoHTrainer": lambda: SoHTrainer(load_config(), 5),
}
NOT_BUILT = {"Chemistry": "an Enum: its members are built by value, not by calling the class"}
