"""Earthquake early warning: deep phase picker (PhaseNet-like) + STA/LTA trigger + Pd magnitude.

Configuration is YAML read with OmegaConf (overrides as dotlist, Hydra style); models come from a
small registry.  Waveforms are synthetic 3-component traces with a P and an S arrival.
"""
import datetime
import math
import os
import statistics
from collections import deque

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import yaml
from omegaconf import OmegaConf
from scipy.signal import butter, find_peaks, sosfilt
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error

CONFIG_YAML = """
experiment: eew_picker
data:
  sampling_rate: 100
  window_sec: 12.0
  bandpass: [1.0, 20.0]
  components: [Z, N, E]
  stations: [CI.PAS, CI.USC, CI.SVD, CI.RIN]
model:
  name: phasenet_lite
  filters: [8, 16, 32]
  kernel: 7
  dropout: 0.1
train:
  lr: 0.001
  epochs: 2
  batch_size: 16
  label_sigma_sec: 0.1
picker:
  threshold: 0.3
  min_distance_sec: 1.0
trigger:
  sta_sec: 0.5
  lta_sec: 5.0
  trigger_on: 3.5
  trigger_off: 1.5
"""

CATALOG_YAML = """
catalog: SCSN
network: CI
start: 2023-06-01
end: 2023-06-30
min_magnitude: 2.5
"""

PHASES = ("P", "S", "N")
MODELS = {}


def register_model(name):
    def wrap(cls):
        MODELS[name] = cls
        return cls
    return wrap


def load_config(overrides=()):
    cfg = OmegaConf.create(CONFIG_YAML)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))


def build_model(model_cfg):
    kwargs = OmegaConf.to_container(model_cfg, resolve=True)
    return MODELS[kwargs.pop("name")](**kwargs)


@register_model("phasenet_lite")
class PhaseNetLite(nn.Module):
    def __init__(self, filters=(8, 16, 32), kernel=7, dropout=0.1, in_channels=3):
        super().__init__()
        chans = [in_channels, *filters]
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv1d(a, b, kernel, padding=kernel // 2), nn.BatchNorm1d(b), nn.ReLU())
            for a, b in zip(chans[:-1], chans[1:]))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv1d(b + b, a if a != in_channels else filters[0], kernel, padding=kernel // 2),
                          nn.ReLU())
            for a, b in reversed(list(zip(chans[:-1], chans[1:]))))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Conv1d(filters[0], len(PHASES), 1)

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = block(torch.cat([x, skip], 1))
        return torch.softmax(self.out(self.drop(x)), dim=1)


def synth_waveforms(n, cfg, rng):
    sr = cfg.data.sampling_rate
    t = int(cfg.data.window_sec * sr)
    x = rng.normal(0, 0.05, (n, 3, t)).astype(np.float32)
    p_idx = rng.integers(int(2 * sr), int(5 * sr), n)
    s_idx = p_idx + rng.integers(int(1.5 * sr), int(4 * sr), n)
    for i in range(n):
        for onset, amp in ((p_idx[i], 0.6), (s_idx[i], 1.5)):
            k = np.arange(t - onset)
            x[i, :, onset:] += amp * np.exp(-k / (1.5 * sr)) * np.sin(2 * np.pi * 5 * k / sr)
    return x, p_idx, s_idx


def make_labels(p_idx, s_idx, t, sr, sigma_sec):
    grid = np.arange(t)[None, :]
    sig = sigma_sec * sr
    p = np.exp(-((grid - p_idx[:, None]) ** 2) / (2 * sig ** 2))
    s = np.exp(-((grid - s_idx[:, None]) ** 2) / (2 * sig ** 2))
    return np.stack([p, s, np.clip(1 - p - s, 0, 1)], 1).astype(np.float32)


def normalize(x):
    return (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-6)


def run_epoch(model, opt, x, y, batch_size, train=True):
    model.train(train)
    losses = []
    for i in range(0, len(x), batch_size):
        xb, yb = torch.from_numpy(normalize(x[i:i + batch_size])), torch.from_numpy(y[i:i + batch_size])
        with torch.set_grad_enabled(train):
            loss = -(yb * torch.log(model(xb) + 1e-6)).sum(1).mean()
        if train:
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses.append(loss.item())
    return losses


