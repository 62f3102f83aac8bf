"""Acoustic scene classification (DCASE task 1 style): log-mel CNN trained from the command line.

    python asc_train.py --epochs 30 --mixup-alpha 0.4 --out runs/asc_baseline

Clips are resampled from the recorder rate to --sr, turned into log-mel spectrograms on the fly and
normalised with per-band statistics of the training split.  The evaluation reports accuracy per
recording device, because the interesting part of the task is generalising to unseen devices.
"""
import argparse
import copy
import os
import random
import time
from collections import Counter, deque, namedtuple
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import classification_report, confusion_matrix, f1_score, log_loss
from sklearn.preprocessing import LabelEncoder
from torch import nn

SCENES = ["airport", "bus", "metro", "metro_station", "park", "public_square",
          "shopping_mall", "street_pedestrian", "street_traffic", "tram"]
DEVICES = ["a", "b", "c", "s1", "s2", "s3"]
ClipInfo = namedtuple("ClipInfo", ["sample_rate", "num_samples", "channels"])


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path("data/TAU-urban-acoustic-scenes-2022-mobile"))
    p.add_argument("--out", type=Path, default=Path("runs/asc"))
    p.add_argument("--orig-sr", type=int, default=44100)
    p.add_argument("--sr", type=int, default=16000)
    p.add_argument("--n-fft", type=int, default=512)
    p.add_argument("--hop", type=int, default=256)
    p.add_argument("--n-mels", type=int, default=40)
    p.add_argument("--clip-seconds", type=float, default=0.5)
    p.add_argument("--num-clips", type=int, default=40)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--mixup-alpha", type=float, default=0.4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-devices", nargs="+", default=["a", "b", "c", "s1"])
    return p


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ------------------------------------------------------------------ features

def mel_filterbank(sr, n_fft, n_mels, fmin=0.0, fmax=None):
    """HTK-style triangular filters, (n_mels, n_fft // 2 + 1)."""
    fmax = fmax or sr / 2

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bins = np.floor((n_fft + 1) * hz / sr).astype(int)
    fb = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for m in range(1, n_mels + 1):
        left, center, right = bins[m - 1], bins[m], bins[m + 1]
        for k in range(left, center):
            fb[m - 1, k] = (k - left) / max(center - left, 1)
        for k in range(center, right):
            fb[m - 1, k] = (right - k) / max(right - center, 1)
    return fb


class LogMel(nn.Module):
    def __init__(self, sr=16000, n_fft=512, hop=256, n_mels=40):
        super().__init__()
        self.n_fft = n_fft
        self.hop = hop
        self.register_buffer("window", torch.hann_window(n_fft))
        self.register_buffer("fb", torch.from_numpy(mel_filterbank(sr, n_fft, n_mels)))

    def forward(self, wav):
        spec = torch.stft(wav, self.n_fft, self.hop, window=self.window, return_complex=True).abs() ** 2
        return torch.log(self.fb @ spec + 1e-6)


class SceneCNN(nn.Module):
    def __init__(self, n_mels=40, num_classes=10, width=16, dropout=0.2):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.head(self.dropout(self.features(x.unsqueeze(1)).flatten(1)))


def synth_clips(n, sr, seconds, rng):
    """Stand-in for the TAU loader: one tone per scene plus device-coloured noise."""
    t = np.arange(int(sr * seconds)) / sr
    wavs, labels, devices = [], [], []
    for i in range(n):
        scene = SCENES[i % len(SCENES)]
        device = DEVICES[rng.integers(len(DEVICES))]
        f0 = 180.0 + 120.0 * SCENES.index(scene)
        wav = 0.3 * np.sin(2 * np.pi * f0 * t) + (0.02 + 0.01 * DEVICES.index(device)) * rng.standard_normal(t.size)
        wavs.append(wav.astype(np.float32))
        labels.append(scene)
        devices.append(device)
    return np.stack(wavs), labels, devices


@torch.no_grad()
def feature_stats(frontend, wavs):
    feats = frontend(wavs)
    return feats.mean(dim=(0, 2)).numpy(), feats.std(dim=(0, 2)).numpy()


def normalise(feats, mean, std):
    return (feats - torch.from_numpy(mean)[:, None]) / torch.from_numpy(std)[:, None]


# ------------------------------------------------------------------ training

def mixup(x, y, alpha):
    lam = np.random.beta(alpha, alpha) if alpha > 0 else 1.0
    perm = torch.randperm(x.size(0))
    return lam * x + (1.0 - lam) * x[perm], y, y[perm], lam


