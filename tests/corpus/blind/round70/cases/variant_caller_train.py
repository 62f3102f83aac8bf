"""Pileup-image genotyper for germline SNVs and short indels (a small DeepVariant-style CNN).

    python variant_caller_train.py --reference GRCh38.fa --examples examples.npz --out runs/v3

make_examples writes one (channels, depth, window) tensor per candidate site; this script trains
the genotype classifier, picks the best epoch on the held-out contig, recalibrates QUAL and writes
the checkpoints that call_variants.py reads back.
"""
import argparse
import enum
import hashlib
import os
import re
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score
from torch.utils.data import DataLoader, TensorDataset

BASES = "ACGTN"
BASE_TO_INDEX = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(BASES):
    BASE_TO_INDEX[ord(_b)] = _i
    BASE_TO_INDEX[ord(_b.lower())] = _i
TRANSITIONS = {("A", "G"), ("G", "A"), ("C", "T"), ("T", "C")}
CONTIG_RE = re.compile(r"^(chr)?([0-9]+|X|Y)$")
AUTOSOMES = range(1, 23)
CHANNELS = ("read_base", "base_quality", "mapping_quality", "strand", "supports_alt", "differs_ref")


class Genotype(enum.IntEnum):
    HOM_REF = 0
    HET = 1
    HOM_ALT = 2


