"""Sleep staging from polysomnography (Sleep-EDF style), 30 s epochs, 5 AASM stages.

Usage:
    python sleep_staging_train.py --data-dir ./sleep-edf --channels "EEG Fpz-Cz" EOG --epochs 20

The real script reads EDF files with MNE; here a synthetic PSG generator stands in so that the
script runs end to end without the recordings.
"""
import argparse
import datetime
import enum
import os
import random
from collections import Counter, OrderedDict, deque
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight

EPOCH_SEC = 30
BANDS = OrderedDict(
    delta=(0.5, 4.0),
    theta=(4.0, 8.0),
    alpha=(8.0, 12.0),
    sigma=(12.0, 15.0),
    beta=(15.0, 30.0),
)


class SleepStage(enum.IntEnum):
    W = 0
    N1 = 1
    N2 = 2
    N3 = 3
    REM = 4


def build_parser():
    p = argparse.ArgumentParser(description="train a 1D-CNN sleep stager")
    p.add_argument("--data-dir", default="./sleep-edf")
    p.add_argument("--channels", nargs="+", default=["EEG Fpz-Cz", "EOG horizontal"])
    p.add_argument("--fs", type=float, default=50.0)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--n-recordings", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--balanced", action="store_true")
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv if argv is not None else [])


# ----------------------------------------------------------------------------- data

def synthetic_recording(n_epochs, n_channels, fs, rng):
    """Stand-in for mne.io.read_raw_edf + annotations: returns (signals, hypnogram)."""
    n = int(fs * EPOCH_SEC)
    stages = rng.integers(0, 5, size=n_epochs)
    t = np.arange(n) / fs
    x = np.empty((n_epochs, n_channels, n), dtype=np.float32)
    for i, s in enumerate(stages):
        freq = [10.0, 6.0, 13.0, 2.0, 7.0][s]
        for c in range(n_channels):
            x[i, c] = np.sin(2 * np.pi * freq * t + rng.uniform(0, np.pi)) + 0.3 * rng.standard_normal(n)
    return x, stages


def load_cohort(args):
    rng = np.random.default_rng(args.seed)
    xs, ys, starts = [], [], []
    for rec in range(args.n_recordings):
        x, y = synthetic_recording(24, len(args.channels), args.fs, rng)
        xs.append(x)
        ys.append(y)
        starts.append(datetime.datetime(2021, 3, 1, 22, 30) + datetime.timedelta(days=rec))
    return np.concatenate(xs), np.concatenate(ys), starts


def band_powers(x, fs):
    """Relative band power per channel via the FFT periodogram: (n_epochs, n_channels * n_bands)."""
    spec = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], d=1.0 / fs)
    total = spec.sum(axis=-1, keepdims=True) + 1e-8
    feats = []
    for lo, hi in BANDS.values():
        idx = (freqs >= lo) & (freqs < hi)
        feats.append(spec[..., idx].sum(axis=-1, keepdims=True) / total)
    return np.concatenate(feats, axis=-1).reshape(len(x), -1)


def hypnogram_summary(stages):
    stages = np.asarray(stages)
    asleep = stages != SleepStage.W
    first = int(np.argmax(asleep))
    waso = (stages[first:] == SleepStage.W).sum() * EPOCH_SEC / 60.0
    transitions = Counter(zip(stages[:-1].tolist(), stages[1:].tolist()))
    return {
        "sleep_efficiency": float(asleep.mean()),
        "sleep_onset_min": first * EPOCH_SEC / 60.0,
        "waso_min": waso,
        "transitions": transitions,
    }


# ----------------------------------------------------------------------------- model

class TinySleepNet(nn.Module):
    def __init__(self, n_channels=2, n_classes=5, width=16):
        super().__init__()
        self.conv1 = nn.Conv1d(n_channels, width, kernel_size=25, stride=6)
        self.conv2 = nn.Conv1d(width, width * 2, kernel_size=8, stride=2)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(width * 2, n_classes)

    def forward(self, x):
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        return self.head(self.pool(h).squeeze(-1))


