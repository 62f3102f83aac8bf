"""Train a small PhaseNet-style P/S picker and an STA/LTA-gated event detector (synthetic traces;
the real script reads miniSEED through a station inventory)."""
import argparse
import hashlib
import math
import random
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.signal as sps
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.linear_model import LinearRegression
from sklearn.metrics import f1_score, precision_recall_fscore_support
from torch.utils.data import DataLoader, Dataset

PHASES = ("P", "S", "N")
DEFAULT_STATIONS = ["IU.ANMO", "IU.COR", "II.PFO", "CI.PASC", "BK.CMB"]


def build_parser():
    p = argparse.ArgumentParser(description="phase picker training")
    p.add_argument("--data-dir", type=Path, default=Path("data/waveforms"))
    p.add_argument("--out", type=Path, default=Path("runs/picker"))
    p.add_argument("--sampling-rate", type=float, default=100.0)
    p.add_argument("--window", type=int, default=600)
    p.add_argument("--freqmin", type=float, default=1.0)
    p.add_argument("--freqmax", type=float, default=20.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--stations", nargs="+", default=DEFAULT_STATIONS)
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv or [])


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def synth_catalog(n_events=60, stations=DEFAULT_STATIONS, seed=0):
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2023-02-06 01:17:00")
    rows = []
    for i in range(n_events):
        rows.append({
            "event_id": f"ev{i:04d}",
            "origin_time": t0 + pd.Timedelta(minutes=int(rng.integers(0, 60 * 24 * 30))),
            "magnitude": round(float(rng.gamma(2.0, 0.6) + 1.0), 2),
            "depth_km": float(rng.uniform(2, 35)),
            "station": stations[int(rng.integers(0, len(stations)))],
            "p_idx": int(rng.integers(100, 250)),
        })
    cat = pd.DataFrame(rows)
    cat["s_idx"] = cat["p_idx"] + (cat["depth_km"] * 4).astype(int) + 40
    return cat


def bandpass_sos(sr, fmin, fmax, order=4):
    return sps.butter(order, [fmin, fmax], btype="band", fs=sr, output="sos")


def synth_waveforms(cat, window, sr, sos, seed=0):
    rng = np.random.default_rng(seed)
    n = len(cat)
    X = rng.normal(0, 0.1, size=(n, 3, window)).astype(np.float32)
    Y = np.zeros((n, len(PHASES), window), dtype=np.float32)
    Y[:, 2] = 1.0
    t = np.arange(window)
    for i, (p, s) in enumerate(zip(cat["p_idx"], cat["s_idx"])):
        s = min(int(s), window - 20)
        X[i, :, p:] += np.sin(2 * np.pi * 5 * t[p:] / sr) * np.exp(-(t[p:] - p) / 80.0)
        Y[i, 0] = np.exp(-((t - p) ** 2) / (2 * 10.0 ** 2))
        Y[i, 1] = np.exp(-((t - s) ** 2) / (2 * 10.0 ** 2))
        Y[i, 2] = np.clip(1 - Y[i, 0] - Y[i, 1], 0, 1)
    X = sps.sosfiltfilt(sos, X, axis=-1).astype(np.float32)
    return X, Y


def normalize_traces(X):
    mean = X.mean(axis=(0, 2))
    std = X.std(axis=(0, 2)) + 1e-6
    return (X - mean[None, :, None]) / std[None, :, None], mean, std


class WaveformDataset(Dataset):
    def __init__(self, X, Y):
        self.X = torch.from_numpy(X)
        self.Y = torch.from_numpy(Y)

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], self.Y[i]


class PhaseNetLite(nn.Module):
    def __init__(self, in_ch=3, n_phases=3, width=8):
        super().__init__()
        self.enc1 = nn.Conv1d(in_ch, width, 7, padding=3)
        self.enc2 = nn.Conv1d(width, width * 2, 7, padding=3, stride=2)
        self.dec1 = nn.ConvTranspose1d(width * 2, width, 4, stride=2, padding=1)
        self.head = nn.Conv1d(width * 2, n_phases, 1)

    def forward(self, x):
        e1 = F.relu(self.enc1(x))
        e2 = F.relu(self.enc2(e1))
        d1 = F.relu(self.dec1(e2))[..., : e1.shape[-1]]
        return self.head(torch.cat([d1, e1], dim=1))


