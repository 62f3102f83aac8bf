"""UrbanSound8K-style urban noise classification (10 classes, 10 predefined folds).

Log-mel front end in numpy/scipy (no librosa on the sensor boxes), a small CNN,
mixup + SpecAugment, fold-wise cross-validation.

    python urban_sound_cnn.py --fold 10 --epochs 40 --out-dir runs/us8k

The real loader reads the wav files listed in metadata/UrbanSound8K.csv; the
`synth_clips` stand-in keeps the script runnable without the data set.
"""
import argparse
import collections
import dataclasses
import datetime
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import signal
from torch.utils.data import DataLoader, Dataset

CLASSES = [
    "air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
    "engine_idling", "gun_shot", "jackhammer", "siren", "street_music",
]
SAMPLE_RATE = 8000  # resampled down from 44.1 kHz for the edge model
torch.set_num_threads(1)  # the sensor gateways are single-core; train the same way


def build_arg_parser():
    p = argparse.ArgumentParser(description="UrbanSound8K CNN baseline")
    p.add_argument("--data-root", type=Path, default=Path("data/UrbanSound8K"))
    p.add_argument("--out-dir", type=Path, default=Path("runs/us8k"))
    p.add_argument("--fold", type=int, default=10, help="held-out fold (1-10)")
    p.add_argument("--sr", type=int, default=SAMPLE_RATE)
    p.add_argument("--n-fft", type=int, default=256)
    p.add_argument("--hop", type=int, default=128)
    p.add_argument("--n-mels", type=int, default=32)
    p.add_argument("--clip-seconds", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--mixup-alpha", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    return p


# ----------------------------------------------------------------- front end

def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def mel_filterbank(sr, n_fft, n_mels, fmin=0.0, fmax=None):
    """Triangular HTK-style filters, shape (n_mels, n_fft // 2 + 1)."""
    fmax = fmax or sr / 2
    n_bins = n_fft // 2 + 1
    hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bins = np.floor((n_fft + 1) * hz / sr).astype(int)
    fb = np.zeros((n_mels, n_bins), dtype=np.float32)
    for m in range(1, n_mels + 1):
        lo, c, hi = bins[m - 1], bins[m], bins[m + 1]
        for k in range(lo, c):
            fb[m - 1, k] = (k - lo) / max(c - lo, 1)
        for k in range(c, min(hi, n_bins)):
            fb[m - 1, k] = (hi - k) / max(hi - c, 1)
    return fb


def log_mel(clip, sr, fb, n_fft, hop):
    _, _, Z = signal.stft(clip, fs=sr, nperseg=n_fft, noverlap=n_fft - hop, boundary=None, padded=False)
    return np.log(fb @ (np.abs(Z) ** 2) + 1e-6).astype(np.float32)


def estimate_noise_floor_db(clips, frame=256):
    """10th percentile of frame RMS over all clips, in dBFS."""
    n = clips.shape[1] // frame
    rms = np.sqrt((clips[:, : n * frame].reshape(len(clips), n, frame) ** 2).mean(axis=2))
    return 20 * np.log10(np.percentile(rms, 10) + 1e-12)


def synth_clips(n, sr, seconds, seed=0):
    """Stand-in for the wav loader: class-dependent modulated tones in street noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    clips, labels, folds = [], [], []
    for i in range(n):
        y = i % len(CLASSES)
        f0 = 150.0 + 300.0 * y
        clip = 0.5 * np.sin(2 * np.pi * f0 * t) * (1.0 + 0.3 * np.sin(2 * np.pi * (y + 1) * t))
        clip += rng.normal(scale=0.1 + 0.02 * y, size=t.shape)
        clips.append(clip.astype(np.float32))
        labels.append(y)
        folds.append(1 + (i // len(CLASSES)) % 10)
    return np.stack(clips), np.array(labels), np.array(folds)


@dataclasses.dataclass
class FeatureStats:
    """Per-mel-band normalisation computed on the training folds only."""
    mean: np.ndarray = None
    std: np.ndarray = None
    n_frames: int = 0

    @classmethod
    def fit(cls, feats):
        flat = feats.transpose(1, 0, 2).reshape(feats.shape[1], -1)
        return cls(mean=flat.mean(axis=1), std=flat.std(axis=1) + 1e-5, n_frames=flat.shape[1])

    def apply(self, feats):
        return (feats - self.mean[None, :, None]) / self.std[None, :, None]


class MelDataset(Dataset):
    def __init__(self, feats, labels, train=False, freq_mask=4, time_mask=8, seed=0):
        self.feats = torch.from_numpy(np.ascontiguousarray(feats)).unsqueeze(1)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.train = train
        self.freq_mask = freq_mask
        self.time_mask = time_mask
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = self.feats[i]
        if self.train:  # SpecAugment: one frequency and one time mask
            x = x.clone()
            f0 = self.rng.integers(0, x.shape[1] - self.freq_mask)
            t0 = self.rng.integers(0, x.shape[2] - self.time_mask)
            x[:, f0:f0 + self.freq_mask, :] = 0.0
            x[:, :, t0:t0 + self.time_mask] = 0.0
        return x, self.labels[i]


class UrbanSoundCNN(nn.Module):
    def __init__(self, n_mels=32, n_classes=10, width=8, dropout=0.3):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(1, width), block(width, width * 2), block(width * 2, width * 4))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width * 4, n_classes))

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def mixup_batch(x, y, alpha, rng):
    if alpha <= 0:
        return x, y, y, 1.0
    lam = rng.beta(alpha, alpha)
    perm = torch.randperm(x.size(0))
    return lam * x + (1.0 - lam) * x[perm], y, y[perm], lam


def top_confusions(cm, class_names, k=3):
    """The k most frequent (true, predicted) mistakes as (str, str, count)."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    out = []
    for idx in np.argsort(off, axis=None)[::-1][:k]:
        i, j = np.unravel_index(idx, off.shape)
        out.append((class_names[i], class_names[j], int(off[i, j])))
    return out


class SoundTrainer:
    def __init__(self, model, args, class_names=CLASSES):
        self.model = model
        self.args = args
        self.class_names = list(class_names)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(args.epochs, 1))
        self.rng = np.random.default_rng(args.seed)
        self.history = collections.defaultdict(list)
        self.recent_losses = collections.deque(maxlen=20)
        self.epoch = 0
        self.best_acc = 0.0
        self.best_epoch = -1
        self.last_lam = 1.0

    def train_epoch(self, loader):
        self.model.train()
        losses = []
        for x, y in loader:
            x, ya, yb, lam = mixup_batch(x, y, self.args.mixup_alpha, self.rng)
            logits = self.model(x)
            loss = lam * F.cross_entropy(logits, ya) + (1.0 - lam) * F.cross_entropy(logits, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
            self.recent_losses.append(loss.item())
            self.last_lam = lam
        self.scheduler.step()
        self.epoch += 1
        mean_loss = np.mean(losses)
        self.history["train_loss"].append(mean_loss)
        return mean_loss

    @torch.no_grad()
    def evaluate(self, loader):
        self.model.eval()
        preds, targets = [], []
        for x, y in loader:
            preds.append(self.model(x).argmax(1))
            targets.append(y)
        y_pred = torch.cat(preds).numpy()
        y_true = torch.cat(targets).numpy()
        n = len(self.class_names)
        cm = np.zeros((n, n), dtype=np.int64)
        np.add.at(cm, (y_true, y_pred), 1)
        per_class = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
        acc = float((y_true == y_pred).mean())
        self.history["val_acc"].append(acc)
        if acc > self.best_acc:
            self.best_acc, self.best_epoch = acc, self.epoch
        return {"acc": acc, "per_class_acc": per_class, "confusion": cm, "macro_acc": per_class.mean()}

    def save_checkpoint(self, path, extra=None):
        state = {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "best_acc": self.best_acc,
        }
        if extra:
            state.update(extra)
        torch.save(state, path)
        return path


def prepare_features(args, n_clips=100):
    clips, labels, folds = synth_clips(n_clips, args.sr, args.clip_seconds, seed=args.seed)
    fb = mel_filterbank(args.sr, args.n_fft, args.n_mels)
    feats = np.stack([log_mel(c, args.sr, fb, args.n_fft, args.hop) for c in clips])
    stats = FeatureStats.fit(feats[folds != args.fold])
    return stats.apply(feats).astype(np.float32), labels, folds, fb, stats


def run_fold(args, n_clips=100):
    torch.manual_seed(args.seed)
    feats, labels, folds, fb, stats = prepare_features(args, n_clips)
    tr = folds != args.fold
    train_dl = DataLoader(MelDataset(feats[tr], labels[tr], train=True, seed=args.seed),
                          batch_size=args.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(args.seed))
    val_dl = DataLoader(MelDataset(feats[~tr], labels[~tr]), batch_size=args.batch_size)
    trainer = SoundTrainer(UrbanSoundCNN(n_mels=args.n_mels, n_classes=len(CLASSES)), args)
    train_loss, metrics = None, None
    for _ in range(args.epochs):
        train_loss = trainer.train_epoch(train_dl)
        metrics = trainer.evaluate(val_dl)
    return trainer, train_loss, metrics, fb, stats


FACTORIES = {
    "MelDataset": lambda: MelDataset(np.zeros((4, 8, 12), np.float32), np.arange(4)),
    "SoundTrainer": lambda: SoundTrainer(UrbanSoundCNN(), build_arg_parser().parse_args([])),
}


# ----------------------------------------------------------------- checkpoints

def save_fold_checkpoint(tmpdir):
    """What `main()` writes after the last epoch of one fold."""
    args = build_arg_parser().parse_args(["--fold", "3", "--epochs", "1"])
    trainer, train_loss, metrics, _, _ = run_fold(args)
    path = os.path.join(tmpdir, f"fold{args.fold}_last.pt")
    trainer.save_checkpoint(path, extra={
        "args": args,  # truth: weights_only
        "fold": args.fold,
        "train_loss": train_loss,  # truth: weights_only
        "val_acc": metrics["acc"],
        "class_names": trainer.class_names,
        "last_mixup_lam": trainer.last_lam,
        "lr_now": trainer.scheduler.get_last_lr()[0],
        "data_root": str(args.data_root),
    })
    return path


def save_best_model(tmpdir):
    args = build_arg_parser().parse_args(["--epochs", "2", "--seed", "1"])
    trainer, _, metrics, _, _ = run_fold(args)
    ckpt = {"model_state": trainer.model.state_dict(), "epoch": trainer.epoch}
    ckpt["best_acc"] = trainer.best_acc
    ckpt["best_epoch"] = trainer.best_epoch
    ckpt["per_class_acc"] = metrics["per_class_acc"]  # truth: weights_only
    ckpt["macro_acc"] = metrics["macro_acc"]  # truth: weights_only
    ckpt["confusion"] = metrics["confusion"].tolist()
    ckpt["top_confusions"] = top_confusions(metrics["confusion"], trainer.class_names)
    ckpt["history"] = trainer.history  # truth: weights_only
    ckpt["recent_losses"] = list(trainer.recent_losses)
    ckpt["n_params"] = sum(p.numel() for p in trainer.model.parameters())
    path = os.path.join(tmpdir, "best.pt")
    torch.save(ckpt, path)
    return path


def save_frontend(tmpdir):
    """The feature front end ships with the weights so that the sensor computes the same log-mels."""
    args = build_arg_parser().parse_args([])
    clips, _, _ = synth_clips(20, args.sr, args.clip_seconds, seed=args.seed)
    fb = mel_filterbank(args.sr, args.n_fft, args.n_mels)
    feats = np.stack([log_mel(c, args.sr, fb, args.n_fft, args.hop) for c in clips])
    stats = FeatureStats.fit(feats)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(args.sr / 2), args.n_mels + 2))
    frontend = dict(
        sr=args.sr,
        n_fft=args.n_fft,
        hop=args.hop,
        n_mels=args.n_mels,
        mel_fb=torch.from_numpy(fb),
        window=signal.get_window("hann", args.n_fft),  # truth: weights_only
        band_mean=stats.mean,  # truth: weights_only
        band_std=stats.std.tolist(),
        n_frames=stats.n_frames,
        fmax=args.sr / 2,
        mel_edges_hz=edges.round(1).tolist(),
        noise_floor_db=estimate_noise_floor_db(clips),  # truth: weights_only
        log_offset=1e-6,
    )
    path = os.path.join(tmpdir, "frontend.pt")
    torch.save({"frontend": frontend, "format": "us8k-logmel-v2"}, path)
    return path


