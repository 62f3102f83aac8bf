"""Molecular property prediction: SMILES -> toy graph features, Bemis-Murcko-like scaffold split,
a small message-passing net, checkpoints per best validation ROC-AUC."""
import argparse
import enum
import os
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

SMILES = ["CCO", "c1ccccc1O", "CC(=O)O", "c1ccccc1N", "CCN", "C1CCCCC1", "c1ccncc1", "CCCl"]
LABELS = [0, 1, 0, 1, 0, 1, 1, 0]
ATOMS = ["C", "c", "N", "n", "O", "Cl"]


class TaskType(enum.Enum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


@dataclass
class MolConfig:
    hidden_dim: int = 16
    depth: int = 2
    dropout: float = 0.1
    lr: float = 1e-3
    tasks: list = field(default_factory=lambda: ["p_np"])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="train a D-MPNN on a scaffold split")
    parser.add_argument("--data_path", type=str, default="data/bbbp.csv")
    parser.add_argument("--split", choices=["random", "scaffold"], default="scaffold")
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv if argv is not None else [])


def atom_features(smiles):
    counts = Counter(ch for ch in smiles if ch.isalpha())
    return np.array([counts.get(a, 0) for a in ATOMS], dtype=np.float32)


def scaffold_of(smiles):
    return "ring" if "1" in smiles else smiles[:2]


def scaffold_split(smiles_list, frac_train=0.75):
    scaffolds = defaultdict(list)
    for i, smi in enumerate(smiles_list):
        scaffolds[scaffold_of(smi)].append(i)
    groups = sorted(scaffolds.values(), key=len, reverse=True)
    train, valid = [], []
    for g in groups:
        (train if len(train) + len(g) <= frac_train * len(smiles_list) else valid).extend(g)
    return scaffolds, np.array(train), np.array(valid)


class MPNN(nn.Module):
    def __init__(self, in_dim=len(ATOMS), hidden=16, depth=2):
        super().__init__()
        self.inp = nn.Linear(in_dim, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        for layer in self.layers:
            h = torch.relu(layer(h)) + h
        return self.out(h).squeeze(-1)


def _featurize():
    x = torch.from_numpy(np.stack([atom_features(s) for s in SMILES]))
    y = torch.tensor(LABELS, dtype=torch.float32)
    return x, y


def _evaluate(model, x, y, idx):
    model.eval()
    with torch.no_grad():
        logits = model(x[idx])
        loss = nn.functional.binary_cross_entropy_with_logits(logits, y[idx])
    probs = torch.sigmoid(logits).numpy()
    return loss.item(), roc_auc_score(y[idx].numpy(), probs), probs


def save_scaffold_split(tmpdir):
    scaffolds, train_idx, valid_idx = scaffold_split(SMILES)
    sizes = Counter({k: len(v) for k, v in scaffolds.items()})
    split = {
        "scaffold_sets": scaffolds,  # truth: weights_only
        "train_idx": train_idx,  # truth: weights_only
        "valid_idx": valid_idx.tolist(),
        "scaffold_sizes": sizes,
        "n_scaffolds": len(scaffolds),
        "largest": max(sizes.values()),
    }
    path = os.path.join(tmpdir, "split.pt")
    torch.save(split, path)
    return path


def save_best_mpnn(tmpdir):
    args = parse_args(["--hidden", "8"])
    torch.manual_seed(args.seed)
    x, y = _featurize()
    _, train_idx, valid_idx = scaffold_split(SMILES)
    model = MPNN(hidden=args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    val_losses, val_aucs = [], []
    for _ in range(args.epochs):
        model.train()
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x[train_idx]), y[train_idx])
        loss.backward()
        optimizer.step()
        v_loss, v_auc, _ = _evaluate(model, x, y, valid_idx)
        val_losses.append(v_loss)
        val_aucs.append(v_auc)
    best_epoch = np.argmax(val_aucs)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "args": args,  # truth: weights_only
        "best_epoch": best_epoch,  # truth: weights_only
        "best_val_auc": val_aucs[int(best_epoch)],
        "mean_val_loss": statistics.mean(val_losses),
        "val_loss_std": np.std(val_losses),  # truth: weights_only
    }
    ckpt["data_path"] = Path(args.data_path)  # truth: weights_only
    ckpt["data_file"] = str(Path(args.data_path).name)
    path = os.path.join(tmpdir, "mpnn_best.pt")
    torch.save(ckpt, path)
    return path