class EarlyStopping:
    def __init__(self, patience=5):
        self.patience = patience
        self.best = -1.0
        self.wait = 0
        self.recent = deque(maxlen=patience)

    def step(self, score):
        self.recent.append(score)
        if score > self.best:
            self.best, self.wait = score, 0
            return True
        self.wait += 1
        return False

    @property
    def should_stop(self):
        return self.wait >= self.patience


def batches(x, y, batch_size, shuffle, rng):
    idx = rng.permutation(len(x)) if shuffle else np.arange(len(x))
    for i in range(0, len(idx), batch_size):
        j = idx[i:i + batch_size]
        yield torch.from_numpy(x[j]), torch.from_numpy(y[j]).long()


def train_one_epoch(model, opt, x, y, args, rng, weight=None):
    model.train()
    losses = []
    for xb, yb in batches(x, y, args.batch_size, True, rng):
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb, weight=weight)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)


@torch.no_grad()
def evaluate(model, x, y, args):
    model.eval()
    probs = []
    for xb, _ in batches(x, y, args.batch_size, False, None):
        probs.append(F.softmax(model(xb), dim=-1).numpy())
    probs = np.concatenate(probs)
    pred = probs.argmax(1)
    return {
        "kappa": cohen_kappa_score(y, pred),
        "macro_f1": f1_score(y, pred, average="macro", labels=list(range(5)), zero_division=0),
        "f1_per_stage": f1_score(y, pred, average=None, labels=list(range(5)), zero_division=0),
        "confusion": confusion_matrix(y, pred, labels=list(range(5))),
        "mean_conf": probs.max(1).mean(),
    }


def run_training(args):
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    x, y, starts = load_cohort(args)
    split = int(0.75 * len(x))
    cw = compute_class_weight("balanced", classes=np.arange(5), y=np.concatenate([y[:split], np.arange(5)]))
    weight = torch.tensor(cw, dtype=torch.float32) if args.balanced else None
    model = TinySleepNet(n_channels=len(args.channels))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    stopper = EarlyStopping(args.patience)
    rng = np.random.default_rng(args.seed)
    history, best_state, best_metrics, best_epoch = [], None, None, 0
    for epoch in range(args.epochs):
        loss = train_one_epoch(model, opt, x[:split], y[:split], args, rng, weight)
        metrics = evaluate(model, x[split:], y[split:], args)
        history.append({"epoch": epoch, "loss": loss, "kappa": metrics["kappa"]})
        if stopper.step(metrics["kappa"]):
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best_metrics, best_epoch = metrics, epoch
        if stopper.should_stop:
            break
    return {
        "model": model, "opt": opt, "stopper": stopper, "history": history, "best_state": best_state,
        "best_metrics": best_metrics, "best_epoch": best_epoch, "class_weights": cw,
        "starts": starts, "x": x, "y": y,
    }


# ----------------------------------------------------------------------------- checkpoints

def save_best_kappa_checkpoint(tmpdir):
    args = parse_args(["--epochs", "2"])
    run = run_training(args)
    metrics = run["best_metrics"]
    ckpt = {
        "epoch": run["best_epoch"],
        "model": run["best_state"],
        "optimizer": run["opt"].state_dict(),
        "args": args,  # truth: weights_only
        "hparams": vars(args),
        "kappa": metrics["kappa"],
        "macro_f1": metrics["macro_f1"],
        "per_stage_f1": metrics["f1_per_stage"].tolist(),
        "history": run["history"],
    }
    ckpt["confusion"] = metrics["confusion"]  # truth: weights_only
    ckpt["mean_confidence"] = metrics["mean_conf"]  # truth: weights_only
    path = os.path.join(tmpdir, "best_kappa.pt")
    torch.save(ckpt, path)
    return path


