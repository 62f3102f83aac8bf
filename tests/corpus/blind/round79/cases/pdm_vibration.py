"""Predictive maintenance from bearing vibration spectra.

Accelerometer windows -> Welch PSD -> log spectra -> a 1-D CNN with two heads: fault
class (healthy / inner race / outer race / ball) and remaining useful life.  A separate
autoencoder on healthy spectra gives an anomaly threshold.  Configs are dataclasses;
feature extraction is numpy/scipy/sklearn, as in the CWRU / PRONOSTIA notebooks.
"""
import dataclasses
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import signal, stats
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, mean_absolute_error
from sklearn.preprocessing import LabelEncoder, StandardScaler

FAULTS = ("healthy", "inner_race", "outer_race", "ball")
FAULT_HZ = {"healthy": 0.0, "inner_race": 162.0, "outer_race": 107.0, "ball": 141.0}


@dataclass
class SignalConfig:
    fs: int = 2048
    window: int = 512
    nperseg: int = 128
    band: tuple = (10.0, 900.0)
    filter_order: int = 4


@dataclass
class TrainConfig:
    signal: SignalConfig = field(default_factory=SignalConfig)
    channels: int = 16
    lr: float = 2e-3
    epochs: int = 2
    batch_size: int = 32
    rul_cap: int = 125
    anomaly_q: float = 0.995
    seed: int = 7


def simulate_run_to_failure(n_bearings=4, windows=24, cfg=None, seed=0):
    """Synthetic PRONOSTIA-like recordings: one row per window, with its raw signal."""
    cfg = cfg or SignalConfig()
    rng = np.random.default_rng(seed)
    t = np.arange(cfg.window) / cfg.fs
    rows = []
    start = pd.Timestamp("2024-03-01 08:00")
    for b in range(n_bearings):
        fault = FAULTS[b % len(FAULTS)]
        for w in range(windows):
            life = w / windows
            x = 0.3 * rng.standard_normal(cfg.window) + np.sin(2 * np.pi * 29.5 * t)
            if fault != "healthy":
                x += life * 1.5 * np.sin(2 * np.pi * FAULT_HZ[fault] * t)
            rows.append({"bearing": f"B{b + 1}", "fault": fault, "window": w,
                         "timestamp": start + pd.Timedelta(minutes=10 * w),
                         "rul": windows - w, "signal": x.astype(np.float32)})
    return pd.DataFrame(rows)


def bandpass(cfg):
    return signal.butter(cfg.filter_order, cfg.band, btype="bandpass", fs=cfg.fs)


def spectra(df, cfg):
    """Welch log-PSD per window; returns (freqs, X) with X of shape (n, bins)."""
    b, a = bandpass(cfg)
    feats = []
    freqs = None
    for x in df["signal"]:
        freqs, psd = signal.welch(signal.filtfilt(b, a, x), fs=cfg.fs, nperseg=cfg.nperseg)
        feats.append(np.log1p(psd))
    return freqs, np.stack(feats).astype(np.float32)


def time_features(df):
    sig = np.stack(df["signal"].to_list())
    return {
        "rms": np.sqrt((sig ** 2).mean(axis=1)),
        "kurtosis": stats.kurtosis(sig, axis=1),
        "crest": np.abs(sig).max(axis=1) / np.sqrt((sig ** 2).mean(axis=1)),
    }


class SpectrumCNN(nn.Module):
    def __init__(self, n_bins=65, channels=16, n_classes=4):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(1, channels, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(channels, channels, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(8))
        self.cls_head = nn.Linear(8 * channels, n_classes)
        self.rul_head = nn.Linear(8 * channels, 1)

    def forward(self, x):
        h = self.conv(x.unsqueeze(1)).flatten(1)
        return self.cls_head(h), self.rul_head(h).squeeze(-1)


class SpectrumAE(nn.Module):
    def __init__(self, n_bins=65, latent=8):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(n_bins, 32), nn.ReLU(), nn.Linear(32, latent))
        self.dec = nn.Sequential(nn.Linear(latent, 32), nn.ReLU(), nn.Linear(32, n_bins))

    def forward(self, x):
        return self.dec(self.enc(x))


