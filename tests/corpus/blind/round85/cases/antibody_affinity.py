"""Antibody-antigen binding affinity regression from CDR sequences.

Predicts pKd (= -log10 Kd[M]) of antibody variants from the heavy- and light-chain CDR3 loops
with a multi-kernel 1D CNN. Splits are made by clonotype cluster so that near-identical
sequences never sit on both sides of the split.

    python antibody_affinity.py --data affinity.csv --out-dir runs/abaff --epochs 30
"""
import argparse
import copy
import enum
import math
import os
import re
import statistics
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import GroupKFold, GroupShuffleSplit
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, Dataset

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
PAD, UNK = 0, len(AMINO_ACIDS) + 1
AA_TO_IDX = {aa: i + 1 for i, aa in enumerate(AMINO_ACIDS)}
# IMGT CDR3 including the conserved Cys104 ... Trp118 anchors
CDR3_PATTERN = re.compile(r"^C[ACDEFGHIKLMNPQRSTVWY]{3,28}W$")
ANTIGENS = ("HER2", "PD-L1", "RBD")

# the screening models are tiny: extra intra-op threads only fight with the data loader workers
torch.set_num_threads(int(os.environ.get("ABAFF_NUM_THREADS", "1")))


class AssayType(enum.Enum):
    SPR = "spr"
    BLI = "bli"
    ELISA = "elisa"


@dataclass
class AffinityConfig:
    embed_dim: int = 32
    hidden: int = 48
    kernel_sizes: tuple = (3, 5, 7)
    dropout: float = 0.1
    lr: float = 3e-3
    weight_decay: float = 1e-4
    epochs: int = 3
    batch_size: int = 32
    max_len_h: int = 24
    max_len_l: int = 14
    assay: AssayType = AssayType.SPR
    standardize_target: bool = True
    seed: int = 0


@dataclass
class TrainingRun:
    """What train_from_args hands back to main() and to the notebooks."""
    trainer: object = None
    train_df: object = None
    val_df: object = None
    val_loader: object = None
    val_clusters: object = None


# ----------------------------------------------------------------------------- data

def kd_to_pkd(kd_nm):
    """Kd in nM -> pKd (molar)."""
    return 9.0 - np.log10(kd_nm)


def synthesize_library(n=240, n_clusters=12, seed=0):
    """Stand-in for the SAbDab/AbBind export: clonotype families of CDR3 variants with SPR/BLI Kd."""
    rng = np.random.default_rng(seed)
    aa = np.array(list(AMINO_ACIDS))
    h_templates = ["".join(rng.choice(aa, size=int(rng.integers(8, 18)))) for _ in range(n_clusters)]
    l_templates = ["".join(rng.choice(aa, size=int(rng.integers(6, 10)))) for _ in range(n_clusters)]
    rows = []
    for i in range(n):
        c = int(rng.integers(n_clusters))
        heavy = list(h_templates[c])
        for pos in rng.choice(len(heavy), size=2, replace=False):
            heavy[pos] = str(rng.choice(aa))
        heavy = "C" + "".join(heavy) + "W"
        light = "C" + l_templates[c] + "T"
        aromatic = sum(ch in "YWF" for ch in heavy)
        log10_kd_m = -7.2 - 0.3 * aromatic + 0.05 * len(heavy) + rng.normal(0.0, 0.35)
        rows.append({
            "antibody_id": f"Ab{i:04d}",
            "heavy_cdr3": heavy,
            "light_cdr3": light,
            "antigen": ANTIGENS[c % len(ANTIGENS)],
            "kd_nm": float(10 ** log10_kd_m * 1e9),
            "assay": "spr" if rng.random() < 0.7 else "bli",
            "cluster": c,
        })
    df = pd.DataFrame(rows)
    df["pkd"] = kd_to_pkd(df["kd_nm"].to_numpy())
    return df


def clonotype_split(df, val_frac=0.2, seed=0):
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_frac, random_state=seed)
    train_idx, val_idx = next(splitter.split(df, groups=df["cluster"]))
    train_df = df.iloc[train_idx].reset_index(drop=True)
    val_df = df.iloc[val_idx].reset_index(drop=True)
    val_clusters = set(val_df["cluster"].unique())
    return train_df, val_df, val_clusters


def encode(seq, max_len):
    ids = [AA_TO_IDX.get(ch, UNK) for ch in seq[:max_len]]
    return ids + [PAD] * (max_len - len(ids))