def train_one_epoch(model, loader, opt):
    model.train()
    losses = []
    for xb, yb in loader:
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.mean(losses)


@torch.no_grad()
def evaluate(model, loader, sr, tol_s=0.1):
    model.eval()
    y_true, y_pred, residuals = [], [], []
    for xb, yb in loader:
        prob = model(xb).softmax(dim=1)
        p_hat = prob[:, 0].argmax(dim=-1)
        p_ref = yb[:, 0].argmax(dim=-1)
        res = (p_hat - p_ref).float() / sr
        residuals.extend(res.tolist())
        y_true.extend([1] * len(res))
        y_pred.extend((res.abs() <= tol_s).int().tolist())
    residuals = np.asarray(residuals)
    return {
        "p_f1": f1_score(y_true, y_pred, zero_division=0),
        "mad": np.median(np.abs(residuals - np.median(residuals))),
        "residual_std": float(residuals.std()),
        "n": len(residuals),
    }


def threshold_sweep(model, loader, grid):
    """F1 of P detections for each probability threshold on the grid."""
    probs, refs = [], []
    with torch.no_grad():
        for xb, yb in loader:
            probs.append(model(xb).softmax(dim=1)[:, 0].amax(dim=-1))
            refs.append((yb[:, 0].amax(dim=-1) > 0.5).int())
    probs, refs = torch.cat(probs).numpy(), torch.cat(refs).numpy()
    return np.array([f1_score(refs, (probs >= t).astype(int), zero_division=0) for t in grid])


def sta_lta(x, nsta, nlta):
    e = x.astype(np.float64) ** 2
    csum = np.cumsum(e)
    sta = (csum[nsta:] - csum[:-nsta]) / nsta
    lta = (csum[nlta:] - csum[:-nlta]) / nlta
    n = min(len(sta), len(lta))
    return sta[-n:] / (lta[-n:] + 1e-12)


def prepare_data(args):
    cat = synth_catalog(stations=args.stations, seed=args.seed)
    sos = bandpass_sos(args.sampling_rate, args.freqmin, args.freqmax)
    X, Y = synth_waveforms(cat, args.window, args.sampling_rate, sos, seed=args.seed)
    Xn, mean, std = normalize_traces(X)
    split = int(0.8 * len(Xn))
    train = DataLoader(WaveformDataset(Xn[:split], Y[:split]), batch_size=args.batch_size, shuffle=True)
    val = DataLoader(WaveformDataset(Xn[split:], Y[split:]), batch_size=args.batch_size)
    return cat, sos, (train, val), (mean, std)


def save_picker_checkpoint(tmpdir):
    args = parse_args(["--epochs", "1"])
    seed_everything(args.seed)
    cat, sos, (train, val), (mean, std) = prepare_data(args)
    model = PhaseNetLite()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    for epoch in range(args.epochs):
        train_loss = train_one_epoch(model, train, opt)
    metrics = evaluate(model, val, args.sampling_rate)
    grid = np.linspace(0.1, 0.9, 9)
    f1s = threshold_sweep(model, val, grid)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": epoch,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data_dir": args.data_dir,  # truth: weights_only
        "train_loss": train_loss,  # truth: weights_only
        "val": {
            "p_f1": metrics["p_f1"],
            "residual_mad_s": metrics["mad"],  # truth: weights_only
            "residual_std_s": metrics["residual_std"],
            "n_picks": metrics["n"],
        },
        "norm": {"mean": mean.tolist(), "std": torch.from_numpy(std)},
        "filter": {"freqmin": args.freqmin, "freqmax": args.freqmax, "sos": torch.from_numpy(sos)},
        "phases": list(PHASES),
        "best_threshold": grid[np.argmax(f1s)],  # truth: weights_only
        "best_threshold_idx": int(np.argmax(f1s)),
        "created": datetime.now(timezone.utc).isoformat(),
    }
    ckpt["rng"] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    ckpt["rng"]["numpy"] = np.random.get_state()  # truth: weights_only
    out = Path(tmpdir) / "picker_last.pt"
    torch.save(ckpt, out)
    return str(out)


