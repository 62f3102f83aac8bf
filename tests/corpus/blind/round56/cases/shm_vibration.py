"""Structural health monitoring: accelerometers on a bridge deck, damage detection from vibration.

A YAML/OmegaConf config drives the pipeline: band-pass filtering, Welch spectra, modal peak picking,
a registry of feature extractors, and a 1-D conv autoencoder whose reconstruction error flags
anomalies against a threshold fitted on the healthy baseline.
"""
import os
import random
import statistics
from collections import OrderedDict

import numpy as np
import scipy.signal as ss
import torch
import torch.nn as nn
from omegaconf import OmegaConf

CONFIG_YAML = """
sampling:
  fs: 200
  window_s: 10.24
  overlap: 0.5
filter:
  order: 4
  band: [0.5, 40.0]
sensors: [A1, A2, A3, A4, A5, A6]
features: [rms, kurtosis, crest, spectral_centroid, band_energy]
model:
  channels: [16, 32]
  kernel: 7
  latent: 8
train:
  lr: 0.002
  epochs: 3
  batch: 16
  threshold_quantile: 99.0
"""

FEATURES = {}


def feature(name):
    def deco(fn):
        FEATURES[name] = fn
        return fn
    return deco


@feature("rms")
def rms(x, fs):
    return np.sqrt(np.mean(x ** 2, axis=-1))


@feature("kurtosis")
def kurtosis(x, fs):
    z = (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-9)
    return (z ** 4).mean(-1)


@feature("crest")
def crest(x, fs):
    return np.abs(x).max(-1) / (rms(x, fs) + 1e-9)


@feature("spectral_centroid")
def spectral_centroid(x, fs):
    f, P = ss.welch(x, fs=fs, nperseg=256, axis=-1)
    return (P * f).sum(-1) / P.sum(-1)


@feature("band_energy")
def band_energy(x, fs):
    f, P = ss.welch(x, fs=fs, nperseg=256, axis=-1)
    return P[..., (f > 2) & (f < 8)].sum(-1)


def load_config(overrides=()):
    cfg = OmegaConf.create(CONFIG_YAML)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return cfg


def simulate_deck(cfg, n_windows=24, damage=0.0, seed=0):
    """Acceleration windows (windows, sensors, samples): three modes + noise; damage lowers mode 1."""
    rng = np.random.default_rng(seed)
    fs = cfg.sampling.fs
    n = int(cfg.sampling.window_s * fs)
    t = np.arange(n) / fs
    modes = np.array([2.9 * (1 - damage), 7.4, 13.1])
    out = np.empty((n_windows, len(cfg.sensors), n))
    for w in range(n_windows):
        for s in range(len(cfg.sensors)):
            amp = rng.uniform(0.5, 1.5, size=3) * np.sin(np.pi * (s + 1) / 7 * np.arange(1, 4))
            phase = rng.uniform(0, 2 * np.pi, size=3)
            sig = (amp[:, None] * np.sin(2 * np.pi * modes[:, None] * t + phase[:, None])).sum(0)
            out[w, s] = sig + rng.normal(0, 0.3, n)
    return out


def bandpass(x, cfg):
    sos = ss.butter(cfg.filter.order, list(cfg.filter.band), btype="band", fs=cfg.sampling.fs, output="sos")
    return ss.sosfiltfilt(sos, x, axis=-1), sos


def pick_modes(x, fs, n_modes=3):
    f, P = ss.welch(x, fs=fs, nperseg=512, axis=-1)
    avg = P.mean(axis=tuple(range(P.ndim - 1)))
    peaks, props = ss.find_peaks(avg, prominence=avg.max() * 0.02)
    order = np.argsort(props["prominences"])[::-1][:n_modes]
    chosen = np.sort(peaks[order])
    return f[chosen], avg[chosen]


def extract_features(x, cfg):
    cols = [FEATURES[name](x, cfg.sampling.fs) for name in cfg.features]
    return np.stack(cols, axis=-1)  # windows, sensors, features


