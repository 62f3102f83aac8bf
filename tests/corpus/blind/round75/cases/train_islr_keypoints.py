#!/usr/bin/env python
"""Isolated sign-language recognition (ISLR) from MediaPipe-style holistic keypoints.

    python train_islr_keypoints.py --data-root data/wlasl_kp --num-frames 16 --epochs 30

Each clip is a (T, 75, 3) array: 33 pose landmarks, then 21 left-hand and 21 right-hand landmarks,
(x, y, visibility). Clips are centred on the shoulder midpoint and scaled by shoulder width, then
a GRU over per-frame embeddings predicts the gloss. Signer-independent split: the last signers
are held out for validation.
"""
import argparse
import os
import random
import time
from collections import Counter, deque
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import classification_report, f1_score
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

POSE = slice(0, 33)
LEFT_HAND = slice(33, 54)
RIGHT_HAND = slice(54, 75)
KEYPOINT_GROUPS = {"pose": POSE, "left_hand": LEFT_HAND, "right_hand": RIGHT_HAND}
NUM_JOINTS = 75
L_SHOULDER, R_SHOULDER = 11, 12
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
              (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]
GLOSSES = ["hello", "thanks", "please", "sorry", "book", "drink", "mother", "father"]


def build_parser():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-root", type=Path, default=Path("data/wlasl_kp"))
    p.add_argument("--out-dir", default="runs/islr")
    p.add_argument("--num-frames", type=int, default=16)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--val-signers", type=int, nargs="+", default=[7, 8])
    p.add_argument("--ema-decay", type=float, default=0.99)
    p.add_argument("--seed", type=int, default=0)
    return p


def parse_args(argv=None):
    return build_parser().parse_args([] if argv is None else argv)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def synth_corpus(clips_per_gloss=24, num_frames=16, n_signers=9, seed=0):
    """Stand-in for the extracted .npz clips: every gloss gets a characteristic hand trajectory."""
    rng = np.random.default_rng(seed)
    X, labels, signers = [], [], []
    base = rng.normal(0.5, 0.1, (NUM_JOINTS, 2))
    base[L_SHOULDER], base[R_SHOULDER] = (0.4, 0.6), (0.6, 0.6)
    for gi, gloss in enumerate(GLOSSES):
        direction = np.array([np.cos(gi), np.sin(gi)]) * 0.02
        for c in range(clips_per_gloss):
            t = np.arange(num_frames)[:, None, None]
            clip = base[None] + rng.normal(0, 0.01, (num_frames, NUM_JOINTS, 2))
            clip[:, LEFT_HAND] += t * direction
            clip[:, RIGHT_HAND] -= t * direction[::-1]
            vis = (rng.random((num_frames, NUM_JOINTS, 1)) > 0.05).astype(np.float32)
            X.append(np.concatenate([clip, vis], -1))
            labels.append(gloss)
            signers.append(c % n_signers)
    return np.stack(X).astype(np.float32), np.array(labels), np.array(signers)


def normalize_clips(X, eps=np.finfo(np.float32).eps):
    """Centre on the shoulder midpoint, scale by shoulder width, drop the visibility channel."""
    xy = X[..., :2]
    centre = (xy[:, :, L_SHOULDER] + xy[:, :, R_SHOULDER]) / 2
    width = np.linalg.norm(xy[:, :, L_SHOULDER] - xy[:, :, R_SHOULDER], axis=-1)
    out = (xy - centre[:, :, None]) / (width[:, :, None, None] + eps)
    return out * X[..., 2:3]


def fit_norm_stats(X):
    return {"mean": X.mean(axis=(0, 1)), "std": X.std(axis=(0, 1)) + 1e-6}


class KeypointClips(Dataset):
    def __init__(self, X=None, y=None, mean=None, std=None):
        X = np.zeros((1, 16, NUM_JOINTS, 2), np.float32) if X is None else X
        self.X = torch.from_numpy(((X - (0 if mean is None else mean)) / (1 if std is None else std)).astype(np.float32))
        self.y = torch.zeros(len(X), dtype=torch.long) if y is None else torch.as_tensor(y)

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i].flatten(1), self.y[i]


class ISLRNet(nn.Module):
    def __init__(self, num_classes=8, hidden=64, layers=1, dropout=0.1):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(NUM_JOINTS * 2, hidden), nn.GELU(), nn.Dropout(dropout))
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, num_classes)

    def forward(self, x):
        h, _ = self.gru(self.embed(x))
        return self.head(h.mean(1))