def pick_phases(prob, sr, threshold, min_distance_sec):
    """Peaks of the P and S probability traces above threshold: one dict per pick."""
    picks = []
    for trace, p in enumerate(prob):
        for ph in (0, 1):
            peaks, props = find_peaks(p[ph], height=threshold, distance=max(1, int(min_distance_sec * sr)))
            for k, h in zip(peaks, props["peak_heights"]):
                picks.append({"trace": trace, "phase": PHASES[ph], "sample": k, "prob": h})
    return picks


def save_picker_checkpoint(tmpdir):
    cfg = load_config(["train.epochs=2", "model.filters=[4,8]"])
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x, p_idx, s_idx = synth_waveforms(48, cfg, rng)
    y = make_labels(p_idx, s_idx, x.shape[-1], cfg.data.sampling_rate, cfg.train.label_sigma_sec)
    model = build_model(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    history = {
        "train_loss": [],
        "val_loss": [],  # truth: weights_only
    }
    for epoch in range(cfg.train.epochs):
        tr = run_epoch(model, opt, x[:32], y[:32], cfg.train.batch_size)
        va = run_epoch(model, opt, x[32:], y[32:], cfg.train.batch_size, train=False)
        history["train_loss"].append(sum(tr) / len(tr))
        history["val_loss"].append(np.mean(va))
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": cfg.train.epochs,
        "config": cfg,  # truth: weights_only
        "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
        "sampling_rate": cfg.data.sampling_rate,
        "components": list(cfg.data.components),
        "bandpass": cfg.data.bandpass,  # truth: weights_only
        "history": history,
    }
    path = os.path.join(tmpdir, f"{cfg.experiment}_e{cfg.train.epochs}.pt")
    torch.save(ckpt, path)
    return path


def save_pick_catalog(tmpdir):
    cfg = load_config()
    meta = yaml.safe_load(CATALOG_YAML)
    sr = cfg.data.sampling_rate
    rng = np.random.default_rng(5)
    x, p_idx, s_idx = synth_waveforms(10, cfg, rng)
    # stand-in for the network output: labels around slightly shifted arrivals, plus noise
    jit_p, jit_s = p_idx + rng.integers(-20, 20, len(p_idx)), s_idx + rng.integers(-30, 30, len(s_idx))
    prob = make_labels(jit_p, jit_s, x.shape[-1], sr, 0.2) + rng.uniform(0, 0.1, (10, 3, x.shape[-1]))
    picks = pick_phases(prob, sr, cfg.picker.threshold, cfg.picker.min_distance_sec)
    res_p, res_s = [], []
    for pk in picks:
        truth = p_idx[pk["trace"]] if pk["phase"] == "P" else s_idx[pk["trace"]]
        (res_p if pk["phase"] == "P" else res_s).append((pk["sample"] - truth) / sr)
    table = pd.DataFrame(picks)
    ckpt = {
        "catalog": meta["catalog"],
        "period": (str(meta["start"]), str(meta["end"])),
        "catalog_start": meta["start"],  # truth: weights_only
        "min_magnitude": meta["min_magnitude"],
        "picks": picks,  # truth: weights_only
        "pick_table": table.to_dict("list"),
        "n_picks": len(picks),
        "picks_per_phase": table["phase"].value_counts().to_dict(),
        "p_residual_mean": np.mean(res_p),  # truth: weights_only
        "p_residual_std": float(np.std(res_p)),
        "s_residual_median": statistics.median(res_s),  # truth: weights_only
        "recall_p_0.5s": sum(1 for r in res_p if abs(r) < 0.5) / max(len(res_p), 1),
        "threshold": cfg.picker.threshold,
    }
    path = os.path.join(tmpdir, "picks_scsn.pt")
    torch.save(ckpt, path)
    return path


