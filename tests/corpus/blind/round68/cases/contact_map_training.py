"""Train a dilated-ResNet contact/distogram predictor on MSA coevolution features.

    python contact_map_training.py --data-dir data/pdb25 --crop 64 --epochs 30 --amp

Features follow the usual recipe: sequence-reweighted single-site frequencies (tiled i/j)
plus the APC-corrected Frobenius norm of the covariance matrix.  Targets are C-beta
distances binned into a distogram; contacts are d < 8 A with |i - j| >= 6.
"""
import argparse
import hashlib
import math
import os
import random
import time
from collections import OrderedDict, defaultdict
from datetime import datetime

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.stats import spearmanr

ALPHABET = "ACDEFGHIKLMNPQRSTVWY-"
GAP = ALPHABET.index("-")
AA_TO_IDX = {a: i for i, a in enumerate(ALPHABET)}
SEP_BUCKETS = {"short": range(6, 12), "medium": range(12, 24), "long": range(24, 10_000)}
N_PAIR_FEATURES = 2 * len(ALPHABET) + 1


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="data/pdb25")
    p.add_argument("--crop", type=int, default=24)
    p.add_argument("--msa-depth", type=int, default=24)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--dilations", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--n-bins", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--min-sep", type=int, default=6)
    p.add_argument("--contact-cutoff", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--amp", action="store_true")
    return p.parse_args(argv)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- data

def synthetic_target(rng, length, depth):
    """A random-walk C-beta trace and an MSA mutated from the query sequence."""
    steps = rng.normal(size=(length, 3))
    steps *= 3.8 / np.linalg.norm(steps, axis=1, keepdims=True)
    coords = np.cumsum(steps, axis=0)
    query = rng.integers(0, len(ALPHABET) - 1, size=length)
    msa = np.repeat(query[None], depth, axis=0)
    mutate = rng.random(msa.shape) < 0.3
    msa[mutate] = rng.integers(0, len(ALPHABET), size=int(mutate.sum()))
    msa[0] = query
    name = "T%04d" % rng.integers(0, 10_000)
    return msa, coords, name


def sequence_weights(msa, identity=0.8):
    same = (msa[:, None, :] == msa[None, :, :]).mean(-1)
    return 1.0 / (same >= identity).sum(1)


def msa_features(msa):
    depth, length = msa.shape
    onehot = np.eye(len(ALPHABET), dtype=np.float64)[msa]
    w = sequence_weights(msa)
    neff = w.sum()
    freq = (w[:, None, None] * onehot).sum(0) / neff
    centered = onehot - freq[None]
    cov = np.einsum("n,nia,njb->ijab", w, centered, centered) / neff
    fn = np.sqrt((cov[:, :, :-1, :-1] ** 2).sum((-1, -2)))
    apc = fn - fn.mean(0, keepdims=True) * fn.mean(1, keepdims=True) / fn.mean()
    pair = np.concatenate([
        np.broadcast_to(freq[:, None], (length, length, len(ALPHABET))),
        np.broadcast_to(freq[None], (length, length, len(ALPHABET))),
        apc[..., None],
    ], -1)
    return pair.transpose(2, 0, 1).astype(np.float32), neff


def distance_targets(coords, edges, cutoff):
    dist = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    return np.digitize(dist, edges), dist < cutoff


def top_l_precision(probs, contacts, min_sep=6, frac=5, max_sep=None):
    length = probs.shape[0]
    i, j = np.triu_indices(length, k=min_sep)
    if max_sep is not None:
        keep = (j - i) < max_sep
        i, j = i[keep], j[keep]
    if len(i) == 0:
        return 0.0
    order = np.argsort(-probs[i, j])[: max(1, length // frac)]
    return contacts[i[order], j[order]].mean()


# ---------------------------------------------------------------------------- model

class DilatedBlock(nn.Module):
    def __init__(self, channels=16, dilation=1, dropout=0.1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.norm1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.norm2 = nn.InstanceNorm2d(channels, affine=True)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x):
        h = F.elu(self.norm1(self.conv1(x)))
        h = self.dropout(h)
        return F.elu(x + self.norm2(self.conv2(h)))


class ContactResNet(nn.Module):
    def __init__(self, in_channels=N_PAIR_FEATURES, channels=16, dilations=(1, 2, 4), n_bins=10):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, channels, 1)
        self.blocks = nn.Sequential(*[DilatedBlock(channels, d) for d in dilations])
        self.head = nn.Conv2d(channels, n_bins, 1)
        self.n_bins = n_bins

    def forward(self, x):
        logits = self.head(self.blocks(self.stem(x)))
        return 0.5 * (logits + logits.transpose(-1, -2))


# -------------------------------------------------------------------------- trainer

class ContactTrainer:
    def __init__(self, args):
        self.args = args
        self.bin_edges = np.linspace(4.0, 20.0, args.n_bins - 1)
        self.contact_bins = int(np.searchsorted(self.bin_edges, args.contact_cutoff))
        self.model = ContactResNet(N_PAIR_FEATURES, args.channels, tuple(args.dilations), args.n_bins)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(1, args.epochs))
        self.scaler = torch.amp.GradScaler("cpu", enabled=args.amp)
        self.rng = np.random.default_rng(args.seed)
        self.history = defaultdict(list)
        self.best_top_l5 = -math.inf
        self.best_epoch = -1
        self.epoch = 0
        self.global_step = 0
        self.t0 = time.time()

    def make_dataset(self, n):
        data = []
        for _ in range(n):
            msa, coords, name = synthetic_target(self.rng, self.args.crop, self.args.msa_depth)
            feats, neff = msa_features(msa)
            bins, contacts = distance_targets(coords, self.bin_edges, self.args.contact_cutoff)
            data.append({"name": name, "feats": torch.from_numpy(feats), "bins": torch.from_numpy(bins).long(),
                         "contacts": contacts, "neff": neff, "length": msa.shape[1]})
        return data

    def train_epoch(self, data):
        self.model.train()
        losses = []
        for item in data:
            logits = self.model(item["feats"][None])
            loss = F.cross_entropy(logits, item["bins"][None])
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            losses.append(loss.item())
            self.global_step += 1
        self.scheduler.step()
        return float(np.mean(losses)), len(losses)

    @torch.no_grad()
    def predict(self, item):
        self.model.eval()
        probs = self.model(item["feats"][None]).softmax(1)[0]
        return probs[: self.contact_bins + 1].sum(0)

    def evaluate(self, data):
        rows, p5, p1 = [], [], []
        for item in data:
            probs = self.predict(item).numpy()
            row = {"name": item["name"], "length": item["length"], "neff": float(item["neff"])}
            for bucket, sep in SEP_BUCKETS.items():
                row[f"p_{bucket}"] = float(top_l_precision(probs, item["contacts"], sep.start, 5, sep.stop))
            p5.append(top_l_precision(probs, item["contacts"], self.args.min_sep, 5))
            p1.append(top_l_precision(probs, item["contacts"], self.args.min_sep, 1))
            row["top_l5"] = float(p5[-1])
            row["mean_prob"] = float(probs.mean())
            rows.append(row)
        return {"top_l5": np.mean(p5), "top_l": np.mean(p1), "per_target": rows}

    def fit(self, train, val):
        for epoch in range(self.args.epochs):
            self.epoch = epoch
            loss, steps = self.train_epoch(train)
            metrics = self.evaluate(val)
            self.history["train_loss"].append(loss)
            self.history["val_top_l5"].append(float(metrics["top_l5"]))
            self.history["lr"].append(self.scheduler.get_last_lr()[0])
            if metrics["top_l5"] > self.best_top_l5:
                self.best_top_l5 = metrics["top_l5"]
                self.best_epoch = epoch
        return self

    def state_dict(self):
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "model": OrderedDict((k, v.detach().clone()) for k, v in self.model.state_dict().items()),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": {k: list(v) for k, v in self.history.items()},
        }


