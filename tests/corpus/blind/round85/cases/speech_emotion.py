"""Speech emotion recognition (4-class categorical + arousal/valence) on log-mel features.

Config lives in YAML (OmegaConf); override from the command line with dotlist syntax:

    python speech_emotion.py optim.epochs=40 model.dropout=0.3 data.test_speakers=2

Evaluation is speaker independent: test speakers never appear in training. The headline metric
is UAR (unweighted average recall), as in the IEMOCAP / MSP-Podcast literature, plus the
concordance correlation coefficient (CCC) of the dimensional head.
"""
import os
import sys
import time
from collections import Counter
from datetime import datetime, timezone

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import DataLoader, Dataset

torch.set_num_threads(1)

DEFAULT_CONFIG = """
data:
  sample_rate: 16000
  clip_seconds: 0.5
  emotions: [neutral, happy, sad, angry]
  n_speakers: 8
  clips_per_emotion: 4
  test_speakers: 2
features:
  sample_rate: ${data.sample_rate}
  n_fft: 400
  hop_length: 160
  n_mels: 40
  fmin: 50.0
  fmax: 7600.0
  log_offset: 1.0e-6
model:
  channels: [16, 32]
  attn_dim: 32
  dropout: 0.2
optim:
  lr: 2.0e-3
  max_lr: 5.0e-3
  weight_decay: 1.0e-4
  epochs: 3
  batch_size: 16
train:
  seed: 7
  class_balanced: true
  spec_augment:
    time_masks: 2
    time_width: 6
    freq_masks: 1
    freq_width: 5
"""

# arousal / valence anchors per category (Russell circumplex, scaled to [-1, 1])
DIMENSIONS = {"neutral": (0.0, 0.0), "happy": (0.6, 0.8), "sad": (-0.6, -0.6), "angry": (0.8, -0.6)}


def load_config(overrides=()):
    base = OmegaConf.create(DEFAULT_CONFIG)
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


# ----------------------------------------------------------------------------- features

def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    return 700.0 * (10 ** (m / 2595.0) - 1.0)


def mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax):
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, bins.size))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        fb[m] = np.clip(np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), 0.0, None)
    return fb


def log_mel(wave, fcfg, fb=None):
    fb = mel_filterbank(fcfg.sample_rate, fcfg.n_fft, fcfg.n_mels, fcfg.fmin, fcfg.fmax) if fb is None else fb
    frames = np.lib.stride_tricks.sliding_window_view(wave, fcfg.n_fft)[:: fcfg.hop_length]
    power = np.abs(np.fft.rfft(frames * np.hanning(fcfg.n_fft), n=fcfg.n_fft)) ** 2
    return np.log(power @ fb.T + fcfg.log_offset).T.astype(np.float32)  # (n_mels, frames)


def synthesize_corpus(cfg):
    """Acted-emotion stand-in: each speaker has its own f0; emotions change pitch, energy and jitter."""
    rng = np.random.default_rng(cfg.train.seed)
    sr, n = cfg.data.sample_rate, int(cfg.data.sample_rate * cfg.data.clip_seconds)
    t = np.arange(n) / sr
    style = {"neutral": (1.0, 0.25, 0.01), "happy": (1.35, 0.45, 0.03), "sad": (0.8, 0.15, 0.005),
             "angry": (1.25, 0.8, 0.06)}
    fb = mel_filterbank(sr, cfg.features.n_fft, cfg.features.n_mels, cfg.features.fmin, cfg.features.fmax)
    feats, labels, speakers, arousal, valence = [], [], [], [], []
    for s in range(cfg.data.n_speakers):
        f0 = 110.0 if s % 2 else 210.0
        f0 *= 1.0 + 0.05 * rng.standard_normal()
        for emo in cfg.data.emotions:
            pitch, energy, jitter = style[emo]
            for _ in range(cfg.data.clips_per_emotion):
                inst = f0 * pitch * (1.0 + jitter * np.cumsum(rng.standard_normal(n)) / np.sqrt(n))
                phase = 2 * np.pi * np.cumsum(inst) / sr
                wave = energy * sum(np.sin(k * phase) / k for k in range(1, 6))
                wave = wave + 0.02 * rng.standard_normal(n)
                feats.append(log_mel(wave, cfg.features, fb))
                labels.append(emo)
                speakers.append(f"spk{s:02d}")
                a, v = DIMENSIONS[emo]
                arousal.append(a + 0.1 * rng.standard_normal())
                valence.append(v + 0.1 * rng.standard_normal())
    return {
        "features": np.stack(feats),
        "labels": labels,
        "speakers": speakers,
        "arousal": np.asarray(arousal, dtype=np.float32),
        "valence": np.asarray(valence, dtype=np.float32),
    }


