"""Speech-to-intent for a voice assistant (Fluent Speech Commands style).

Log-mel frames -> one intent label "action|object|location".  The manifest is the usual
FSC csv (path, speakerId, transcription, action, object, location); features are cached
log-mels.  Here both are synthesised so the script runs anywhere.

    python slu_intent_train.py --manifest data/fsc_train.csv --epochs 30 --out runs/slu
"""
import argparse
import copy
import dataclasses
import hashlib
import math
import os
import platform
import random
import sys
import time
from collections import Counter
from datetime import datetime

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import classification_report, confusion_matrix, f1_score
from sklearn.preprocessing import LabelEncoder

ACTIONS = ["activate", "deactivate", "increase", "decrease", "bring"]
OBJECTS = ["lights", "music", "heat", "volume", "none"]
LOCATIONS = ["kitchen", "bedroom", "washroom", "none"]
PCM_MAX = np.iinfo(np.int16).max
FRAME_SHIFT_MS = 10.0


def build_parser():
    p = argparse.ArgumentParser(description="speech-to-intent trainer")
    p.add_argument("--manifest", default="data/fsc_train.csv")
    p.add_argument("--n-mels", type=int, default=40)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--hidden", type=int, default=48)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--spec-augment", action="store_true")
    p.add_argument("--out", default="runs/slu")
    return p


@dataclasses.dataclass
class SpecAugmentConfig:
    freq_masks: int = 2
    freq_width: int = 6
    time_masks: int = 2
    time_width: int = 8

    def __call__(self, x):
        x = x.clone()
        for _ in range(self.freq_masks):
            f0 = random.randrange(0, x.shape[-1] - self.freq_width)
            x[..., f0:f0 + self.freq_width] = 0.0
        for _ in range(self.time_masks):
            t0 = random.randrange(0, x.shape[-2] - self.time_width)
            x[..., t0:t0 + self.time_width, :] = 0.0
        return x


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def synth_manifest(n=96, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        action = ACTIONS[rng.integers(len(ACTIONS))]
        obj = OBJECTS[rng.integers(len(OBJECTS))]
        loc = LOCATIONS[rng.integers(len(LOCATIONS))]
        rows.append({
            "path": f"wavs/speakers/spk{i % 12:02d}/utt{i:04d}.wav",
            "speakerId": f"spk{i % 12:02d}",
            "transcription": f"{action} {obj} {loc}",
            "action": action, "object": obj, "location": loc,
            "sample_rate": 16000,
            "duration": float(rng.uniform(1.0, 4.0)),
        })
    df = pd.DataFrame(rows)
    df["intent"] = df["action"] + "|" + df["object"] + "|" + df["location"]
    return df


def split_by_speaker(df, val_speakers=3):
    speakers = sorted(df["speakerId"].unique())
    held_out = set(speakers[-val_speakers:])
    return df[~df.speakerId.isin(held_out)].reset_index(drop=True), df[df.speakerId.isin(held_out)].reset_index(drop=True)


def featurize(df, encoder, n_mels, frames):
    """Stand-in for the cached log-mel loader: class-dependent offsets so the net can learn."""
    labels = encoder.transform(df["intent"])
    g = torch.Generator().manual_seed(len(df))
    feats = torch.randn(len(df), frames, n_mels, generator=g)
    feats += torch.from_numpy(labels % n_mels).float()[:, None, None] * 0.05
    return feats.numpy(), labels


def cmvn_stats(feats):
    flat = feats.reshape(-1, feats.shape[-1])
    return flat.mean(axis=0), flat.std(axis=0)


class IntentNet(nn.Module):
    def __init__(self, n_mels=40, hidden=48, n_intents=8):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(n_mels, hidden, 5, padding=2), nn.ReLU(),
                                  nn.Conv1d(hidden, hidden, 3, stride=2, padding=1), nn.ReLU())
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, n_intents)

    def forward(self, x):
        h = self.conv(x.transpose(1, 2)).transpose(1, 2)
        out, _ = self.gru(h)
        return self.head(out.max(dim=1).values)