def _fit_small(argv=None):
    args = parse_args(argv or [])
    seed_everything(args.seed)
    trainer = ContactTrainer(args)
    train, val = trainer.make_dataset(3), trainer.make_dataset(3)
    trainer.fit(train, val)
    return args, trainer, train, val


FACTORIES = {"ContactTrainer": lambda: ContactTrainer(parse_args([]))}


# ------------------------------------------------------------------------ checkpoints

def save_training_checkpoint(tmpdir):
    args, trainer, _, _ = _fit_small()
    path = os.path.join(tmpdir, "last.ckpt")
    centers = (trainer.bin_edges[1:] + trainer.bin_edges[:-1]) / 2
    torch.save({
        "epoch": trainer.epoch,
        "global_step": trainer.global_step,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "args": args,  # truth: weights_only
        "hparams": vars(args),
        "best_top_l5": trainer.best_top_l5,  # truth: weights_only
        "best_epoch": trainer.best_epoch,
        "bin_edges": trainer.bin_edges,  # truth: weights_only
        "bin_centers": torch.from_numpy(centers).float(),
        "contact_bins": trainer.contact_bins,
        "alphabet": ALPHABET,
        "aa_to_idx": AA_TO_IDX,
        "seq_sep_buckets": {k: (r.start, r.stop) for k, r in SEP_BUCKETS.items()},
        "history": dict(trainer.history),
    }, path)
    return path