def speaker_split(speakers, n_test, seed):
    rng = np.random.default_rng(seed)
    all_spk = np.unique(speakers)
    test = rng.choice(all_spk, size=n_test, replace=False)
    return np.setdiff1d(all_spk, test), np.sort(test)


class EmotionClips(Dataset):
    def __init__(self, features, labels, arousal, valence, spec_augment=None):
        self.features = torch.from_numpy(features)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.dims = torch.from_numpy(np.stack([arousal, valence], axis=1))
        self.spec_augment = dict(spec_augment) if spec_augment else None

    def __len__(self):
        return self.labels.shape[0]

    def _mask(self, x):
        sa = self.spec_augment
        x = x.clone()
        for _ in range(sa["time_masks"]):
            w = int(torch.randint(0, sa["time_width"] + 1, ()))
            t0 = int(torch.randint(0, max(1, x.shape[1] - w), ()))
            x[:, t0:t0 + w] = x.mean()
        for _ in range(sa["freq_masks"]):
            w = int(torch.randint(0, sa["freq_width"] + 1, ()))
            f0 = int(torch.randint(0, max(1, x.shape[0] - w), ()))
            x[f0:f0 + w, :] = x.mean()
        return x

    def __getitem__(self, i):
        x = self.features[i]
        if self.spec_augment:
            x = self._mask(x)
        return x, self.labels[i], self.dims[i]


# ----------------------------------------------------------------------------- model

class AttentiveCRNN(nn.Module):
    def __init__(self, n_mels=40, channels=(16, 32), attn_dim=32, n_classes=4, dropout=0.2):
        super().__init__()
        layers, c_in = [], 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d((2, 1))]
            c_in = c
        self.conv = nn.Sequential(*layers)
        feat = c_in * (n_mels // 2 ** len(channels))
        self.attn = nn.Sequential(nn.Linear(feat, attn_dim), nn.Tanh(), nn.Linear(attn_dim, 1))
        self.drop = nn.Dropout(dropout)
        self.cls_head = nn.Linear(feat, n_classes)
        self.dim_head = nn.Linear(feat, 2)

    def forward(self, x):
        h = self.conv(x.unsqueeze(1))  # (B, C, M', T)
        h = h.flatten(1, 2).transpose(1, 2)  # (B, T, C*M')
        w = torch.softmax(self.attn(h), dim=1)
        pooled = self.drop((w * h).sum(dim=1))
        return self.cls_head(pooled), torch.tanh(self.dim_head(pooled))


# ----------------------------------------------------------------------------- metrics

def concordance_cc(x, y):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    return 2.0 * cov / (x.var() + y.var() + (mx - my) ** 2)


def classification_summary(y_true, y_pred, labels):
    idx = list(range(len(labels)))
    per_class = recall_score(y_true, y_pred, labels=idx, average=None, zero_division=0)
    summary = {
        "uar": recall_score(y_true, y_pred, labels=idx, average="macro", zero_division=0),
        "wa": accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, labels=idx, average="macro", zero_division=0),
        "per_class_recall": {lab: float(r) for lab, r in zip(labels, per_class)},
    }
    return summary, confusion_matrix(y_true, y_pred, labels=idx)