def topk_hits(logits, y, k):
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == y[:, None]).any(1).sum().item()


def run_epoch(model, loader, criterion, optimizer=None, ema=None):
    train = optimizer is not None
    model.train(train)
    total, loss_sum, top1, top5 = 0, 0.0, 0, 0
    for xb, yb in loader:
        with torch.set_grad_enabled(train):
            logits = model(xb)
            loss = criterion(logits, yb)
        if train:
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
        total += len(yb)
        loss_sum += loss.item() * len(yb)
        top1 += topk_hits(logits, yb, 1)
        top5 += topk_hits(logits, yb, 5)
    return {"loss": loss_sum / total, "top1": top1 / total, "top5": top5 / total}


def make_split(args):
    X, labels, signers = synth_corpus(num_frames=args.num_frames, seed=args.seed)
    vocab = np.unique(labels)
    y = np.searchsorted(vocab, labels)
    Xn = normalize_clips(X)
    val_mask = np.isin(signers, args.val_signers)
    return Xn, y, labels, signers, vocab, val_mask


def train(args):
    seed_everything(args.seed)
    Xn, y, labels, signers, vocab, val_mask = make_split(args)
    stats = fit_norm_stats(Xn[~val_mask])
    train_ds = KeypointClips(Xn[~val_mask], y[~val_mask], stats["mean"], stats["std"])
    val_ds = KeypointClips(Xn[val_mask], y[val_mask], stats["mean"], stats["std"])
    train_dl = DataLoader(train_ds, batch_size=args.batch_size, shuffle=True)
    val_dl = DataLoader(val_ds, batch_size=64)

    model = ISLRNet(len(vocab), args.hidden, args.layers, args.dropout)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema_decay))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * len(train_dl))
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)

    history = {"train_loss": [], "val_loss": [], "val_top1": [], "val_top5": []}
    best = {"top1": -1.0, "epoch": -1}
    recent = deque(maxlen=5)
    for epoch in range(args.epochs):
        tr = run_epoch(model, train_dl, criterion, optimizer, ema)
        scheduler.step()
        va = run_epoch(ema.module, val_dl, criterion)
        history["train_loss"].append(tr["loss"])
        for key in ("loss", "top1", "top5"):
            history[f"val_{key}"].append(va[key])
        recent.append(va["top1"])
        if va["top1"] > best["top1"]:
            best = {"top1": va["top1"], "top5": va["top5"], "epoch": epoch}
    return {
        "model": model, "ema": ema, "optimizer": optimizer, "scheduler": scheduler,
        "vocab": vocab, "stats": stats, "history": history, "best": best, "recent": recent,
        "labels": labels, "signers": signers, "val_mask": val_mask, "y": y, "val_ds": val_ds,
    }


def serializable_args(args):
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


@torch.no_grad()
def predict(model, ds):
    model.eval()
    logits = model(ds.X.flatten(2))
    return logits, ds.y


# ---------------------------------------------------------------- checkpoints

def save_islr_checkpoint(tmpdir):
    args = parse_args(["--epochs", "2", "--out-dir", tmpdir])
    run = train(args)
    ckpt = {
        "epoch": args.epochs,
        "model_state": run["model"].state_dict(),
        "ema_state": run["ema"].state_dict(),
        "optimizer_state": run["optimizer"].state_dict(),
        "scheduler_state": run["scheduler"].state_dict(),
        "hparams": serializable_args(args),
        "args": args,  # truth: weights_only
        "data_root": args.data_root,  # truth: weights_only
        "vocab": [str(g) for g in run["vocab"]],
        "kp_mean": torch.from_numpy(run["stats"]["mean"]),
        "kp_std": run["stats"]["std"],  # truth: weights_only
        "history": run["history"],
        "best": run["best"],
        "recent_top1": run["recent"],  # truth: weights_only
    }
    ckpt["rng"] = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # truth: weights_only
    }
    path = os.path.join(args.out_dir, "islr_last.pth")
    torch.save(ckpt, path)
    return path