class DetectorTrainer:
    """Event/noise classifier on STA/LTA-gated windows; keeps its own history and early stopping."""

    def __init__(self, model=None, lr=3e-4, patience=3, nsta=20, nlta=200):
        self.model = model or PhaseNetLite(n_phases=2)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=1e-4)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=2, gamma=0.5)
        self.nsta, self.nlta = nsta, nlta
        self.patience = patience
        self.history = defaultdict(list)
        self.best_score = -math.inf
        self.best_epoch = -1
        self.bad_epochs = 0
        self.t0 = time.time()

    def step(self, xb, yb):
        self.opt.zero_grad()
        logits = self.model(xb).mean(dim=-1)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        self.opt.step()
        return loss.item(), (logits.argmax(1) == yb).float().mean().item()

    def fit(self, X, y, epochs=2):
        xb, yb = torch.from_numpy(X), torch.from_numpy(y)
        for epoch in range(epochs):
            loss, acc = self.step(xb, yb)
            self.sched.step()
            self.history["loss"].append(loss)
            self.history["acc"].append(acc)
            if acc > self.best_score:
                self.best_score, self.best_epoch, self.bad_epochs = acc, epoch, 0
            else:
                self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                break
        return self

    def trigger_levels(self, traces):
        ratios = np.concatenate([sta_lta(tr, self.nsta, self.nlta) for tr in traces])
        return np.percentile(ratios, 99.0), np.percentile(ratios, 90.0)

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "best_score": self.best_score,
            "elapsed_s": time.time() - self.t0,
        }

    def summary(self):
        losses = torch.tensor(self.history["loss"])
        return {"final_loss": losses[-1].item(), "min_loss": losses.min().item(),
                "epochs_run": len(self.history["loss"])}


def save_detector(tmpdir):
    args = parse_args(["--window", "400"])
    seed_everything(args.seed)
    cat = synth_catalog(n_events=24, stations=args.stations, seed=3)
    sos = bandpass_sos(args.sampling_rate, args.freqmin, args.freqmax)
    X, _ = synth_waveforms(cat, args.window, args.sampling_rate, sos, seed=3)
    y = (cat["magnitude"].to_numpy() > 2.0).astype(np.int64)
    trainer = DetectorTrainer().fit(X, y, epochs=3)
    trig_on, trig_off = trainer.trigger_levels(X[:, 2])
    ckpt = trainer.state_dict()
    ckpt["history"] = trainer.history  # truth: weights_only
    ckpt["loss_curve"] = list(trainer.history["loss"])
    ckpt["best_epoch"] = trainer.best_epoch
    ckpt["stalta"] = {
        "nsta": trainer.nsta,
        "nlta": trainer.nlta,
        "trigger_on": float(trig_on),
        "trigger_off": trig_off,  # truth: weights_only
    }
    ckpt.update(trainer.summary())
    ckpt.update(
        n_stations=len(set(cat["station"])),
        stations=frozenset(cat["station"]),  # truth: weights_only
        station_list=sorted(set(cat["station"])),
    )
    path = Path(tmpdir) / "detector.pt"
    torch.save(ckpt, path)
    return str(path)


def gutenberg_richter(mags, mc, dm=0.1):
    """Aki/Utsu maximum-likelihood b-value above the completeness magnitude."""
    above = mags[mags >= mc]
    return math.log10(math.e) / (above.mean() - (mc - dm / 2))


