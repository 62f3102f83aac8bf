"""Log-mel CNN for environmental sound classification (ESC-50 / UrbanSound8K style).

python audio_classifier.py --epochs 30 --n-mels 64 --mixup 0.4 --ckpt-dir checkpoints/
"""
import argparse
import functools
import math
import os
import types
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight

SAMPLE_RATE = 8000
N_FFT = 128
HOP = 64
N_MELS = 8
CLASSES = ["dog_bark", "siren", "drilling", "siren", "dog_bark", "engine_idling", "siren", "drilling"]


@dataclass
class SpecAugmentConfig:
    freq_mask: int = 2
    time_mask: int = 4
    n_masks: int = 1


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    return 700.0 * (10 ** (m / 2595.0) - 1.0)


def mel_filterbank(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS):
    mels = np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2)
    bins = np.floor((n_fft + 1) * mel_to_hz(mels) / sr).astype(int)
    fb = np.zeros((n_mels, n_fft // 2 + 1), dtype="float32")
    for m in range(1, n_mels + 1):
        lo, c, hi = bins[m - 1], bins[m], bins[m + 1]
        for k in range(lo, c):
            fb[m - 1, k] = (k - lo) / max(c - lo, 1)
        for k in range(c, hi):
            fb[m - 1, k] = (hi - k) / max(hi - c, 1)
    return fb


def log_mel(wave, fb):
    spec = torch.stft(wave, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True).abs() ** 2
    return torch.log(torch.from_numpy(fb) @ spec + 1e-6)


def synthetic_clips(n=len(CLASSES), seconds=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, int(SAMPLE_RATE * seconds), generator=g)


class SoundCNN(nn.Module):
    def __init__(self, n_classes=4, width=8):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x.unsqueeze(1))))
        return self.head(h.mean(dim=(2, 3)))


class AudioTrainer:
    """Keeps everything a resume needs; `checkpoint()` is what the training loop saves."""

    def __init__(self, lr=1e-3, mixup_alpha=0.4, seed=0):
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.encoder = LabelEncoder().fit(CLASSES)
        self.fb = mel_filterbank()
        self.model = SoundCNN(n_classes=len(self.encoder.classes_))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=lr * 10, total_steps=10)
        self.mixup_alpha = mixup_alpha
        self.global_step = 0
        self.best_acc = 0.0
        self.history = {"train_loss": [], "val_acc": []}

    def features(self, waves):
        return torch.stack([log_mel(w, self.fb) for w in waves])

    def step(self, waves, labels):
        x = self.features(waves)
        y = torch.as_tensor(self.encoder.transform(labels))
        lam = self.rng.beta(self.mixup_alpha, self.mixup_alpha)
        perm = torch.randperm(len(x))
        logits = self.model(lam * x + (1 - lam) * x[perm])
        loss = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[perm])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.global_step += 1
        self.history["train_loss"].append(loss.item())
        self.last_lam = lam
        return loss

    @torch.no_grad()
    def evaluate(self, waves, labels):
        self.model.eval()
        pred = self.model(self.features(waves)).argmax(1).numpy()
        self.model.train()
        true = self.encoder.transform(labels)
        acc = accuracy_score(true, pred)
        self.history["val_acc"].append(acc)
        self.best_acc = max(self.best_acc, acc)
        return pred, true

    def checkpoint(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "global_step": self.global_step,
            "best_acc": self.best_acc,
            "history": self.history,
        }


def build_parser():
    p = argparse.ArgumentParser(description="log-mel CNN")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--mixup", type=float, default=0.4)
    p.add_argument("--n-mels", type=int, default=N_MELS)
    p.add_argument("--ckpt-dir", default="checkpoints")
    return p


def run_epoch(trainer, epochs=1):
    waves = synthetic_clips()
    for _ in range(epochs):
        trainer.step(waves, CLASSES)
    return trainer.evaluate(waves, CLASSES)


def save_resume_checkpoint(tmpdir):
    trainer = AudioTrainer()
    pred, true = run_epoch(trainer)
    ckpt = trainer.checkpoint()
    ckpt["classes"] = list(trainer.encoder.classes_)  # truth: weights_only
    ckpt["class_names"] = trainer.encoder.classes_.tolist()
    ckpt["label_encoder"] = trainer.encoder  # truth: weights_only
    ckpt["mixup_lam"] = trainer.last_lam
    ckpt["rng"] = trainer.rng.bit_generator.state
    path = os.path.join(tmpdir, f"step{trainer.global_step:06d}.pt")
    torch.save(ckpt, path)
    return path