# ----------------------------------------------------------------------------- trainer

class SERTrainer:
    def __init__(self, cfg, model, class_weights=None, steps_per_epoch=1):
        self.cfg = cfg
        self.model = model
        self.criterion = nn.CrossEntropyLoss(weight=class_weights)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=cfg.optim.max_lr, epochs=cfg.optim.epochs, steps_per_epoch=steps_per_epoch)
        self.labels = list(cfg.data.emotions)
        self.history = []
        self.best_uar = -1.0
        self.best_epoch = None
        self.best_state = None
        self.global_step = 0

    def train_epoch(self, loader):
        self.model.train()
        losses = []
        for x, y, dims in loader:
            logits, dim_pred = self.model(x)
            loss = self.criterion(logits, y) + 0.5 * F.mse_loss(dim_pred, dims)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.global_step += 1
            losses.append(loss.item())
        return sum(losses) / len(losses)

    @torch.no_grad()
    def evaluate(self, loader):
        self.model.eval()
        y_true, y_pred, dims_true, dims_pred = [], [], [], []
        for x, y, dims in loader:
            logits, dim_pred = self.model(x)
            y_true.append(y.numpy())
            y_pred.append(logits.argmax(dim=1).numpy())
            dims_true.append(dims.numpy())
            dims_pred.append(dim_pred.numpy())
        y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
        dims_true, dims_pred = np.concatenate(dims_true), np.concatenate(dims_pred)
        summary, cm = classification_summary(y_true, y_pred, self.labels)
        ccc_a = concordance_cc(dims_true[:, 0], dims_pred[:, 0])
        ccc_v = concordance_cc(dims_true[:, 1], dims_pred[:, 1])
        return summary, cm, ccc_a, ccc_v

    def fit(self, train_loader, val_loader):
        for epoch in range(self.cfg.optim.epochs):
            loss = self.train_epoch(train_loader)
            summary, _, ccc_a, ccc_v = self.evaluate(val_loader)
            self.history.append({"epoch": epoch, "loss": loss, "uar": summary["uar"], "ccc_arousal": ccc_a})
            if summary["uar"] > self.best_uar:
                self.best_uar = summary["uar"]
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.best_epoch = np.argmax([h["uar"] for h in self.history])
        return self.history

    def save(self, path, **extra):
        torch.save({
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict(),
            "global_step": self.global_step,
            "best_uar": self.best_uar,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            **extra,
        }, path)
        return path


def build_experiment(cfg):
    """Features, speaker-independent split, loaders and a trainer, all from the config."""
    torch.manual_seed(cfg.train.seed)
    corpus = synthesize_corpus(cfg)
    # the config's label order, not LabelEncoder's alphabetical one
    label_to_idx = {emo: i for i, emo in enumerate(cfg.data.emotions)}
    y = np.asarray([label_to_idx[lab] for lab in corpus["labels"]])
    train_spk, test_spk = speaker_split(corpus["speakers"], cfg.data.test_speakers, cfg.train.seed)
    spk = np.asarray(corpus["speakers"])
    tr, te = np.isin(spk, train_spk), np.isin(spk, test_spk)
    feats = corpus["features"]
    train_ds = EmotionClips(feats[tr], y[tr], corpus["arousal"][tr], corpus["valence"][tr],
                            spec_augment=cfg.train.spec_augment)
    test_ds = EmotionClips(feats[te], y[te], corpus["arousal"][te], corpus["valence"][te])
    gen = torch.Generator().manual_seed(cfg.train.seed)
    train_loader = DataLoader(train_ds, batch_size=cfg.optim.batch_size, shuffle=True, generator=gen)
    test_loader = DataLoader(test_ds, batch_size=cfg.optim.batch_size)
    weights = None
    if cfg.train.class_balanced:
        w = compute_class_weight("balanced", classes=np.arange(len(cfg.data.emotions)), y=y[tr])
        weights = torch.tensor(w, dtype=torch.float32)
    model = AttentiveCRNN(cfg.features.n_mels, tuple(cfg.model.channels), cfg.model.attn_dim,
                          len(cfg.data.emotions), cfg.model.dropout)
    trainer = SERTrainer(cfg, model, class_weights=weights, steps_per_epoch=len(train_loader))
    meta = {"corpus": corpus, "y": y, "train_speakers": train_spk, "test_speakers": test_spk,
            "train_mask": tr}
    return trainer, train_loader, test_loader, meta