class PdMTrainer:
    """Fits the preprocessing, then the CNN.  Helpers return tuples, as the notebooks do."""

    def __init__(self, cfg=None, df=None):
        self.cfg = cfg or TrainConfig()
        torch.manual_seed(self.cfg.seed)
        self.df = df if df is not None else simulate_run_to_failure(cfg=self.cfg.signal, seed=self.cfg.seed)
        self.encoder = LabelEncoder().fit(self.df["fault"])
        self.scaler = StandardScaler()
        self.freqs, X = spectra(self.df, self.cfg.signal)
        self.X = self.scaler.fit_transform(X).astype(np.float32)
        self.y = self.encoder.transform(self.df["fault"])
        self.rul = np.minimum(self.df["rul"].to_numpy(), self.cfg.rul_cap).astype(np.float32)
        self.model = SpectrumCNN(self.X.shape[1], self.cfg.channels, len(self.encoder.classes_))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.history = defaultdict(list)

    def fit(self):
        X, y, r = torch.from_numpy(self.X), torch.from_numpy(self.y).long(), torch.from_numpy(self.rul)
        for epoch in range(self.cfg.epochs):
            self.model.train()
            perm = torch.randperm(len(X))
            running = []
            for i in range(0, len(X), self.cfg.batch_size):
                idx = perm[i: i + self.cfg.batch_size]
                logits, rul = self.model(X[idx])
                loss = F.cross_entropy(logits, y[idx]) + 0.01 * F.mse_loss(rul, r[idx])
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                running.append(loss.item())
            self.history["loss"].append(np.mean(running))
            acc, f1, mae = self.evaluate()
            self.history["acc"].append(acc)
            self.history["macro_f1"].append(f1)
            self.history["rul_mae"].append(mae)
        return self.history

    @torch.no_grad()
    def evaluate(self):
        self.model.eval()
        logits, rul = self.model(torch.from_numpy(self.X))
        pred = logits.argmax(-1).numpy()
        return (accuracy_score(self.y, pred), f1_score(self.y, pred, average="macro"),
                mean_absolute_error(self.rul, rul.numpy()))

    @torch.no_grad()
    def confusion(self):
        logits, _ = self.model(torch.from_numpy(self.X))
        return confusion_matrix(self.y, logits.argmax(-1).numpy())

    def fit_anomaly_detector(self, latent=8, steps=30):
        healthy = torch.from_numpy(self.X[self.df["fault"].to_numpy() == "healthy"])
        ae = SpectrumAE(self.X.shape[1], latent)
        opt = torch.optim.Adam(ae.parameters(), lr=1e-2)
        for _ in range(steps):
            loss = F.mse_loss(ae(healthy), healthy)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            errors = ((ae(healthy) - healthy) ** 2).mean(dim=1).numpy()
        return ae, errors


FACTORIES = {
    "PdMTrainer": lambda: PdMTrainer(TrainConfig(epochs=1)),
}


def save_fault_classifier(tmpdir):
    cfg = TrainConfig()
    trainer = PdMTrainer(cfg)
    trainer.fit()
    acc, f1, mae = trainer.evaluate()
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "config": dataclasses.asdict(cfg),
        "cfg": cfg,  # truth: weights_only
        "classes": trainer.encoder.classes_.tolist(),
        "fault_classes": list(trainer.encoder.classes_),
        "accuracy": acc,
        "macro_f1": f1,
        "rul_mae": mae,
        "confusion": trainer.confusion().tolist(),
        "n_windows": len(trainer.df),
        "input_shape": trainer.X.shape,
        "input_dtype": trainer.X.dtype.name,
    }
    path = os.path.join(tmpdir, "fault_cnn.pt")
    torch.save(ckpt, path)
    return path


def save_preprocessing(tmpdir):
    cfg = TrainConfig()
    trainer = PdMTrainer(cfg)
    b, a = bandpass(cfg.signal)
    sos = signal.butter(cfg.signal.filter_order, cfg.signal.band, btype="bandpass", fs=cfg.signal.fs, output="sos")
    prep = {}
    prep["fs"] = cfg.signal.fs
    prep["nperseg"] = cfg.signal.nperseg
    prep["window"] = "hann"
    prep["freqs"] = trainer.freqs  # truth: weights_only
    prep["freqs_hz"] = torch.from_numpy(trainer.freqs).float()
    prep["bandpass"] = (b, a)  # truth: weights_only
    prep["bandpass_sos"] = torch.from_numpy(sos)
    prep["scaler"] = {
        "mean": trainer.scaler.mean_.tolist(),
        "scale": torch.tensor(trainer.scaler.scale_, dtype=torch.float32),
        "n_features": trainer.scaler.n_features_in_,
        "n_seen": trainer.scaler.n_samples_seen_,  # truth: weights_only
    }
    prep["sensor_dtype"] = trainer.X.dtype  # truth: weights_only
    path = os.path.join(tmpdir, "preprocessing.pt")
    torch.save(prep, path)
    return path