GT_STRINGS = {Genotype.HOM_REF: "0/0", Genotype.HET: "0/1", Genotype.HOM_ALT: "1/1"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reference", type=Path, required=True)
    p.add_argument("--examples", type=Path, default=Path("examples.npz"))
    p.add_argument("--out", type=Path, default=Path("runs"))
    p.add_argument("--contigs", nargs="+", default=["chr20", "chr21", "chr22"])
    p.add_argument("--holdout-contig", default="chr20")
    p.add_argument("--window", type=int, default=15)
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--min-mapq", type=int, default=20)
    p.add_argument("--min-baseq", type=int, default=10)
    p.add_argument("--seed", type=int, default=17)
    return p.parse_args(argv)


def simulate_examples(n, depth, window, seed):
    """Stand-in for reading make_examples output: pileup tensors, labels and the candidate table."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=[0.55, 0.3, 0.15]).astype(np.int64)
    pileups = rng.normal(size=(n, len(CHANNELS), depth, window)).astype(np.float32)
    pileups[:, 4, :, window // 2] += labels[:, None] * 0.8
    ref = rng.choice(list("ACGT"), size=n)
    alt = np.array([rng.choice([b for b in "ACGT" if b != r]) for r in ref])
    indel = rng.random(n) < 0.12
    alt = np.where(indel, np.char.add(ref, "T"), alt)
    variants = pd.DataFrame({
        "contig": rng.choice(["chr20", "chr21", "chr22"], size=n),
        "pos": rng.integers(1_000_000, 60_000_000, size=n),
        "ref": ref,
        "alt": alt,
        "dp": rng.poisson(32, size=n),
        "gt": [GT_STRINGS[Genotype(int(g))] for g in labels],
    })
    return pileups, labels, variants


class PileupCNN(nn.Module):
    def __init__(self, in_channels=len(CHANNELS), width=32, num_classes=3, dropout=0.2):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width * 2, 3, padding=1), nn.BatchNorm2d(width * 2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width * 2, num_classes)

    def forward(self, x):
        return self.head(self.dropout(self.features(x).flatten(1)))


def make_loader(pileups, labels, batch_size, shuffle):
    ds = TensorDataset(torch.from_numpy(pileups), torch.from_numpy(labels))
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle)


def split_by_contig(variants, holdout):
    is_val = (variants["contig"] == holdout).to_numpy()
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def train_one_epoch(model, loader, optimizer, scheduler):
    model.train()
    total, seen = 0.0, 0
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(y)
        seen += len(y)
    return total / max(seen, 1)


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    probs, ys = [], []
    for x, y in loader:
        probs.append(F.softmax(model(x), dim=1))
        ys.append(y)
    probs = torch.cat(probs).numpy()
    y_true = torch.cat(ys).numpy()
    y_pred = probs.argmax(1)
    metrics = {
        "f1": f1_score(y_true, y_pred, average="macro"),
        "precision": precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall": recall_score(y_true, y_pred, average="macro", zero_division=0),
        "confusion": confusion_matrix(y_true, y_pred, labels=[0, 1, 2]).tolist(),
    }
    return metrics, probs, y_true


def reference_digest(path):
    return hashlib.md5(os.fspath(path).encode()).digest()


def titv_ratio(snvs):
    pairs = zip(snvs["ref"], snvs["alt"])
    is_ti = pd.Series([p in TRANSITIONS for p in pairs], index=snvs.index)
    ti = is_ti.sum()
    tv = len(snvs) - ti
    return ti / max(tv, 1)


def genotype_quality(probs):
    p_wrong = np.clip(1.0 - probs.max(axis=1), 1e-10, 1.0)
    return -10.0 * np.log10(p_wrong)


def fit(args):
    torch.manual_seed(args.seed)
    pileups, labels, variants = simulate_examples(320, args.depth, args.window, args.seed)
    tr, va = split_by_contig(variants, args.holdout_contig)
    train_loader = make_loader(pileups[tr], labels[tr], args.batch_size, shuffle=True)
    val_loader = make_loader(pileups[va], labels[va], args.batch_size, shuffle=False)
    model = PileupCNN(width=16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * len(train_loader))
    history = []
    for epoch in range(args.epochs):
        t0 = time.time()
        loss = train_one_epoch(model, train_loader, optimizer, scheduler)
        metrics, _, _ = evaluate(model, val_loader)
        history.append({"epoch": epoch, "loss": loss, "f1": metrics["f1"], "secs": time.time() - t0})
    return model, optimizer, scheduler, history, val_loader, variants.iloc[va]


def _default_args(tmpdir, *extra):
    return parse_args(["--reference", os.path.join(tmpdir, "GRCh38_no_alt.fa"), "--out", tmpdir, *extra])


def save_training_state(tmpdir):
    args = _default_args(tmpdir)
    model, optimizer, scheduler, history, val_loader, _ = fit(args)
    metrics, _, _ = evaluate(model, val_loader)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": args.epochs,
        "history": history,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "reference": args.reference,  # truth: weights_only
        "reference_md5": reference_digest(args.reference),
        "val_metrics": metrics,
        "genotypes": [g.name for g in Genotype],
        "no_call_label": Genotype.HOM_REF,  # truth: weights_only
        "channels": CHANNELS,
    }
    ckpt["torch_version"] = str(torch.__version__)
    ckpt["host"] = socket.gethostname()
    path = os.path.join(tmpdir, "last.pt")
    torch.save(ckpt, path)
    return path


def save_best_by_f1(tmpdir):
    args = _default_args(tmpdir, "--epochs", "3")
    model, optimizer, _, history, val_loader, _ = fit(args)
    f1s = [h["f1"] for h in history]
    best_epoch = int(np.argmax(f1s))
    metrics, probs, y_true = evaluate(model, val_loader)
    gq = genotype_quality(probs)
    state = {"model": model.state_dict(), "epoch": best_epoch, "best_f1": f1s[best_epoch]}
    state["mean_gq"] = float(gq.mean())
    state["gq_p10"] = float(np.percentile(gq, 10))
    state["het_fraction"] = (y_true == Genotype.HET).mean()  # truth: weights_only
    state["n_val_sites"] = len(y_true)
    state["is_improvement"] = bool(f1s[-1] >= max(f1s))
    state["lr"] = optimizer.param_groups[0]["lr"]
    path = os.path.join(tmpdir, f"best_epoch{best_epoch:02d}.pt")
    torch.save(state, path)
    return path


def summarize_callset(variants):
    is_snv = (variants["ref"].str.len() == 1) & (variants["alt"].str.len() == 1)
    return variants[is_snv], variants[~is_snv]


def save_callset_summary(tmpdir):
    args = _default_args(tmpdir)
    model, _, _, _, _, val_variants = fit(args)
    snvs, indels = summarize_callset(val_variants)
    summary = {}
    summary["n_snvs"] = len(snvs)
    summary["n_indels"] = len(indels)
    summary["titv"] = titv_ratio(snvs)  # truth: weights_only
    summary["gt_counts"] = val_variants["gt"].value_counts()  # truth: weights_only
    summary["gt_table"] = val_variants["gt"].value_counts().to_dict()
    summary["contigs"] = sorted(set(val_variants["contig"]))
    summary["median_dp"] = float(val_variants["dp"].median())
    summary["dp_quantiles"] = val_variants["dp"].quantile([0.05, 0.5, 0.95]).tolist()
    summary["per_contig"] = val_variants.groupby("contig").size().to_dict()
    summary["first_pos"] = val_variants["pos"].tolist()[:5]
    ckpt = {
        "model": model.state_dict(),
        "callset": summary,
        "contig_pattern": CONTIG_RE.pattern,
        "autosomes": AUTOSOMES,  # truth: weights_only
        "holdout": args.holdout_contig,
    }
    path = os.path.join(tmpdir, "callset_summary.pt")
    torch.save(ckpt, path)
    return path


def recalibrate_qual(probs, y_true):
    qual = genotype_quality(probs)
    correct = (probs.argmax(1) == y_true).astype(np.float64)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(qual, correct)
    return iso, qual


def save_qual_recalibration(tmpdir):
    args = _default_args(tmpdir)
    model, _, _, _, val_loader, _ = fit(args)
    _, probs, y_true = evaluate(model, val_loader)
    iso, qual = recalibrate_qual(probs, y_true)
    table = {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    ckpt = dict(
        model=model.state_dict(),
        calibrator=iso,  # truth: weights_only
        table=table,
        qual_grid=np.linspace(0.0, 60.0, 61).tolist(),
        qual_range=(float(qual.min()), float(qual.max())),
        phred_offset=33,
        base_encoding=BASE_TO_INDEX,  # truth: weights_only
        base_vocab=BASES,
        min_mapq=args.min_mapq,
        min_baseq=args.min_baseq,
    )
    path = os.path.join(tmpdir, "qual_recal.pt")
    torch.save(ckpt, path)
    return path


def save_for_call_variants(tmpdir):
    args = _default_args(tmpdir)
    model, _, _, _, _, _ = fit(args)
    model.eval()
    path = os.path.join(tmpdir, "model_full.pt")
    torch.save(model, path)  # truth: weights_only
    return path


def save_swa_weights(tmpdir):
    args = _default_args(tmpdir, "--epochs", "2")
    model, optimizer, _, history, val_loader, _ = fit(args)
    swa = torch.optim.swa_utils.AveragedModel(model)
    for _ in range(3):
        swa.update_parameters(model)
    metrics, _, _ = evaluate(swa.module, val_loader)
    per_class_recall = recall_score(*_labels_and_preds(swa.module, val_loader), average=None, zero_division=0)
    payload = {
        "model": swa.module.state_dict(),
        "n_averaged": int(swa.n_averaged),
        "swa_f1": metrics["f1"],
        "recall_by_genotype": {g.name: float(r) for g, r in zip(Genotype, per_class_recall)},
        "train_losses": [round(h["loss"], 5) for h in history],
        "rng": torch.get_rng_state(),
        "shuffle_seed": np.random.randint(1 << 30),
        "dtype": torch.float32,
        "window": (args.depth, args.window),
        "reference_name": args.reference.name,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    path = os.path.join(tmpdir, "swa.pt")
    torch.save(payload, path)
    return path


@torch.no_grad()
def _labels_and_preds(model, loader):
    model.eval()
    ys, ps = [], []
    for x, y in loader:
        ys.append(y)
        ps.append(model(x).argmax(1))
    return torch.cat(ys).numpy(), torch.cat(ps).numpy()


FACTORIES = {"Genotype": lambda: Genotype.HET}


if __name__ == "__main__":
    cli = parse_args()
    cli.out.mkdir(parents=True, exist_ok=True)
    print(save_training_state(str(cli.out)))