# ----------------------------------------------------------------------------- checkpoints

def save_config_snapshot(tmpdir):
    cfg = load_config(["optim.epochs=2", "model.dropout=0.1"])
    trainer, train_loader, test_loader, _ = build_experiment(cfg)
    trainer.fit(train_loader, test_loader)
    extra = {
        "hydra_cfg": cfg,  # truth: weights_only
        "config_yaml": OmegaConf.to_yaml(cfg),
        "emotions": cfg.data.emotions,  # truth: weights_only
        "feature_cfg": OmegaConf.to_container(cfg.features, resolve=True),
        "sample_rate": cfg.features.sample_rate,
        "channels": list(cfg.model.channels),
        "spec_augment": dict(cfg.train.spec_augment),
        "argv": list(sys.argv[1:]),
    }
    return trainer.save(os.path.join(tmpdir, "ser_config.ckpt"), **extra)


def save_best_epoch(tmpdir):
    cfg = load_config(["optim.epochs=3"])
    trainer, train_loader, test_loader, _ = build_experiment(cfg)
    trainer.fit(train_loader, test_loader)
    extra = {
        "best_epoch": trainer.best_epoch,  # truth: weights_only
        "history": trainer.history,  # truth: weights_only
        "best_state": trainer.best_state,
        "last_lr": trainer.scheduler.get_last_lr()[0],
        "scheduler": trainer.scheduler,  # truth: weights_only
        "epochs_run": len(trainer.history),
        "best_uar_pct": round(100 * trainer.best_uar, 2),
    }
    return trainer.save(os.path.join(tmpdir, "ser_best.ckpt"), **extra)


def save_speaker_normalization(tmpdir):
    cfg = load_config()
    corpus = synthesize_corpus(cfg)
    feats, speakers = corpus["features"], np.asarray(corpus["speakers"])
    train_spk, test_spk = speaker_split(corpus["speakers"], cfg.data.test_speakers, cfg.train.seed)
    cmvn = {}
    for spk in sorted(set(corpus["speakers"])):
        sel = feats[speakers == spk]
        cmvn[spk] = {
            "mean": torch.from_numpy(sel.mean(axis=(0, 2))),
            "std": torch.from_numpy(sel.std(axis=(0, 2)) + 1e-5),
            "n_utts": int(sel.shape[0]),
            "frames": sel.shape[0] * sel.shape[2],
        }
    train_feats = feats[np.isin(speakers, train_spk)]
    ckpt = {
        "cmvn": cmvn,
        "global_mean": train_feats.mean(axis=(0, 2)),  # truth: weights_only
        "global_std": torch.tensor(train_feats.std(axis=(0, 2))),
        "n_mels": cfg.features.n_mels,
        "speakers": {
            "train": train_spk.tolist(),
            "test": test_spk,  # truth: weights_only
        },
        "clip_frames": feats.shape[-1],
    }
    path = os.path.join(tmpdir, "cmvn.pt")
    torch.save(ckpt, path)
    return path