class IntentTrainer:
    def __init__(self, args, n_intents):
        self.args = args
        self.model = IntentNet(args.n_mels, args.hidden, n_intents)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.lr, weight_decay=1e-2)
        self.steps_per_epoch = 6
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=args.lr, total_steps=max(1, args.epochs) * self.steps_per_epoch)
        self.augment = SpecAugmentConfig() if args.spec_augment else None
        self.best_acc = 0.0
        self.global_step = 0

    def train_epoch(self, feats, labels):
        self.model.train()
        x_all, y_all = torch.from_numpy(feats), torch.as_tensor(labels)
        order = torch.randperm(len(x_all))
        losses = []
        for idx in order.split(self.args.batch_size)[: self.steps_per_epoch]:
            x, y = x_all[idx], y_all[idx]
            if self.augment is not None:
                x = self.augment(x)
            loss = F.cross_entropy(self.model(x), y)
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
            self.optimizer.step()
            self.scheduler.step()
            self.global_step += 1
            losses.append(loss.item())
        return sum(losses) / len(losses)

    @torch.no_grad()
    def evaluate(self, feats, labels):
        self.model.eval()
        preds = self.model(torch.from_numpy(feats)).argmax(dim=1).numpy()
        return (preds == labels).mean(), preds

    @torch.no_grad()
    def latency_profile(self, feats, n=8):
        self.model.eval()
        out = []
        for i in range(min(n, len(feats))):
            t0 = time.perf_counter()
            self.model(torch.from_numpy(feats[i:i + 1]))
            out.append((time.perf_counter() - t0) * 1000.0)
        return out

    def state(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "global_step": self.global_step,
            "lr": self.scheduler.get_last_lr()[0],
        }


FACTORIES = {
    "IntentTrainer": lambda: IntentTrainer(build_parser().parse_args([]), n_intents=8),
}


def prepare(args):
    set_seed(args.seed)
    df = synth_manifest()
    train_df, val_df = split_by_speaker(df)
    encoder = LabelEncoder().fit(df["intent"])
    xtr, ytr = featurize(train_df, encoder, args.n_mels, args.frames)
    xva, yva = featurize(val_df, encoder, args.n_mels, args.frames)
    mean, std = cmvn_stats(xtr)
    eps = np.finfo(np.float32).eps
    xtr, xva = (xtr - mean) / (std + eps), (xva - mean) / (std + eps)
    return (train_df, val_df), encoder, (xtr, ytr, xva, yva), (mean, std, eps)


def save_best_intent_model(tmpdir):
    args = build_parser().parse_args(["--out", tmpdir, "--spec-augment"])
    (train_df, val_df), encoder, (xtr, ytr, xva, yva), (mean, std, eps) = prepare(args)
    trainer = IntentTrainer(args, n_intents=len(encoder.classes_))
    history = {
        "train_loss": [],
        "val_acc": [],  # truth: weights_only
        "lr": [],
    }
    best_state = None
    for epoch in range(args.epochs):
        loss = trainer.train_epoch(xtr, ytr)
        acc, _ = trainer.evaluate(xva, yva)
        history["train_loss"].append(loss)
        history["val_acc"].append(acc)
        history["lr"].append(trainer.scheduler.get_last_lr()[0])
        if best_state is None or acc > trainer.best_acc:
            trainer.best_acc = acc
            best_state = copy.deepcopy(trainer.model.state_dict())
    ckpt = {
        "epoch": args.epochs,
        "model": best_state,
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "args": vars(args),
        "intent_names": encoder.classes_.tolist(),
        "num_intents": len(encoder.classes_),
        "best_val_acc": trainer.best_acc,  # truth: weights_only
        "history": history,
        "cmvn": {
            "mean": torch.from_numpy(mean),
            "std": torch.from_numpy(std),
            "eps": eps,  # truth: weights_only
        },
        "spec_augment": dataclasses.asdict(trainer.augment),
    }
    path = os.path.join(tmpdir, "best.pt")
    torch.save(ckpt, path)
    return path


def save_resume_state(tmpdir):
    args = build_parser().parse_args(["--out", tmpdir, "--epochs", "1", "--spec-augment"])
    (train_df, val_df), encoder, (xtr, ytr, xva, yva), _ = prepare(args)
    trainer = IntentTrainer(args, n_intents=len(encoder.classes_))
    train_loss = trainer.train_epoch(xtr, ytr)
    ckpt = trainer.state()
    ckpt["epoch"] = 1
    ckpt["train_loss"] = train_loss
    ckpt["args"] = args  # truth: weights_only
    ckpt.update({
        "rng": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),  # truth: weights_only
            "torch": torch.get_rng_state(),
        },
        "spec_augment": trainer.augment,  # truth: weights_only
        "train_speakers": frozenset(train_df.speakerId),  # truth: weights_only
        "val_speakers": sorted(set(val_df.speakerId)),
        "sample_rate": train_df["sample_rate"].iloc[0],  # truth: weights_only
        "max_duration_s": float(train_df["duration"].max()),
        "saved_at": datetime.now().isoformat(timespec="seconds"),
    })
    path = os.path.join(tmpdir, "last.pt")
    torch.save(ckpt, path)
    return path