def save_feature_checkpoint(tmpdir):
    """Band-power baseline: the scaler statistics travel with the linear head."""
    args = parse_args(["--fs", "40"])
    x, y, starts = load_cohort(args)
    feats = band_powers(x, args.fs)
    scaler = StandardScaler().fit(feats)
    head = nn.Linear(feats.shape[1], 5)
    ckpt = dict(
        state_dict=head.state_dict(),
        feature_mean=scaler.mean_.tolist(),
        feature_scale=scaler.scale_,  # truth: weights_only
        n_features=scaler.n_features_in_,
        bands=dict(BANDS),
        fs=args.fs,
        channels=tuple(args.channels),
        recording_start=starts[0],  # truth: weights_only
        epoch_length_s=datetime.timedelta(seconds=EPOCH_SEC).total_seconds(),
    )
    path = os.path.join(tmpdir, "bandpower_head.pt")
    torch.save(ckpt, path)
    return path


def save_labels_checkpoint(tmpdir):
    args = parse_args(["--balanced"])
    run = run_training(args)
    summary = hypnogram_summary(run["y"])
    ckpt = {"state_dict": run["model"].state_dict()}
    ckpt["stage_names"] = [s.name for s in SleepStage]
    ckpt["stages"] = list(SleepStage)  # truth: weights_only
    ckpt["class_weights"] = torch.tensor(run["class_weights"], dtype=torch.float32)
    ckpt["class_weights_raw"] = run["class_weights"]  # truth: weights_only
    ckpt["hypnogram"] = {
        "sleep_efficiency": summary["sleep_efficiency"],
        "onset_min": summary["sleep_onset_min"],
        "waso": summary["waso_min"],  # truth: weights_only
        "transitions": summary["transitions"],
        "n_epochs": len(run["y"]),
        "stage_counts": np.bincount(run["y"], minlength=5).tolist(),
    }
    path = os.path.join(tmpdir, "stager_labels.pt")
    torch.save(ckpt, path)
    return path


def save_resume_checkpoint(tmpdir):
    args = parse_args(["--patience", "3"])
    run = run_training(args)
    stopper = run["stopper"]
    state = {
        "epoch": len(run["history"]),
        "model_state": run["model"].state_dict(),
        "optim_state": run["opt"].state_dict(),
        "early_stopping": {
            "best_kappa": stopper.best,
            "wait": stopper.wait,
            "patience": stopper.patience,
            "recent_kappas": stopper.recent,  # truth: weights_only
        },
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
    }
    state["numpy_rng"] = np.random.get_state()  # truth: weights_only
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(state, path)
    return path


def save_traced_model(tmpdir):
    args = parse_args([])
    model = TinySleepNet(n_channels=len(args.channels))
    path = os.path.join(tmpdir, "stager_full.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def save_export_bundle(tmpdir):
    args = parse_args(["--epochs", "1"])
    run = run_training(args)
    m = run["best_metrics"]
    bundle = {
        "state_dict": run["model"].state_dict(),
        "channels": list(args.channels),
        "fs": float(args.fs),
        "epoch_sec": EPOCH_SEC,
        "created": datetime.datetime.now().isoformat(),
        "torch_version": str(torch.__version__),
        "kappa": round(float(m["kappa"]), 4),
        "confusion": m["confusion"].tolist(),
        "mean_conf": float(m["mean_conf"]),
        "best_kappa_seen": max(h["kappa"] for h in run["history"]),
        "data_dir": str(Path(args.data_dir).expanduser()),
        "stage_map": {s.name: int(s) for s in SleepStage},
        "recording_starts": [s.isoformat() for s in run["starts"]],
    }
    path = os.path.join(tmpdir, "export.pt")
    torch.save(bundle, path)
    return path


FACTORIES = {
    "SleepStage": lambda: SleepStage(2),
    "TinySleepNet": lambda: TinySleepNet(n_channels=2),
    "EarlyStopping": lambda: EarlyStopping(patience=3),
}


if __name__ == "__main__":
    a = build_parser().parse_args()
    out = run_training(a)
    print(out["best_metrics"]["kappa"])