class ConvAE(nn.Module):
    def __init__(self, n_sensors=6, channels=(16, 32), kernel=7, latent=8):
        super().__init__()
        c1, c2 = channels
        self.enc = nn.Sequential(
            nn.Conv1d(n_sensors, c1, kernel, stride=2, padding=kernel // 2), nn.GELU(),
            nn.Conv1d(c1, c2, kernel, stride=2, padding=kernel // 2), nn.GELU(),
            nn.Conv1d(c2, latent, 1),
        )
        self.dec = nn.Sequential(
            nn.ConvTranspose1d(latent, c2, 4, stride=2, padding=1), nn.GELU(),
            nn.ConvTranspose1d(c2, c1, 4, stride=2, padding=1), nn.GELU(),
            nn.Conv1d(c1, n_sensors, 1),
        )

    def forward(self, x):
        z = self.enc(x)
        return self.dec(z)[..., : x.shape[-1]]


def normalise(x):
    mu = x.mean(axis=(0, 2), keepdims=True)
    sd = x.std(axis=(0, 2), keepdims=True) + 1e-9
    return (x - mu) / sd, mu.squeeze(), sd.squeeze()


def train_autoencoder(cfg, x):
    torch.manual_seed(0)
    model = ConvAE(len(cfg.sensors), tuple(cfg.model.channels), cfg.model.kernel, cfg.model.latent)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.train.epochs)
    xt = torch.from_numpy(x[..., :512].astype(np.float32))
    log = OrderedDict()
    for epoch in range(cfg.train.epochs):
        perm = torch.randperm(len(xt))
        total = 0.0
        for i in range(0, len(xt), cfg.train.batch):
            xb = xt[perm[i:i + cfg.train.batch]]
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(xb), xb)
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        sched.step()
        log[epoch] = total / len(xt)
    return model, opt, sched, log


def reconstruction_errors(model, x):
    with torch.no_grad():
        xt = torch.from_numpy(x[..., :512].astype(np.float32))
        err = ((model(xt) - xt) ** 2).mean(dim=(1, 2))
    return err.numpy()


def save_baseline_autoencoder(tmpdir):
    cfg = load_config()
    raw = simulate_deck(cfg, n_windows=20)
    filt, sos = bandpass(raw, cfg)
    xn, mu, sd = normalise(filt)
    model, opt, sched, log = train_autoencoder(cfg, xn)
    err = reconstruction_errors(model, xn)
    thr = np.percentile(err, cfg.train.threshold_quantile)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch_loss": log,
        "config": cfg,  # truth: weights_only
        "config_plain": OmegaConf.to_container(cfg, resolve=True),
        "sensors": cfg.sensors,  # truth: weights_only
        "sensor_names": list(cfg.sensors),
        "fs": cfg.sampling.fs,
        "band": tuple(cfg.filter.band),
        "sos": sos,  # truth: weights_only
        "norm": {"mu": torch.from_numpy(mu), "sd": torch.from_numpy(sd)},
        "threshold": thr,  # truth: weights_only
        "threshold_f": float(thr),
        "baseline_err_median": statistics.median(err.tolist()),
        "baseline_err_max": round(float(err.max()), 5),
    }
    path = os.path.join(tmpdir, "ae_baseline.pt")
    torch.save(ckpt, path)
    return path


def modal_report(cfg, healthy, damaged):
    f_h, a_h = pick_modes(healthy, cfg.sampling.fs)
    f_d, a_d = pick_modes(damaged, cfg.sampling.fs)
    shift = (f_d - f_h) / f_h * 100.0
    return f_h, f_d, shift


def save_modal_tracking(tmpdir):
    """Tracks natural frequencies of the deck between a healthy and a damaged campaign."""
    cfg = load_config(["sampling.window_s=20.48"])
    healthy = simulate_deck(cfg, n_windows=6, seed=1)
    damaged = simulate_deck(cfg, n_windows=6, damage=0.08, seed=2)
    f_h, f_d, shift = modal_report(cfg, healthy, damaged)
    worst = int(np.argmax(np.abs(shift)))
    ckpt = {
        "campaign": {"healthy": "2023-09", "damaged": "2024-02"},
        "freq_healthy": f_h.round(3).tolist(),
        "freq_damaged": f_d,  # truth: weights_only
        "shift_pct": [round(float(s), 3) for s in shift],
        "worst_mode": worst,
        "worst_shift": round(shift[worst], 3),  # truth: weights_only
        "first_mode_hz": round(float(f_h[0]), 3),
        "damage_flag": bool(abs(shift[worst]) > 2.0),
        "max_abs_shift": float(np.abs(shift).max()),
        "n_windows": round(healthy.shape[0] * 1.0),
        "window_s": cfg.sampling.window_s,
    }
    path = os.path.join(tmpdir, "modal.pt")
    torch.save(ckpt, path)
    return path