def save_class_balance(tmpdir):
    trainer = AudioTrainer()
    y = trainer.encoder.transform(CLASSES)
    weights = compute_class_weight("balanced", classes=np.unique(y), y=y)
    counts = np.bincount(y)
    torch.save({
        "model": trainer.model.state_dict(),
        "class_weights": weights,  # truth: weights_only
        "class_weights_t": torch.tensor(weights, dtype=torch.float32),
        "counts": counts.tolist(),
        "majority": counts.argmax(),  # truth: weights_only
        "n_classes": len(np.unique(y)),
        "imbalance": float(counts.max() / counts.min()),
    }, os.path.join(tmpdir, "balance.pt"))
    return os.path.join(tmpdir, "balance.pt")


def save_eval_metrics(tmpdir):
    trainer = AudioTrainer()
    pred, true = run_epoch(trainer)
    cm = confusion_matrix(true, pred, labels=range(len(trainer.encoder.classes_)))
    per_class_recall = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
    metrics = {
        "accuracy": accuracy_score(true, pred),
        "macro_f1": f1_score(true, pred, average="macro", zero_division=0),
        "per_class_f1": f1_score(true, pred, average=None, zero_division=0),  # truth: weights_only
        "confusion": cm.tolist(),
        "confusion_raw": cm,  # truth: weights_only
        "worst_recall": per_class_recall.min(),  # truth: weights_only
        "mean_recall": sum(per_class_recall.tolist()) / len(per_class_recall),
    }
    path = os.path.join(tmpdir, "eval.pt")
    torch.save({"model": trainer.model.state_dict(), "metrics": metrics}, path)
    return path


def save_training_objects(tmpdir):
    args = build_parser().parse_args(["--lr", "0.01"])
    trainer = AudioTrainer(lr=args.lr, mixup_alpha=args.mixup)
    run_epoch(trainer)
    ckpt = dict(trainer.checkpoint())
    ckpt.update(dict(
        args=vars(args),
        optimizer_obj=trainer.optimizer,  # truth: weights_only
        scheduler_obj=trainer.scheduler,  # truth: weights_only
        loss_fn=functools.partial(F.cross_entropy, label_smoothing=0.1),  # truth: weights_only
        spec_augment=SpecAugmentConfig(),  # truth: weights_only
        spec_augment_dict=asdict(SpecAugmentConfig()),
    ))
    path = os.path.join(tmpdir, "objects.pt")
    torch.save(ckpt, path)
    return path


def save_frontend(tmpdir):
    fb = mel_filterbank()
    waves = synthetic_clips(n=2)
    feats = torch.stack([log_mel(w, fb) for w in waves])
    frontend = {
        "sample_rate": SAMPLE_RATE,
        "n_fft": N_FFT,
        "hop": HOP,
        "mel_fb": torch.from_numpy(fb),
        "mel_fb_np": fb,  # truth: weights_only
        "f_max": hz_to_mel(SAMPLE_RATE / 2),  # truth: weights_only
        "f_max_py": 2595.0 * math.log10(1.0 + SAMPLE_RATE / 2 / 700.0),
        "feat_mean": feats.mean(),
        "feat_std": feats.numpy().std(),  # truth: weights_only
        "norm": types.SimpleNamespace(mean=0.0, std=1.0),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "frontend.pt")
    torch.save(frontend, path)
    return path


def save_export(tmpdir):
    """No mark: the release checkpoint keeps only loadable values."""
    trainer = AudioTrainer()
    run_epoch(trainer)
    export = {"state_dict": trainer.model.state_dict()}
    export["classes"] = [str(c) for c in trainer.encoder.classes_]
    export["sample_rate"] = SAMPLE_RATE
    export["n_mels"] = N_MELS
    export["mel_fb"] = torch.from_numpy(trainer.fb).clone()
    export["best_acc"] = trainer.best_acc
    export["step"] = trainer.global_step
    path = os.path.join(tmpdir, "export.pt")
    torch.save(export, path)
    return path


if __name__ == "__main__":
    a = build_parser().parse_args()
    t = AudioTrainer(lr=a.lr, mixup_alpha=a.mixup)
    run_epoch(t, a.epochs)
    os.makedirs(a.ckpt_dir, exist_ok=True)
    torch.save(t.checkpoint(), os.path.join(a.ckpt_dir, "last.pt"))