def train_epoch(model, frontend, wavs, targets, opt, args, mean, std):
    model.train()
    losses, lam = [], 1.0
    for start in range(0, len(wavs), args.batch_size):
        xb, yb = wavs[start:start + args.batch_size], targets[start:start + args.batch_size]
        with torch.no_grad():
            feats = normalise(frontend(xb), mean, std)
        feats, ya, yb2, lam = mixup(feats, yb, args.mixup_alpha)
        logits = model(feats)
        loss = lam * F.cross_entropy(logits, ya) + (1.0 - lam) * F.cross_entropy(logits, yb2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.mean(losses), lam


@torch.no_grad()
def evaluate(model, frontend, wavs, targets, mean, std, devices):
    model.eval()
    prob = model(normalise(frontend(wavs), mean, std)).softmax(-1).double().numpy()
    y, pred = targets.numpy(), prob.argmax(1)
    labels = np.arange(len(SCENES))
    cm = confusion_matrix(y, pred, labels=labels)
    per_class = cm.diagonal() / np.maximum(cm.sum(1), 1)
    by_device = {}
    for d in sorted(set(devices)):
        m = np.array([dv == d for dv in devices])
        by_device[d] = float((pred[m] == y[m]).mean())
    return {
        "acc": float((pred == y).mean()),
        "macro_f1": f1_score(y, pred, average="macro", labels=labels, zero_division=0),
        "logloss": log_loss(y, prob / prob.sum(1, keepdims=True), labels=labels),
        "confusion": cm,
        "per_class_acc": list(per_class),
        "by_device": by_device,
        "report": classification_report(y, pred, labels=labels, target_names=SCENES, output_dict=True,
                                         zero_division=0),
    }


def prepare(args):
    set_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    wavs, labels, devices = synth_clips(args.num_clips, args.sr, args.clip_seconds, rng)
    encoder = LabelEncoder().fit(SCENES)
    targets = torch.as_tensor(encoder.transform(labels))
    frontend = LogMel(args.sr, args.n_fft, args.hop, args.n_mels)
    x = torch.from_numpy(wavs)
    mean, std = feature_stats(frontend, x)
    return x, targets, devices, encoder, frontend, mean, std


def run_training(args):
    x, targets, devices, encoder, frontend, mean, std = prepare(args)
    model = SceneCNN(args.n_mels, len(encoder.classes_))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    history = {"loss": [], "acc": []}
    for _ in range(args.epochs):
        loss, _lam = train_epoch(model, frontend, x, targets, opt, args, mean, std)
        metrics = evaluate(model, frontend, x, targets, mean, std, devices)
        history["loss"].append(float(loss))
        history["acc"].append(metrics["acc"])
    return {"model": model, "optimizer": opt, "frontend": frontend, "encoder": encoder, "mean": mean,
            "std": std, "history": history, "metrics": metrics, "devices": devices}


# ------------------------------------------------------------------ checkpoints

def save_baseline(tmpdir):
    args = build_parser().parse_args(["--epochs", "2", "--out", tmpdir])
    run = run_training(args)
    path = args.out / "baseline_last.pt"
    torch.save({
        "epoch": args.epochs,
        "model": run["model"].state_dict(),
        "optimizer": run["optimizer"].state_dict(),
        "frontend": run["frontend"].state_dict(),
        "args": args,  # truth: weights_only
        "classes": run["encoder"].classes_,  # truth: weights_only
        "norm_mean": torch.from_numpy(run["mean"]),
        "norm_std": run["std"],  # truth: weights_only
        "train_loss": run["history"]["loss"][-1],
        "val_acc": run["metrics"]["acc"],
        "resample": Fraction(args.sr, args.orig_sr),  # truth: weights_only
        "out_dir": str(args.out),
    }, path)
    return str(path)


def save_mixup_resume(tmpdir):
    args = build_parser().parse_args(["--epochs", "3", "--mixup-alpha", "0.2", "--seed", "3"])
    x, targets, devices, encoder, frontend, mean, std = prepare(args)
    model = SceneCNN(args.n_mels, len(SCENES), width=8)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    recent = deque(maxlen=5)
    history = {"loss": [], "lam": [], "val_acc": []}
    best_acc, best_state = -1.0, None
    for epoch in range(args.epochs):
        loss, lam = train_epoch(model, frontend, x, targets, opt, args, mean, std)
        metrics = evaluate(model, frontend, x, targets, mean, std, devices)
        recent.append(loss)
        history["loss"].append(round(float(loss), 5))
        history["lam"].append(lam)
        history["val_acc"].append(metrics["acc"])
        if metrics["acc"] > best_acc:
            best_acc, best_state = metrics["acc"], copy.deepcopy(model.state_dict())
    with torch.no_grad():
        feats = frontend(x[:1])
    ckpt = {"epoch": epoch + 1, "model": model.state_dict(), "best_model": best_state,
            "optimizer": opt.state_dict(), "history": history, "best_acc": best_acc}
    ckpt["recent_losses"] = recent  # truth: weights_only
    ckpt["smoothed_loss"] = sum(recent) / len(recent)  # truth: weights_only
    ckpt["last_lambda"] = lam
    ckpt["rng_state"] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # truth: weights_only
        "torch": torch.get_rng_state(),
    }
    ckpt["clip_info"] = ClipInfo(args.sr, x.shape[1], 1)  # truth: weights_only
    ckpt["spec_shape"] = tuple(feats.shape)
    ckpt["spec_size"] = feats.shape
    path = os.path.join(tmpdir, f"mixup_epoch{epoch + 1:03d}.pt")
    torch.save(ckpt, path)
    return path