class DamageDetector:
    """Feature-space detector: Mahalanobis distance to the healthy cloud, per sensor."""

    def __init__(self, cfg=None):
        self.cfg = cfg if cfg is not None else load_config()
        self.mean = None
        self.cov_inv = None
        self.limits = {}
        self.alarms = 0

    def fit(self, feats):
        flat = feats.reshape(-1, feats.shape[-1])
        self.mean = flat.mean(0)
        self.cov_inv = np.linalg.pinv(np.cov(flat, rowvar=False))
        d = self.distance(feats)
        for s, name in enumerate(self.cfg.sensors):
            self.limits[name] = float(np.quantile(d[:, s], 0.99))
        return self

    def distance(self, feats):
        diff = feats - self.mean
        return np.sqrt(np.einsum("...i,ij,...j->...", diff, self.cov_inv, diff))

    def score(self, feats):
        d = self.distance(feats)
        flags = {}
        for s, name in enumerate(self.cfg.sensors):
            flags[name] = int((d[:, s] > self.limits[name]).sum())
        self.alarms += sum(flags.values())
        return flags, d.mean()

    def export(self):
        return {"mean": torch.tensor(self.mean), "cov_inv": torch.tensor(self.cov_inv),
                "limits": dict(self.limits)}


def save_detector_state(tmpdir):
    cfg = load_config()
    healthy = bandpass(simulate_deck(cfg, n_windows=16, seed=3), cfg)[0]
    damaged = bandpass(simulate_deck(cfg, n_windows=8, damage=0.15, seed=4), cfg)[0]
    det = DamageDetector(cfg).fit(extract_features(healthy, cfg))
    flags, mean_d = det.score(extract_features(damaged, cfg))
    np_state = np.random.RandomState(7).get_state()
    random.seed(7)
    ckpt = dict(
        detector=det.export(),
        flags=flags,
        mean_distance=mean_d,  # truth: weights_only
        alarms=det.alarms,
        feature_names=[str(f) for f in cfg.features],
        registry=sorted(FEATURES),
        rng_numpy=np_state,  # truth: weights_only
        rng_python=random.getstate(),
        rng_torch=torch.get_rng_state(),
    )
    path = os.path.join(tmpdir, "detector.pt")
    torch.save(ckpt, path)
    return path


def save_streaming_monitor(tmpdir):
    """Online monitor state: running feature stats per sensor over the last hour."""
    cfg = load_config()
    x = simulate_deck(cfg, n_windows=10, seed=9)
    feats = extract_features(x, cfg)
    state = {"sensors": {}, "windows_seen": int(feats.shape[0])}
    for s, name in enumerate(cfg.sensors):
        col = feats[:, s, :]
        state["sensors"][name] = {
            "mean": col.mean(0).tolist(),
            "max_rms": float(col[:, 0].max()),
            "kurtosis_last": col[-1, 1].item(),
        }
    state["channel_window"] = (0, feats.shape[1])
    state["rms_trend"] = np.polyfit(np.arange(len(feats)), feats[:, :, 0].mean(1), 1)  # truth: weights_only
    state["peak_window"] = int(feats[:, :, 0].mean(1).argmax())
    state["feature_dim"] = torch.Size(feats.shape[1:])
    state["dtype"] = str(feats.dtype)
    path = os.path.join(tmpdir, "monitor.pt")
    torch.save(state, path)
    return path


FACTORIES = {
    "ConvAE": lambda: ConvAE(6, (8, 16), 5, 4),
}