def save_anomaly_detector(tmpdir):
    cfg = TrainConfig()
    trainer = PdMTrainer(cfg)
    ae, errors = trainer.fit_anomaly_detector()
    q = cfg.anomaly_q
    ckpt = {
        "ae": ae.state_dict(),
        "quantile": q,
        "threshold": np.quantile(errors, q),  # truth: weights_only
        "threshold_f": float(np.quantile(errors, q)),
        "threshold_t": torch.quantile(torch.from_numpy(errors), q),
        "err_mean": errors.mean().item(),
        "err_max": math.fsum(errors) / len(errors),
        "n_healthy": int((trainer.df["fault"] == "healthy").sum()),
    }
    path = os.path.join(tmpdir, "anomaly_ae.pt")
    torch.save(ckpt, path)
    return path


def _bearing_summary(df, freqs, X):
    """Per-bearing RUL, last timestamp and dominant frequency of the last window."""
    last = df.groupby("bearing").tail(1)
    peak = freqs[np.argmax(X[last.index.to_numpy()], axis=1)]
    return last, peak


def save_fleet_health(tmpdir):
    cfg = TrainConfig()
    trainer = PdMTrainer(cfg)
    df = trainer.df
    last, peak = _bearing_summary(df, trainer.freqs, trainer.X)
    tf = time_features(df)
    report = {"run": "fleet-2024-03", "n_bearings": df["bearing"].nunique()}
    report.update(
        rul_cap=df["rul"].max(),  # truth: weights_only
        rul_cap_int=int(df["rul"].max()),
        last_rul=df.groupby("bearing")["rul"].min().to_dict(),
        last_seen=df["timestamp"].max(),  # truth: weights_only
        last_seen_iso=df["timestamp"].max().isoformat(),
        bearings=list(df["bearing"].unique()),
        peak_hz=peak[0],  # truth: weights_only
        peak_hz_all=[float(p) for p in peak],
        kurtosis_ref=stats.kurtosis(np.concatenate(df["signal"].to_list())),  # truth: weights_only
        rms_by_fault={f: float(tf["rms"][df["fault"].to_numpy() == f].mean()) for f in FAULTS},
        health_index=tf["crest"].reshape(len(df["bearing"].unique()), -1).mean(axis=1),  # truth: weights_only
        window_ids=last["window"].tolist(),
    )
    path = os.path.join(tmpdir, "fleet_health.pt")
    torch.save(report, path)
    return path


def save_training_curves(tmpdir):
    trainer = PdMTrainer(TrainConfig(epochs=2))
    history = trainer.fit()
    path = os.path.join(tmpdir, "curves.pt")
    torch.save(history, path)  # truth: weights_only
    return path


def save_rul_regressor_clean(tmpdir):
    cfg = TrainConfig(epochs=1, rul_cap=20)
    trainer = PdMTrainer(cfg)
    trainer.fit()
    acc, f1, mae = trainer.evaluate()
    curves = {k: [float(v) for v in vals] for k, vals in trainer.history.items()}
    ckpt = dict(
        model=trainer.model.state_dict(),
        rul_cap=cfg.rul_cap,
        rul_head_bias=trainer.model.rul_head.bias.detach().clone(),
        curves=curves,
        final_mae=mae,
        rmse=math.sqrt(mae),
        fault_hz=dict(FAULT_HZ),
        fs=cfg.signal.fs,
        band=list(cfg.signal.band),
        classes=trainer.encoder.classes_.tolist(),
        label_counts=trainer.df["fault"].value_counts().to_dict(),
        seed=cfg.seed,
    )
    path = os.path.join(tmpdir, "rul_clean.pt")
    torch.save(ckpt, path)
    return path