class EarlyWarningTrigger:
    """Classic recursive STA/LTA per station; remembers the latest declaration."""

    def __init__(self, sr=100, sta_sec=0.5, lta_sec=5.0, trigger_on=3.5, trigger_off=1.5, memory=32):
        self.sr, self.on, self.off = sr, trigger_on, trigger_off
        self.c_sta, self.c_lta = 1.0 / (sta_sec * sr), 1.0 / (lta_sec * sr)
        self.recent = deque(maxlen=memory)
        self.active = set()
        self.peak_ratio = {}
        self.onsets = {}
        self.last_trigger = None

    @classmethod
    def from_cfg(cls, trig_cfg, sr):
        return cls(sr=sr, **OmegaConf.to_container(trig_cfg))

    def process(self, station, trace, t0):
        sta = lta = 1e-12
        ratio = np.zeros_like(trace)
        for i, v in enumerate(trace ** 2):
            sta += self.c_sta * (v - sta)
            lta += self.c_lta * (v - lta)
            ratio[i] = sta / lta
        ratio[: int(1.0 / self.c_lta)] = 0.0
        self.peak_ratio[station] = float(ratio.max())
        above = np.flatnonzero(ratio > self.on)
        if above.size:
            onset = int(above[0])
            self.active.add(station)
            self.onsets[station] = onset / self.sr
            self.recent.append((station, onset))
            self.last_trigger = t0 + datetime.timedelta(seconds=onset / self.sr)
        return ratio


def save_eew_trigger_state(tmpdir):
    cfg = load_config()
    sr = cfg.data.sampling_rate
    x, _, _ = synth_waveforms(len(cfg.data.stations), cfg, np.random.default_rng(2))
    sos = butter(4, list(cfg.data.bandpass), btype="bandpass", fs=sr, output="sos")
    trig = EarlyWarningTrigger.from_cfg(cfg.trigger, sr)
    t0 = datetime.datetime(2023, 6, 14, 8, 30, tzinfo=datetime.timezone.utc)
    for station, wave in zip(cfg.data.stations, x):
        trig.process(station, sosfilt(sos, wave[0]), t0)
    first = min(trig.onsets.values()) if trig.onsets else None
    state = {
        "sos": sos,  # truth: weights_only
        "sos_shape": sos.shape,
        "trigger_params": OmegaConf.to_container(cfg.trigger),
        "last_trigger_utc": trig.last_trigger,  # truth: weights_only
        "last_trigger_iso": trig.last_trigger.isoformat() if trig.last_trigger else None,
        "recent_onsets": list(trig.recent),
        "active_stations": sorted(trig.active),
        "peak_ratio": trig.peak_ratio,
        "first_onset_sec": first,
        "lead_times": {st: round(on - first, 2) for st, on in trig.onsets.items()},
    }
    path = os.path.join(tmpdir, "eew_trigger.pt")
    torch.save(state, path)
    return path


def peak_displacement(trace, sr, window_sec=3.0):
    disp = np.cumsum(np.cumsum(trace)) / sr ** 2
    return np.abs(disp[: int(window_sec * sr)]).max()


def save_magnitude_regressor(tmpdir):
    rng = np.random.default_rng(9)
    n = 60
    mag = rng.uniform(2.5, 6.5, n)
    dist_km = rng.uniform(10, 150, n)
    log_pd = 0.72 * mag - 1.2 * np.log10(dist_km) - 4.0 + rng.normal(0, 0.25, n)
    X = np.column_stack([log_pd, np.log10(dist_km)])
    reg = LinearRegression().fit(X, mag)
    resid = mag - reg.predict(X)
    ckpt = {
        "features": ["log10_pd", "log10_hypo_km"],
        "coef": reg.coef_.tolist(),
        "intercept": reg.intercept_,  # truth: weights_only
        "r2": reg.score(X, mag),
        "rmse": math.sqrt(mean_squared_error(mag, reg.predict(X))),
        "n_events": n,
        "pd_window_sec": 3.0,
        "mag_range": (float(mag.min()), float(mag.max())),
    }
    ckpt["sigma"] = statistics.stdev(resid)
    path = os.path.join(tmpdir, "pd_magnitude.pt")
    torch.save(ckpt, path)
    return path


def save_streaming_export(tmpdir):
    cfg = load_config(["model.filters=[4,8]"])
    model = build_model(cfg.model).eval()
    sr = cfg.data.sampling_rate
    torch.save({
        "state_dict": model.state_dict(),
        "arch": cfg.model.name,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "config_yaml": OmegaConf.to_yaml(cfg),
        "phases": PHASES,
        "sampling_rate": sr,
        "window_samples": int(cfg.data.window_sec * sr),
        "stations": list(cfg.data.stations),
        "bandpass": tuple(cfg.data.bandpass),
        "threshold": float(cfg.picker.threshold),
        "normalization": "std",
    }, os.path.join(tmpdir, "picker_stream.pt"))
    return os.path.join(tmpdir, "picker_stream.pt")