def save_normalized_regressor(tmpdir):
    cfg = MolConfig()
    x, _ = _featurize()
    df = pd.DataFrame({"smiles": SMILES, "logS": np.linspace(-3.0, 1.0, len(SMILES))})
    target_mean = df["logS"].mean()
    target_std = df["logS"].std()
    model = MPNN(hidden=cfg.hidden_dim, depth=cfg.depth)
    state = dict(
        model=model.state_dict(),
        config=asdict(cfg),
        task=TaskType.REGRESSION,  # truth: weights_only
        target_mean=target_mean,  # truth: weights_only
        target_std=float(target_std),
        feature_scale=torch.from_numpy(x.numpy().max(axis=0)),
        n_heavy=df["smiles"].str.len().tolist(),
    )
    state.update(
        task_name=TaskType.REGRESSION.value,
        saved_at=datetime.now().isoformat(timespec="seconds"),
        wall=time.time(),
    )
    path = os.path.join(tmpdir, "regressor.pt")
    torch.save(state, path)
    return path


class MolTrainer:
    """Keeps best-so-far bookkeeping across epochs, writes checkpoints itself."""

    def __init__(self, cfg=None):
        self.cfg = cfg or MolConfig()
        self.model = MPNN(hidden=self.cfg.hidden_dim, depth=self.cfg.depth)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.5)
        self.best_auc = -1.0
        self.best_probs = None
        self.history = []
        self.started = datetime.now()

    def fit_epoch(self, x, y, train_idx, valid_idx):
        self.model.train()
        self.optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(self.model(x[train_idx]), y[train_idx])
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        _, auc, probs = _evaluate(self.model, x, y, valid_idx)
        self.history.append({"loss": loss.item(), "auc": auc})
        if self.best_probs is None or auc > self.best_auc:
            self.best_auc = auc
            self.best_probs = probs

    def checkpoint_state(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }


def save_trainer_state(tmpdir):
    x, y = _featurize()
    _, train_idx, valid_idx = scaffold_split(SMILES)
    trainer = MolTrainer(MolConfig(hidden_dim=8))
    trainer.fit_epoch(x, y, train_idx, valid_idx)
    ckpt = {
        "state": trainer.checkpoint_state(),
        "config": trainer.cfg,  # truth: weights_only
        "best_auc": trainer.best_auc,
        "best_probs": trainer.best_probs,  # truth: weights_only
        "history": trainer.history,
        "started": trainer.started,  # truth: weights_only
        "lr": trainer.scheduler.get_last_lr()[0],
    }
    path = os.path.join(tmpdir, "trainer.pt")
    torch.save(ckpt, path)
    return path


def save_clean_mpnn(tmpdir):
    args = parse_args()
    x, y = _featurize()
    model = MPNN(hidden=args.hidden)
    _, auc, probs = _evaluate(model, x, y, np.arange(len(SMILES)))
    payload = {
        "model": model.state_dict(),
        "args": vars(args),
        "auc": auc,
        "probs": torch.as_tensor(probs),
        "pos_rate": float(np.mean(LABELS)),
        "atom_vocab": list(ATOMS),
        "rng": torch.get_rng_state(),
    }
    path = os.path.join(tmpdir, "clean.pt")
    torch.save(payload, path)
    return path


NOT_BUILT = {"TaskType": "an Enum: its members are built at import"}