def fit_magnitude_calibration(cat):
    feats = cat[["depth_km"]].assign(log_amp=np.log10(cat["magnitude"] * 3.0))
    reg = LinearRegression().fit(feats.to_numpy(), cat["magnitude"].to_numpy())
    return reg, list(feats.columns)


def save_catalog_model(tmpdir):
    cat = synth_catalog(n_events=120, seed=11)
    reg, feat_cols = fit_magnitude_calibration(cat)
    counts, edges = np.histogram(cat["magnitude"], bins=10)
    mc = float(edges[np.argmax(counts)])
    meta = {
        "n_events": len(cat),
        "mag_range": (float(cat["magnitude"].min()), float(cat["magnitude"].max())),
        "largest_event": cat.loc[cat["magnitude"].idxmax(), "event_id"],
        "first_origin": cat["origin_time"].min(),  # truth: weights_only
        "last_origin": cat["origin_time"].max().isoformat(),
        "span_days": (cat["origin_time"].max() - cat["origin_time"].min()).days,
        "depth_quantiles": cat["depth_km"].quantile([0.1, 0.5, 0.9]).tolist(),
        "events_per_station": cat["station"].value_counts().to_dict(),
        "station_codes": list(cat["station"].unique()),
        "mag_hist": counts.tolist(),
        "mag_edges": edges,  # truth: weights_only
        "mc": mc,
        "b_value": gutenberg_richter(cat["magnitude"], mc),  # truth: weights_only
    }
    ckpt = {
        "calibration": {"features": feat_cols, "coef": reg.coef_.tolist(), "intercept": float(reg.intercept_)},
        "catalog": meta,
        "source": "synthetic",
    }
    path = Path(tmpdir) / "catalog_calibration.pt"
    torch.save(ckpt, path)
    return str(path)


def export_for_inference(model, example):
    model.eval()
    with torch.no_grad():
        model(example)
    return model


def save_inference_export(tmpdir):
    model = PhaseNetLite(width=4)
    exported = export_for_inference(model, torch.zeros(1, 3, 200))
    path = Path(tmpdir) / "picker_export.pt"
    torch.save(
        exported,  # truth: weights_only
        path,
    )
    return str(path)


def save_finetune_clean(tmpdir):
    args = parse_args(["--stations", "IU.ANMO", "IU.COR"])
    seed_everything(args.seed)
    cat, sos, (train, val), (mean, std) = prepare_data(args)
    model = PhaseNetLite()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss = train_one_epoch(model, train, opt)
    metrics = evaluate(model, val, args.sampling_rate)
    prec, rec, f1, _ = precision_recall_fscore_support([1, 0, 1, 1], [1, 0, 0, 1], average="binary")
    thresholds = np.percentile(np.abs(np.concatenate([x.numpy().ravel() for x, _ in val])), [50, 99])
    blob = b"".join(t.numpy().tobytes() for t in model.state_dict().values())
    best_so_far = 0.5
    ckpt = dict(
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        train_loss=float(loss),
        val_f1=metrics["p_f1"],
        val_n=metrics["n"],
        precision=prec,
        recall=rec,
        f1=f1,
        stations=sorted(set(args.stations)),
        sampling_rate=float(np.float32(args.sampling_rate)),
        band=[args.freqmin, args.freqmax],
        amp_thresholds=thresholds.tolist(),
        is_best=bool(metrics["p_f1"] > best_so_far),
        norm_std=std.astype(np.float64).tolist(),
        weights_sha256=hashlib.sha256(blob).hexdigest(),
        weights_digest=hashlib.md5(blob).digest(),
        torch_version=str(torch.__version__),
        out_dir=str(args.out),
        phases="".join(PHASES),
    )
    path = Path(tmpdir) / "picker_finetune.pt"
    torch.save(ckpt, path)
    return str(path)


FACTORIES = {
    "WaveformDataset": lambda: WaveformDataset(np.zeros((4, 3, 50), np.float32), np.zeros((4, 3, 50), np.float32)),
    "DetectorTrainer": lambda: DetectorTrainer(nsta=10, nlta=100),
}