def save_label_space(tmpdir):
    cfg = load_config()
    corpus = synthesize_corpus(cfg)
    le = LabelEncoder().fit(corpus["labels"])
    y = le.transform(corpus["labels"])
    weights = compute_class_weight("balanced", classes=np.arange(len(le.classes_)), y=y)
    ckpt = {}
    ckpt["label_encoder"] = le  # truth: weights_only
    ckpt["classes"] = le.classes_.tolist()
    ckpt["class_weights"] = weights  # truth: weights_only
    ckpt["class_weights_tensor"] = torch.as_tensor(weights, dtype=torch.float32)
    ckpt["majority_class"] = le.classes_[np.bincount(y).argmax()]  # truth: weights_only
    ckpt["label_counts"] = dict(Counter(corpus["labels"]))
    ckpt["idx_to_label"] = dict(enumerate(le.classes_.tolist()))
    ckpt["dimensions"] = DIMENSIONS
    path = os.path.join(tmpdir, "labels.pt")
    torch.save(ckpt, path)
    return path


def save_eval_report(tmpdir):
    cfg = load_config(["optim.epochs=2"])
    trainer, train_loader, test_loader, meta = build_experiment(cfg)
    trainer.fit(train_loader, test_loader)
    t0 = time.perf_counter()
    summary, cm, ccc_a, ccc_v = trainer.evaluate(test_loader)
    report = {
        "metrics": summary,
        "confusion": cm,  # truth: weights_only
        "confusion_norm": np.round(cm / np.maximum(cm.sum(axis=1, keepdims=True), 1), 3).tolist(),
        "ccc_arousal": ccc_a,  # truth: weights_only
        "ccc_valence": float(ccc_v),
        "test_speakers": meta["test_speakers"].tolist(),
        "evaluated_at": datetime.now(timezone.utc),  # truth: weights_only
        "eval_seconds": time.perf_counter() - t0,
    }
    return trainer.save(os.path.join(tmpdir, "ser_eval.ckpt"), **report)


def save_deployable(tmpdir):
    cfg = load_config(["optim.epochs=2"])
    trainer, train_loader, test_loader, meta = build_experiment(cfg)
    trainer.fit(train_loader, test_loader)
    summary, _, ccc_a, _ = trainer.evaluate(test_loader)
    train_feats = meta["corpus"]["features"][meta["train_mask"]]
    package = {
        "state_dict": trainer.best_state or trainer.model.state_dict(),
        "arch": type(trainer.model).__name__,
        "labels": list(cfg.data.emotions),
        "mel": OmegaConf.to_container(cfg.features, resolve=True),
        "channels": [int(c) for c in cfg.model.channels],
        "cmvn_mean": torch.from_numpy(train_feats.mean(axis=(0, 2))),
        "cmvn_std": torch.from_numpy(train_feats.std(axis=(0, 2))),
        "sample_rate": int(cfg.data.sample_rate),
        "uar": summary["uar"],
        "ccc_arousal": round(float(ccc_a), 4),
        "num_params": sum(p.numel() for p in trainer.model.parameters()),
        "exported": datetime.now(timezone.utc).isoformat(),
    }
    path = os.path.join(tmpdir, "ser_package.pt")
    torch.save(package, path)
    return path


FACTORIES = {
    "EmotionClips": lambda: EmotionClips(np.zeros((4, 40, 48), np.float32), [0, 1, 2, 3],
                                         np.zeros(4, np.float32), np.zeros(4, np.float32),
                                         spec_augment=load_config().train.spec_augment),
    "SERTrainer": lambda: build_experiment(load_config())[0],
}


def main(argv=None):
    cfg = load_config(sys.argv[1:] if argv is None else argv)
    trainer, train_loader, test_loader, _ = build_experiment(cfg)
    trainer.fit(train_loader, test_loader)
    os.makedirs("checkpoints", exist_ok=True)
    trainer.save(os.path.join("checkpoints", "ser_last.ckpt"), best_epoch=int(trainer.best_epoch))
    print(f"best UAR {trainer.best_uar:.3f}")


if __name__ == "__main__":
    main()