def save_demo_export(tmpdir):
    """Whole-model export for the street-sensor demo app (`torch.load(path)` on the device)."""
    args = build_arg_parser().parse_args(["--epochs", "1"])
    trainer, *_ = run_fold(args)
    path = os.path.join(tmpdir, "us8k_demo_model.pt")
    torch.save(trainer.model.eval(), path)  # truth: weights_only
    return path


def save_crossval_summary(tmpdir):
    t0 = time.time()
    summary = {"folds": {}, "classes": CLASSES}
    accs = []
    for fold in (1, 2, 3):
        args = build_arg_parser().parse_args(["--fold", str(fold), "--epochs", "1", "--seed", str(fold)])
        _, train_loss, metrics, _, _ = run_fold(args, n_clips=60)
        summary["folds"][fold] = {
            "acc": metrics["acc"],
            "train_loss": float(train_loss),
            "worst_class": CLASSES[int(np.argmin(metrics["per_class_acc"]))],
        }
        accs.append(metrics["acc"])
    summary["mean_acc"] = np.mean(accs)  # truth: weights_only
    summary["std_acc"] = float(np.std(accs, ddof=1))
    summary["fold_accs"] = accs
    summary["best_fold"] = max(summary["folds"], key=lambda f: summary["folds"][f]["acc"])
    summary["finished"] = datetime.datetime.now()  # truth: weights_only
    summary["wall_time_s"] = time.time() - t0
    path = os.path.join(tmpdir, "cv_summary.pt")
    torch.save(summary, path)
    return path


def save_release_bundle(tmpdir):
    """The release artifact: everything made plain before it is written."""
    args = build_arg_parser().parse_args(["--epochs", "1", "--out-dir", "runs/release"])
    trainer, train_loss, metrics, fb, stats = run_fold(args)
    hparams = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    bundle = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "hparams": hparams,
        "train_loss": train_loss.item(),
        "val_acc": round(metrics["acc"], 4),
        "macro_acc": float(metrics["macro_acc"]),
        "per_class_acc": dict(zip(CLASSES, metrics["per_class_acc"].tolist())),
        "band_mean": torch.from_numpy(stats.mean),
        "mel_fb_shape": fb.shape,
        "history": {k: [float(v) for v in vs] for k, vs in trainer.history.items()},
        "rng": {"torch": torch.get_rng_state(), "numpy": trainer.rng.bit_generator.state},
        "val_support": dict(zip(CLASSES, metrics["confusion"].sum(axis=1).tolist())),
        "out_name": args.out_dir.name,
        "torch_version": str(torch.__version__),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    path = os.path.join(tmpdir, "release.pt")
    torch.save(bundle, path)
    return path