class CDRDataset(Dataset):
    def __init__(self, frame, max_len_h=24, max_len_l=14, target_scaler=None):
        self.heavy = torch.tensor([encode(s, max_len_h) for s in frame["heavy_cdr3"]], dtype=torch.long)
        self.light = torch.tensor([encode(s, max_len_l) for s in frame["light_cdr3"]], dtype=torch.long)
        y = frame["pkd"].to_numpy(dtype=np.float32).reshape(-1, 1)
        if target_scaler is not None:
            y = target_scaler.transform(y).astype(np.float32)
        self.target = torch.from_numpy(y[:, 0].copy())

    def __len__(self):
        return self.target.shape[0]

    def __getitem__(self, i):
        return self.heavy[i], self.light[i], self.target[i]


# ----------------------------------------------------------------------------- model

class AffinityCNN(nn.Module):
    def __init__(self, embed_dim=32, hidden=48, kernel_sizes=(3, 5, 7), dropout=0.1):
        super().__init__()
        self.embed = nn.Embedding(len(AMINO_ACIDS) + 2, embed_dim, padding_idx=PAD)
        self.heavy_convs = nn.ModuleList(nn.Conv1d(embed_dim, hidden, k, padding=k // 2) for k in kernel_sizes)
        self.light_convs = nn.ModuleList(nn.Conv1d(embed_dim, hidden, k, padding=k // 2) for k in kernel_sizes)
        width = 2 * hidden * len(kernel_sizes)
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def _branch(self, tokens, convs):
        x = self.embed(tokens).transpose(1, 2)
        mask = (tokens != PAD).unsqueeze(1)
        pooled = [F.relu(conv(x)).masked_fill(~mask, -1e4).amax(dim=2) for conv in convs]
        return torch.cat(pooled, dim=1)

    def forward(self, heavy, light):
        z = torch.cat([self._branch(heavy, self.heavy_convs), self._branch(light, self.light_convs)], dim=1)
        return self.head(z).squeeze(-1)


# ----------------------------------------------------------------------------- metrics

def regression_metrics(y_true, y_pred):
    return {
        "rmse": math.sqrt(mean_squared_error(y_true, y_pred)),
        "mae": mean_absolute_error(y_true, y_pred),
        "r2": r2_score(y_true, y_pred),
        "pearson": float(stats.pearsonr(y_true, y_pred)[0]),
    }


def rank_metrics(y_true, y_pred, top_frac=0.1):
    """Spearman, Kendall and how many of the true top binders the model ranks in its own top k."""
    rho = stats.spearmanr(y_true, y_pred).statistic
    tau, _ = stats.kendalltau(y_true, y_pred)
    k = max(1, int(round(top_frac * len(y_true))))
    top_true = set(np.argsort(-np.asarray(y_true))[:k].tolist())
    top_pred = set(np.argsort(-np.asarray(y_pred))[:k].tolist())
    enrichment = len(top_true & top_pred) / k
    return rho, tau, enrichment


# ----------------------------------------------------------------------------- training

class AffinityTrainer:
    def __init__(self, model, cfg, target_scaler=None, device="cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.cfg = cfg
        self.target_scaler = target_scaler
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(cfg.epochs, 1))
        self.history = defaultdict(list)
        self.epoch = 0
        self.best_rmse = math.inf
        self.best_model = None

    def loader(self, ds, shuffle=False):
        gen = torch.Generator().manual_seed(self.cfg.seed)
        return DataLoader(ds, batch_size=self.cfg.batch_size, shuffle=shuffle, generator=gen)

    def train_epoch(self, loader):
        self.model.train()
        total, n = 0.0, 0
        for heavy, light, y in loader:
            self.optimizer.zero_grad()
            loss = F.mse_loss(self.model(heavy, light), y)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            total += loss.item() * y.shape[0]
            n += y.shape[0]
        return total / n

    @torch.no_grad()
    def predict(self, loader):
        self.model.eval()
        preds, targets = [], []
        for heavy, light, y in loader:
            preds.append(self.model(heavy, light).numpy())
            targets.append(y.numpy())
        preds, targets = np.concatenate(preds), np.concatenate(targets)
        if self.target_scaler is not None:
            preds = self.target_scaler.inverse_transform(preds.reshape(-1, 1))[:, 0]
            targets = self.target_scaler.inverse_transform(targets.reshape(-1, 1))[:, 0]
        return preds, targets

    def fit(self, train_ds, val_ds):
        train_loader, val_loader = self.loader(train_ds, shuffle=True), self.loader(val_ds)
        for epoch in range(self.cfg.epochs):
            train_loss = self.train_epoch(train_loader)
            preds, y = self.predict(val_loader)
            m = regression_metrics(y, preds)
            self.history["train_loss"].append(train_loss)
            self.history["val_rmse"].append(m["rmse"])
            self.scheduler.step()
            self.epoch = epoch + 1
            if m["rmse"] < self.best_rmse:
                self.best_rmse = m["rmse"]
                self.best_model = copy.deepcopy(self.model)
        return self.history

    def checkpoint(self, extra=None):
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_rmse": self.best_rmse,
            "history": dict(self.history),
        }
        if extra:
            state.update(extra)
        return state


def build_trainer(cfg, target_scaler=None):
    torch.manual_seed(cfg.seed)
    model = AffinityCNN(cfg.embed_dim, cfg.hidden, tuple(cfg.kernel_sizes), cfg.dropout)
    return AffinityTrainer(model, cfg, target_scaler=target_scaler)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="CDR3-based pKd regression")
    p.add_argument("--data", type=str, default=None, help="csv: heavy_cdr3, light_cdr3, kd_nm, assay, cluster")
    p.add_argument("--out-dir", type=Path, default=Path("runs/abaff"))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--embed-dim", type=int, default=32)
    p.add_argument("--hidden", type=int, default=48)
    p.add_argument("--kernel-sizes", type=int, nargs="+", default=[3, 5, 7])
    p.add_argument("--val-frac", type=float, default=0.2)
    p.add_argument("--assay", choices=[a.value for a in AssayType], default="spr")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-synthetic", type=int, default=240)
    return p.parse_args(argv)


def train_from_args(args):
    cfg = AffinityConfig(embed_dim=args.embed_dim, hidden=args.hidden, kernel_sizes=tuple(args.kernel_sizes),
                         lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                         assay=AssayType(args.assay), seed=args.seed)
    df = pd.read_csv(args.data) if args.data else synthesize_library(args.n_synthetic, seed=args.seed)
    df = df[df["heavy_cdr3"].str.match(CDR3_PATTERN)].reset_index(drop=True)
    train_df, val_df, val_clusters = clonotype_split(df, args.val_frac, args.seed)
    trainer = build_trainer(cfg)
    train_ds = CDRDataset(train_df, cfg.max_len_h, cfg.max_len_l)
    val_ds = CDRDataset(val_df, cfg.max_len_h, cfg.max_len_l)
    trainer.fit(train_ds, val_ds)
    return TrainingRun(trainer, train_df, val_df, trainer.loader(val_ds), val_clusters)


# ----------------------------------------------------------------------------- checkpoints

def save_argparse_checkpoint(tmpdir):
    args = parse_args(["--out-dir", tmpdir, "--epochs", "2", "--kernel-sizes", "3", "5"])
    run = train_from_args(args)
    preds, y = run.trainer.predict(run.val_loader)
    rho, tau, enrichment = rank_metrics(y, preds)
    ckpt = run.trainer.checkpoint()
    ckpt["args"] = args  # truth: weights_only
    ckpt["hparams"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    ckpt["spearman"] = rho  # truth: weights_only
    ckpt["kendall_tau"] = float(tau)
    ckpt["top10_enrichment"] = enrichment
    ckpt["pkd_mean"] = float(run.train_df["pkd"].mean())
    ckpt["pkd_std"] = run.train_df["pkd"].std()  # truth: weights_only
    ckpt["n_train"] = len(run.train_df)
    ckpt["cdr3_pattern"] = CDR3_PATTERN.pattern
    path = args.out_dir / "last.pt"
    torch.save(ckpt, path)
    return str(path)


def save_dataclass_run(tmpdir):
    cfg = AffinityConfig(epochs=2, assay=AssayType.BLI, seed=1)
    df = synthesize_library(n=200, seed=cfg.seed)
    train_df, val_df, val_clusters = clonotype_split(df, 0.25, cfg.seed)
    trainer = build_trainer(cfg)
    trainer.fit(CDRDataset(train_df), CDRDataset(val_df))
    state = trainer.checkpoint(extra={
        "config": cfg,  # truth: weights_only
        "config_dict": {**asdict(cfg), "assay": cfg.assay.value},
        "assay_type": cfg.assay,  # truth: weights_only
        "val_clusters": val_clusters,  # truth: weights_only
        "cdr3_validator": CDR3_PATTERN,  # truth: weights_only
        "antigens": sorted(set(df["antigen"])),
        "created_at": datetime.now().isoformat(timespec="seconds"),
    })
    out = Path(tmpdir) / "affinity_dc.pt"
    torch.save(state, out)
    return out


def save_cv_ensemble(tmpdir):
    cfg = AffinityConfig(epochs=1, hidden=32, seed=3)
    df = synthesize_library(n=180, seed=cfg.seed)
    splitter = GroupKFold(n_splits=3)
    members, fold_rmse, fold_rho = [], [], []
    oof = np.zeros(len(df))
    for fold, (tr_idx, va_idx) in enumerate(splitter.split(df, groups=df["cluster"])):
        trainer = build_trainer(cfg)
        val_ds = CDRDataset(df.iloc[va_idx])
        trainer.fit(CDRDataset(df.iloc[tr_idx]), val_ds)
        preds, y = trainer.predict(trainer.loader(val_ds))
        oof[va_idx] = preds
        members.append(trainer.model.state_dict())
        fold_rmse.append(regression_metrics(y, preds)["rmse"])
        fold_rho.append(rank_metrics(y, preds)[0])
    ensemble = {
        "members": members,
        "fold_rmse": fold_rmse,
        "fold_spearman": fold_rho,  # truth: weights_only
        "cv_rmse": float(np.mean(fold_rmse)),
        "cv_rmse_std": statistics.stdev(fold_rmse),
        "oof_pred": torch.from_numpy(oof).float(),
        "oof_mean": statistics.mean(oof),  # truth: weights_only
        "oof_spread": statistics.stdev(oof),
        "splitter": splitter,  # truth: weights_only
        "n_splits": splitter.get_n_splits(),
        "kernel_sizes": list(cfg.kernel_sizes),
    }
    path = os.path.join(tmpdir, "cv_ensemble.pt")
    torch.save(ensemble, path)
    return path


def save_best_model(tmpdir):
    cfg = AffinityConfig(epochs=2, seed=4)
    df = synthesize_library(n=160, seed=cfg.seed)
    train_df, val_df, _ = clonotype_split(df, 0.2, cfg.seed)
    trainer = build_trainer(cfg)
    trainer.fit(CDRDataset(train_df), CDRDataset(val_df))
    path = os.path.join(tmpdir, "best_model.pt")
    torch.save(trainer.best_model, path)  # truth: weights_only
    return path


def save_with_target_scaler(tmpdir):
    cfg = AffinityConfig(epochs=2, seed=5)
    df = synthesize_library(n=200, seed=cfg.seed)
    train_df, val_df, _ = clonotype_split(df, 0.2, cfg.seed)
    scaler = StandardScaler().fit(train_df[["pkd"]].to_numpy())
    trainer = build_trainer(cfg, target_scaler=scaler)
    val_ds = CDRDataset(val_df, target_scaler=scaler)
    trainer.fit(CDRDataset(train_df, target_scaler=scaler), val_ds)
    preds, y = trainer.predict(trainer.loader(val_ds))
    ckpt = dict(
        model=trainer.model.state_dict(),
        target_scaler=scaler,  # truth: weights_only
        target_mean=float(scaler.mean_[0]),
        target_scale=scaler.scale_[0],  # truth: weights_only
        scaler_params=scaler.get_params(),
        n_seen=int(scaler.n_samples_seen_),
        assay=cfg.assay.value,
        val_metrics=regression_metrics(y, preds),
    )
    path = os.path.join(tmpdir, "scaled_target.pt")
    torch.save(ckpt, path)
    return path


def save_inference_bundle(tmpdir):
    cfg = AffinityConfig(epochs=2, seed=6)
    df = synthesize_library(n=200, seed=cfg.seed)
    train_df, val_df, _ = clonotype_split(df, 0.2, cfg.seed)
    trainer = build_trainer(cfg)
    history = trainer.fit(CDRDataset(train_df), CDRDataset(val_df))
    bundle = {
        "state_dict": trainer.model.state_dict(),
        "arch": {"embed_dim": cfg.embed_dim, "hidden": cfg.hidden, "kernel_sizes": cfg.kernel_sizes},
        "vocab": AA_TO_IDX,
        "pad_idx": PAD,
        "max_len": {"heavy": cfg.max_len_h, "light": cfg.max_len_l},
        "pkd_range": (float(train_df["pkd"].min()), float(train_df["pkd"].max())),
        "cdr3_regex": CDR3_PATTERN.pattern,
        "assay": cfg.assay.value,
        "holdout_clusters": sorted(set(val_df["cluster"])),
        "top_binders": val_df.nlargest(5, "pkd")["antibody_id"].tolist(),
        "best_epoch": history["val_rmse"].index(min(history["val_rmse"])),
        "valid_cdr3_frac": float(df["heavy_cdr3"].str.match(CDR3_PATTERN).mean()),
        "torch_version": str(torch.__version__),
        "exported": time.strftime("%Y-%m-%d"),
    }
    path = os.path.join(tmpdir, "abaff_bundle.pt")
    torch.save(bundle, path)
    return path


FACTORIES = {
    "AssayType": lambda: AssayType.SPR,
    "CDRDataset": lambda: CDRDataset(synthesize_library(n=16)),
    "AffinityTrainer": lambda: build_trainer(AffinityConfig()),
}


def main(argv=None):
    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    run = train_from_args(args)
    state = run.trainer.checkpoint(extra={"hparams": {k: str(v) for k, v in vars(args).items()}})
    torch.save(state, args.out_dir / "last.pt")
    print(f"best val RMSE {run.trainer.best_rmse:.3f} after {run.trainer.epoch} epochs")


if __name__ == "__main__":
    main()