def save_eval_report(tmpdir):
    args = build_parser().parse_args(["--out", tmpdir])
    (train_df, val_df), encoder, (xtr, ytr, xva, yva), _ = prepare(args)
    trainer = IntentTrainer(args, n_intents=len(encoder.classes_))
    for _ in range(args.epochs):
        trainer.train_epoch(xtr, ytr)
    acc, preds = trainer.evaluate(xva, yva)
    latencies = trainer.latency_profile(xva)
    labels = list(range(len(encoder.classes_)))
    report = classification_report(yva, preds, labels=labels, output_dict=True, zero_division=0)
    slot_acc = {}
    for i, slot in enumerate(["action", "object", "location"]):
        true_slot = [encoder.classes_[t].split("|")[i] for t in yva]
        pred_slot = [encoder.classes_[p].split("|")[i] for p in preds]
        slot_acc[slot] = sum(a == b for a, b in zip(true_slot, pred_slot)) / len(true_slot)
    summary = dict(
        accuracy=round(acc, 4),  # truth: weights_only
        macro_f1=f1_score(yva, preds, average="macro"),
        slot_accuracy=slot_acc,
        report=report,
        confusion=confusion_matrix(yva, preds, labels=labels),  # truth: weights_only
        mean_latency_ms=sum(latencies) / len(latencies),
        p90_latency_ms=np.percentile(latencies, 90),  # truth: weights_only
    )
    env = {
        "platform": platform.uname(),  # truth: weights_only
        "host": platform.node(),
        "python": sys.version_info[:3],
        "torch": torch.__version__.split("+")[0],
        "numpy": np.__version__,
    }
    path = os.path.join(tmpdir, "eval.pt")
    torch.save({"model": trainer.model.state_dict(), "eval": summary, "env": env,
                "n_params": sum(p.numel() for p in trainer.model.parameters()),
                "val_intent_counts": Counter(val_df["intent"])}, path)
    return path


def save_ondevice_bundle(tmpdir):
    """What the wake-word box loads: weights, label map, front-end constants. No optimizer."""
    args = build_parser().parse_args(["--out", tmpdir, "--epochs", "1"])
    (train_df, _), encoder, (xtr, ytr, _, _), (mean, std, eps) = prepare(args)
    trainer = IntentTrainer(args, n_intents=len(encoder.classes_))
    trainer.train_epoch(xtr, ytr)
    names = encoder.classes_.tolist()
    label_map = {name: i for i, name in enumerate(names)}
    frontend = {
        "n_mels": args.n_mels,
        "frame_shift_ms": FRAME_SHIFT_MS,
        "max_frames": math.ceil(float(train_df["duration"].quantile(0.95)) * 1000 / FRAME_SHIFT_MS),
        "pcm_max": PCM_MAX,
        "cmvn_mean": mean.tolist(),
        "cmvn_std": torch.tensor(std),
        "eps": float(eps),
    }
    bundle = {
        "weights": trainer.model.state_dict(),
        "label_map": label_map,
        "slots": {"action": ACTIONS, "object": OBJECTS, "location": LOCATIONS},
        "frontend": frontend,
        "labels_sha1": hashlib.sha1("\n".join(names).encode()).hexdigest(),
        "built": time.time(),
    }
    path = os.path.join(tmpdir, "ondevice.pt")
    torch.save(bundle, path)
    return path


def save_traced_fallback(tmpdir):
    """Older firmware unpickles the whole module object instead of a state dict."""
    args = build_parser().parse_args(["--out", tmpdir, "--epochs", "1"])
    _, encoder, (xtr, ytr, _, _), _ = prepare(args)
    trainer = IntentTrainer(args, n_intents=len(encoder.classes_))
    trainer.train_epoch(xtr, ytr)
    model = trainer.model.eval()
    path = os.path.join(tmpdir, "intent_model_full.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def main(argv=None):
    args = build_parser().parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    print(save_best_intent_model(args.out))


if __name__ == "__main__":
    main()