def save_label_map(tmpdir):
    args = parse_args(["--num-frames", "8"])
    _, y, labels, signers, vocab, val_mask = make_split(args)
    label_map = dict(
        idx_to_gloss=vocab.tolist(),
        gloss_to_idx={str(g): i for i, g in enumerate(vocab)},
        num_classes=y.max() + 1,  # truth: weights_only
        class_counts=np.bincount(y).tolist(),
        gloss_counts=Counter(labels),  # truth: weights_only
        signer_counts=Counter(signers.tolist()),
        val_signers=list(args.val_signers),
        n_val=int(val_mask.sum()),
        source=os.fspath(args.data_root),
        source_name=args.data_root.name,
    )
    path = os.path.join(tmpdir, "label_map.pt")
    torch.save(label_map, path)
    return path


def save_keypoint_layout(tmpdir):
    layout = {
        "num_joints": NUM_JOINTS,
        "groups": {name: (s.start, s.stop) for name, s in KEYPOINT_GROUPS.items()},
        "shoulders": (L_SHOULDER, R_SHOULDER),
        "hand_edges": HAND_EDGES,
        "channels": ["x", "y"],
    }
    layout["pose_slice"] = POSE  # truth: weights_only
    layout["hand_joints"] = range(LEFT_HAND.start, RIGHT_HAND.stop)  # truth: weights_only
    layout["normalize"] = {
        "centre": "shoulder_midpoint",
        "eps": np.finfo(np.float32).eps,  # truth: weights_only
        "int16_max": np.iinfo(np.int16).max,
        "torch_eps": torch.finfo(torch.float32).eps,
    }
    path = os.path.join(tmpdir, "keypoint_layout.pt")
    torch.save(layout, path)
    return path


def save_ema_model(tmpdir):
    args = parse_args(["--epochs", "1"])
    run = train(args)
    averaged = run["ema"].module.eval()
    path = os.path.join(tmpdir, "islr_ema_full.pt")
    torch.save(averaged, path)  # truth: weights_only
    return path


def save_eval_report(tmpdir):
    args = parse_args(["--epochs", "1", "--hidden", "32"])
    run = train(args)
    logits, y = predict(run["ema"].module, run["val_ds"])
    pred = logits.argmax(1).numpy()
    y_np = y.numpy()
    top5 = logits.topk(5, dim=1).indices.numpy()
    names = [str(g) for g in run["vocab"]]
    signer_acc = {}
    for s in np.unique(run["signers"][run["val_mask"]]):
        sel = run["signers"][run["val_mask"]] == s
        signer_acc[int(s)] = float((pred[sel] == y_np[sel]).mean())
    report = {
        "top1": float((pred == y_np).mean()),
        "top5": (top5 == y_np[:, None]).any(1).mean(),  # truth: weights_only
        "macro_f1": f1_score(y_np, pred, average="macro"),
        "per_class_f1": f1_score(y_np, pred, average=None, labels=range(len(names))).tolist(),
        "classification": classification_report(y_np, pred, labels=range(len(names)), target_names=names,
                                                 output_dict=True, zero_division=0),
        "signer_acc": signer_acc,
        "worst_signer": min(signer_acc, key=signer_acc.get),
        "confusions": Counter(zip(y_np.tolist(), pred.tolist())).most_common(5),
        "mean_confidence": F.softmax(logits, 1).max(1).values.mean().item(),
        "argmax_first": logits[0].argmax().item(),
        "n_val": y_np.size,
    }
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


def save_mobile_export(tmpdir):
    args = parse_args(["--epochs", "1"])
    run = train(args)
    model = run["ema"].module.eval()
    qmodel = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    export = {
        "quantized_state": qmodel.state_dict(),
        "fp16_state": {k: v.half() for k, v in model.state_dict().items()},
        "labels": run["vocab"].tolist(),
        "input_shape": (args.num_frames, NUM_JOINTS * 2),
        "norm": {"mean": run["stats"]["mean"].tolist(), "std": run["stats"]["std"].tolist()},
        "keypoint_groups": {k: [s.start, s.stop] for k, s in KEYPOINT_GROUPS.items()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "torch": str(torch.__version__),
        "best_val_top1": run["best"]["top1"],
        "n_averaged": run["ema"].n_averaged.clone(),
    }
    path = os.path.join(tmpdir, "islr_mobile.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "KeypointClips": lambda: KeypointClips(),
}


if __name__ == "__main__":
    cli = parse_args(None)
    print(train(cli)["best"])