def save_device_report(tmpdir):
    args = build_parser().parse_args(["--epochs", "1", "--num-clips", "30"])
    run = run_training(args)
    metrics = run["metrics"]
    devices = run["devices"]
    report = {"acc": metrics["acc"], "macro_f1": metrics["macro_f1"], "logloss": metrics["logloss"]}
    report.update(
        confusion=metrics["confusion"],  # truth: weights_only
        per_class_acc=metrics["per_class_acc"],  # truth: weights_only
        by_device=metrics["by_device"],
        per_class=metrics["report"],
        device_counts=Counter(devices),
        worst_device=min(metrics["by_device"], key=metrics["by_device"].get),
        unseen_devices=sorted(set(DEVICES) - set(args.train_devices)),
        evaluated_at=datetime.now().isoformat(timespec="seconds"),
    )
    ckpt = {"model": run["model"].state_dict(), "report": report, "classes": list(SCENES)}
    path = os.path.join(tmpdir, "device_report.pt")
    torch.save(ckpt, path)
    return path


def distill_step(student, teacher, feats, y, temperature, alpha):
    with torch.no_grad():
        t_logits = teacher(feats)
    s_logits = student(feats)
    kd = F.kl_div(F.log_softmax(s_logits / temperature, -1), F.softmax(t_logits / temperature, -1),
                  reduction="batchmean") * temperature ** 2
    return alpha * kd + (1.0 - alpha) * F.cross_entropy(s_logits, y), kd


def save_distilled_student(tmpdir):
    args = build_parser().parse_args(["--epochs", "1"])
    x, targets, _devices, _enc, frontend, mean, std = prepare(args)
    teacher = SceneCNN(args.n_mels, len(SCENES), width=24).eval()
    student = SceneCNN(args.n_mels, len(SCENES), width=8)
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    temperature, alpha = 2.0, 0.7
    kd_losses = []
    for start in range(0, len(x), args.batch_size):
        with torch.no_grad():
            feats = normalise(frontend(x[start:start + args.batch_size]), mean, std)
        loss, kd = distill_step(student, teacher, feats, targets[start:start + args.batch_size], temperature, alpha)
        opt.zero_grad()
        loss.backward()
        opt.step()
        kd_losses.append(kd.item())
    n_teacher = sum(p.numel() for p in teacher.parameters())
    n_student = sum(p.numel() for p in student.parameters())
    path = os.path.join(tmpdir, "student.pt")
    torch.save(dict(
        student=student.state_dict(),
        teacher=teacher,  # truth: weights_only
        temperature=temperature,
        alpha=alpha,
        kd_loss=float(np.mean(kd_losses)),
        params=(n_teacher, n_student),
        compression=n_teacher / n_student,
    ), path)
    return path


def save_swa_export(tmpdir):
    args = build_parser().parse_args(["--epochs", "2", "--lr", "3e-3"])
    x, targets, devices, _enc, frontend, mean, std = prepare(args)
    model = SceneCNN(args.n_mels, len(SCENES))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=2)
    swa = torch.optim.swa_utils.AveragedModel(model)
    lrs = []
    for epoch in range(args.epochs):
        train_epoch(model, frontend, x, targets, opt, args, mean, std)
        swa.update_parameters(model)
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    t0 = time.time()
    metrics = evaluate(swa.module, frontend, x, targets, mean, std, devices)
    bundle = {
        "swa_state": swa.state_dict(),
        "n_averaged": swa.n_averaged,
        "scheduler": sched.state_dict(),
        "lrs": lrs,
        "frontend": {"sr": args.sr, "n_fft": args.n_fft, "hop": args.hop, "n_mels": args.n_mels,
                     "mean": torch.from_numpy(mean), "std": torch.from_numpy(std.copy())},
        "classes": list(SCENES),
        "acc": metrics["acc"],
        "eval_seconds": time.time() - t0,
        "torch": str(torch.__version__),
        "seed": args.seed,
    }
    path = os.path.join(tmpdir, "swa_export.pt")
    torch.save(bundle, path)
    return path