def save_inference_weights(tmpdir):
    args, trainer, _, _ = _fit_small()
    model = trainer.model.eval()
    path = os.path.join(tmpdir, "contact_resnet.pt")
    config = {"in_channels": N_PAIR_FEATURES, "channels": args.channels,
              "dilations": list(args.dilations), "n_bins": model.n_bins}
    torch.save({"state_dict": model.state_dict(), "config": config,
                "bin_edges": trainer.bin_edges.tolist(), "cutoff": args.contact_cutoff,
                "dtype": torch.float32, "device": torch.device("cpu")}, path)
    return path


def save_inference_export(tmpdir):
    _, trainer, _, _ = _fit_small()
    path = os.path.join(tmpdir, "contact_resnet_full.pt")
    torch.save(trainer.model.eval(), path)  # truth: weights_only
    return path


def save_eval_report(tmpdir):
    args, trainer, _, val = _fit_small()
    metrics = trainer.evaluate(val)
    table = pd.DataFrame(metrics["per_target"])
    by_bucket = {}
    for bucket in SEP_BUCKETS:
        by_bucket[bucket] = float(table[f"p_{bucket}"].mean())
    corr = spearmanr(table["neff"], table["mean_prob"])
    report = {
        "n_targets": len(table),
        "top_l5": float(metrics["top_l5"]),
        "top_l": metrics["top_l"],  # truth: weights_only
        "by_bucket": by_bucket,
        "per_target": table.to_dict("records"),
        "neff_spearman": corr.statistic,  # truth: weights_only
        "neff_pvalue": float(corr.pvalue),
        "length_hist": np.histogram(table["length"], bins=4),  # truth: weights_only
        "worst_target": table.loc[table["top_l5"].idxmin(), "name"],
        "mean_length": table["length"].sum() / len(table),  # truth: weights_only
        "created": datetime.now().isoformat(timespec="seconds"),
        "min_sep": args.min_sep,
    }
    path = os.path.join(tmpdir, "eval_report.pt")
    torch.save(report, path)
    return path


def save_feature_cache(tmpdir):
    args = parse_args(["--crop", "20"])
    rng = np.random.default_rng(args.seed)
    msa, coords, name = synthetic_target(rng, args.crop + 8, args.msa_depth)
    start = int(rng.integers(0, msa.shape[1] - args.crop + 1))
    crop = slice(start, start + args.crop)
    feats, neff = msa_features(msa[:, crop])
    sequence = "".join(ALPHABET[i] for i in msa[0, crop])
    gap_fraction = float((msa[:, crop] == GAP).mean())
    entry = {
        "sequence": sequence,
        "sha1": hashlib.sha1(sequence.encode()).digest(),
        "features": torch.from_numpy(feats).half(),
        "shape": feats.shape,
        "neff": neff,  # truth: weights_only
        "neff_per_residue": float(neff) / args.crop,
        "gap_fraction": gap_fraction,
        "crop": crop,  # truth: weights_only
        "crop_bounds": (crop.start, crop.stop),
        "depth": msa.shape[0],
        "coords": torch.tensor(coords[crop], dtype=torch.float32),
    }
    cache = {"version": 2, "entries": {name: entry}}
    path = os.path.join(tmpdir, "features.pt")
    torch.save(cache, path)
    return path


def save_resume_state(tmpdir):
    args, trainer, train, val = _fit_small()
    ckpt = {"format": "contact-resnet/resume-v3", "torch": str(torch.__version__)}
    ckpt.update(trainer.state_dict())
    probs = trainer.predict(val[0])
    length = probs.shape[0]
    top = torch.topk(torch.triu(probs, diagonal=args.min_sep).flatten(), k=max(1, length // 5))
    ckpt["top_contacts"] = top  # truth: weights_only
    ckpt["top_contact_pairs"] = [divmod(i, length) for i in top.indices.tolist()]
    ckpt["top_contact_probs"] = top.values.clone()
    ckpt["rng"] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # truth: weights_only
        "torch": torch.get_rng_state(),
        "data": trainer.rng.bit_generator.state,
    }
    ckpt["data_order"] = [item["name"] for item in train]
    ckpt["wallclock"] = time.time() - trainer.t0
    path = os.path.join(tmpdir, "resume.ckpt")
    torch.save(ckpt, path)
    return path


if __name__ == "__main__":
    out = os.environ.get("OUT_DIR", "checkpoints")
    os.makedirs(out, exist_ok=True)
    print(save_training_checkpoint(out))
