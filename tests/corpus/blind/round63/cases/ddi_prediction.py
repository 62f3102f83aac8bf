"""Drug-drug interaction (DDI) type prediction from pairs of drug fingerprints.

DeepDDI-style: every drug is a fingerprint plus a few scaled descriptors, a shared drug tower
embeds both drugs of a pair and a head predicts one of the interaction types. Trainer class with
helper methods; data prepared with pandas and scikit-learn.
"""
import statistics
import time
from collections import defaultdict
from copy import deepcopy
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, precision_recall_curve,
                             roc_auc_score)
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import LabelEncoder, StandardScaler, label_binarize

DESCRIPTOR_COLS = ("mol_weight", "logp", "tpsa", "hbd")
INTERACTION_TYPES = ["increase_toxicity", "decrease_efficacy", "increase_serum_conc", "decrease_serum_conc",
                     "qt_prolongation", "bleeding_risk", "cns_depression", "hypotension"]
SEVERE = {"qt_prolongation", "bleeding_risk", "increase_toxicity"}


class SplitStrategy(str, Enum):
    RANDOM = "random"
    COLD_DRUG = "cold_drug"
    COLD_PAIR = "cold_pair"


@dataclass
class DDIConfig:
    fp_bits: int = 128
    hidden: tuple = (96, 48)
    dropout: float = 0.2
    lr: float = 2e-3
    weight_decay: float = 1e-5
    epochs: int = 3
    batch_size: int = 64
    split: str = "cold_drug"
    n_drugs: int = 50
    n_pairs: int = 480
    seed: int = 7
    patience: int = 2
    tags: list = field(default_factory=lambda: ["deepddi", "fp"])


def load_ddi_tables(cfg):
    """Synthetic stand-in for the DrugBank export: a drug table and an interaction table."""
    rng = np.random.default_rng(cfg.seed)
    drugs = pd.DataFrame({
        "drug_id": [f"DB{i:05d}" for i in range(1, cfg.n_drugs + 1)],
        "mol_weight": rng.normal(350, 90, cfg.n_drugs).round(2),
        "logp": rng.normal(2.1, 1.3, cfg.n_drugs),
        "tpsa": rng.uniform(10, 140, cfg.n_drugs),
        "hbd": rng.integers(0, 6, cfg.n_drugs),
    })
    a = rng.integers(0, cfg.n_drugs, cfg.n_pairs)
    b = (a + rng.integers(1, cfg.n_drugs, cfg.n_pairs)) % cfg.n_drugs
    pairs = pd.DataFrame({"drug_a": drugs.drug_id.to_numpy()[a], "drug_b": drugs.drug_id.to_numpy()[b],
                          "interaction": rng.choice(INTERACTION_TYPES, cfg.n_pairs)})
    return drugs, pairs.drop_duplicates(["drug_a", "drug_b"]).reset_index(drop=True)


class DrugFeaturizer:
    def __init__(self, fp_bits=128):
        self.fp_bits = fp_bits
        self.scaler = StandardScaler()
        self.encoder = LabelEncoder()
        self.index = {}
        self.fps = None

    def fit(self, drugs, pairs):
        self.index = {d: i for i, d in enumerate(drugs.drug_id)}
        fps = np.stack([np.random.default_rng(int(d[2:])).random(self.fp_bits) < 0.12 for d in drugs.drug_id])
        desc = self.scaler.fit_transform(drugs[list(DESCRIPTOR_COLS)].to_numpy(np.float64))
        self.fps = np.hstack([fps.astype(np.float32), desc.astype(np.float32)])
        self.encoder.fit(pairs.interaction)
        return self

    def transform(self, pairs):
        ia = pairs.drug_a.map(self.index).to_numpy()
        ib = pairs.drug_b.map(self.index).to_numpy()
        y = self.encoder.transform(pairs.interaction)
        return torch.from_numpy(self.fps[ia]), torch.from_numpy(self.fps[ib]), torch.as_tensor(y)


class DDINet(nn.Module):
    def __init__(self, in_dim=132, hidden=(96, 48), n_types=8, dropout=0.2):
        super().__init__()
        layers, d = [], in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        self.tower = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(3 * d, d), nn.ReLU(), nn.Linear(d, n_types))

    def forward(self, xa, xb):
        ha, hb = self.tower(xa), self.tower(xb)
        # symmetric in (a, b): DDI labels do not depend on the order of the pair
        return self.head(torch.cat([ha + hb, (ha - hb).abs(), ha * hb], -1))


class DDITrainer:
    def __init__(self, cfg, featurizer, drugs, pairs):
        self.cfg = cfg
        self.featurizer = featurizer
        self.drugs, self.pairs = drugs, pairs
        torch.manual_seed(cfg.seed)
        self.model = DDINet(featurizer.fps.shape[1], cfg.hidden, len(featurizer.encoder.classes_), cfg.dropout)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="max", patience=1)
        self.history = defaultdict(list)
        self.epoch = 0
        self.best_score = float("-inf")
        self.best_epoch = -1
        self.best_state = None
        self.bad_epochs = 0
        self.train_idx, self.val_idx, self.test_idx = self._split()

    def _split(self):
        rng = np.random.default_rng(self.cfg.seed)
        n = len(self.pairs)
        if SplitStrategy(self.cfg.split) is SplitStrategy.COLD_DRUG:
            held = set(rng.choice(self.drugs.drug_id.to_numpy(), size=max(2, len(self.drugs) // 8), replace=False))
            cold = (self.pairs.drug_a.isin(held) | self.pairs.drug_b.isin(held)).to_numpy()
            rest = np.flatnonzero(~cold)
            rng.shuffle(rest)
            cut = int(0.85 * len(rest))
            return rest[:cut], rest[cut:], np.flatnonzero(cold)
        perm = rng.permutation(n)
        return perm[: int(0.7 * n)], perm[int(0.7 * n): int(0.85 * n)], perm[int(0.85 * n):]

    def _tensors(self, idx):
        return self.featurizer.transform(self.pairs.iloc[idx])

    def train_epoch(self):
        self.model.train()
        xa, xb, y = self._tensors(self.train_idx)
        losses = []
        for s in range(0, len(y), self.cfg.batch_size):
            sl = slice(s, s + self.cfg.batch_size)
            loss = nn.functional.cross_entropy(self.model(xa[sl], xb[sl]), y[sl])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        return np.mean(losses), len(y)

    @torch.no_grad()
    def predict(self, idx):
        self.model.eval()
        xa, xb, y = self._tensors(idx)
        return torch.softmax(self.model(xa, xb), -1).numpy(), y.numpy()

    def evaluate(self, idx):
        probs, y = self.predict(idx)
        pred = probs.argmax(1)
        classes = np.arange(probs.shape[1])
        onehot = label_binarize(y, classes=classes)
        present = onehot.sum(0) > 0
        return {
            "acc": accuracy_score(y, pred),
            "macro_f1": f1_score(y, pred, average="macro", zero_division=0),
            "per_type_f1": f1_score(y, pred, average=None, labels=classes, zero_division=0),
            "auroc": roc_auc_score(onehot[:, present], probs[:, present], average="macro"),
            "aupr": average_precision_score(onehot[:, present], probs[:, present], average="macro"),
            "n": len(y),
        }

    def fit(self):
        for epoch in range(self.cfg.epochs):
            self.epoch = epoch
            loss, seen = self.train_epoch()
            val = self.evaluate(self.val_idx)
            self.history["loss"].append(loss)
            self.history["val_f1"].append(val["macro_f1"])
            self.history["val_auroc"].append(val["auroc"])
            self.scheduler.step(np.mean(self.history["val_f1"][-2:]))
            if val["macro_f1"] > self.best_score:
                self.best_score, self.best_epoch = val["macro_f1"], epoch
                self.best_state = deepcopy(self.model.state_dict())
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
                if self.bad_epochs >= self.cfg.patience:
                    break
        return self

    def state_dict(self):
        return {
            "model": self.best_state or self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_epoch": self.best_epoch,
            "best_score": self.best_score,
            "history": {k: [float(x) for x in v] for k, v in self.history.items()},
        }


def build_trainer(cfg):
    drugs, pairs = load_ddi_tables(cfg)
    featurizer = DrugFeaturizer(cfg.fp_bits).fit(drugs, pairs)
    return DDITrainer(cfg, featurizer, drugs, pairs)


def save_best_model(tmpdir):
    trainer = build_trainer(DDIConfig()).fit()
    test = trainer.evaluate(trainer.test_idx)
    ckpt = trainer.state_dict()
    ckpt.update({
        "config": trainer.cfg,  # truth: weights_only
        "config_dict": asdict(trainer.cfg),
        "interaction_types": trainer.featurizer.encoder.classes_,  # truth: weights_only
        "test": {
            "acc": test["acc"],
            "macro_f1": test["macro_f1"],
            "per_type_f1": test["per_type_f1"],  # truth: weights_only
            "auroc": test["auroc"],
            "aupr": round(test["aupr"], 4),
            "n": test["n"],
        },
    })
    ckpt["loss_curve"] = trainer.history["loss"]  # truth: weights_only
    path = Path(tmpdir) / f"ddi_{trainer.cfg.split}_best.pt"
    torch.save(ckpt, path)
    return str(path)


def save_cv_summary(tmpdir):
    cfg = replace(DDIConfig(), epochs=1, split="random")
    drugs, pairs = load_ddi_tables(cfg)
    featurizer = DrugFeaturizer(cfg.fp_bits).fit(drugs, pairs)
    labels = featurizer.encoder.transform(pairs.interaction)
    skf = StratifiedKFold(n_splits=3, shuffle=True, random_state=cfg.seed)
    fold_scores, test_folds = defaultdict(list), []
    for fold, (tr, te) in enumerate(skf.split(np.zeros(len(labels)), labels)):
        trainer = DDITrainer(cfg, featurizer, drugs, pairs)
        trainer.train_idx, trainer.val_idx, trainer.test_idx = tr, te, te
        trainer.fit()
        m = trainer.evaluate(te)
        for key in ("acc", "macro_f1", "auroc"):
            fold_scores[key].append(m[key])
        test_folds.append(te.tolist())
    summary = {
        "fold_scores": fold_scores,  # truth: weights_only
        "auroc_mean": np.mean(fold_scores["auroc"]),  # truth: weights_only
        "auroc_std": float(np.std(fold_scores["auroc"])),
        "f1_mean": statistics.fmean(fold_scores["macro_f1"]),
        "acc_best": max(fold_scores["acc"]),
        "test_folds": test_folds,
        "n_splits": skf.get_n_splits(),
        "bootstrap_seed": np.random.randint(1 << 30),
        "config": asdict(cfg),
        "created": time.time(),
    }
    path = Path(tmpdir) / "cv_summary.pt"
    torch.save(summary, path)
    return str(path)


def save_inference_model(tmpdir):
    trainer = build_trainer(replace(DDIConfig(), epochs=1))
    trainer.fit()
    trainer.model.load_state_dict(trainer.best_state)
    path = Path(tmpdir) / "ddi_model_full.pt"
    torch.save(trainer.model.eval(), path)  # truth: weights_only
    return str(path)


def save_featurizer_state(tmpdir):
    cfg = DDIConfig(fp_bits=64)
    drugs, pairs = load_ddi_tables(cfg)
    f = DrugFeaturizer(cfg.fp_bits).fit(drugs, pairs)
    state = {}
    state["scaler_mean"] = torch.tensor(f.scaler.mean_)
    state["scaler_scale"] = f.scaler.scale_.tolist()
    state["n_samples_seen"] = f.scaler.n_samples_seen_  # truth: weights_only
    state["n_features"] = f.scaler.n_features_in_
    state["label_classes"] = f.encoder.classes_.tolist()
    state["drug_index"] = f.index
    state["descriptor_cols"] = list(DESCRIPTOR_COLS)
    state["fp_bits"] = f.fp_bits
    state["fp_density"] = float(f.fps[:, : f.fp_bits].mean())
    state["fingerprints"] = torch.from_numpy(f.fps)
    state["interactions_per_drug"] = pd.concat([pairs.drug_a, pairs.drug_b]).value_counts().to_dict()
    path = Path(tmpdir) / "featurizer.pt"
    torch.save(state, path)
    return str(path)


def save_severity_calibration(tmpdir):
    """Binary 'severe interaction' alert on top of the type classifier: pick the alert threshold."""
    trainer = build_trainer(replace(DDIConfig(), epochs=2, split="random")).fit()
    probs, y = trainer.predict(trainer.val_idx)
    classes = trainer.featurizer.encoder.classes_
    severe_cols = [i for i, c in enumerate(classes) if c in SEVERE]
    p_severe = probs[:, severe_cols].sum(1)
    y_severe = np.isin(y, severe_cols)
    precision, recall, thresholds = precision_recall_curve(y_severe, p_severe)
    f1s = 2 * precision * recall / np.clip(precision + recall, 1e-8, None)
    best = int(np.argmax(f1s[:-1]))
    strategy = SplitStrategy(trainer.cfg.split)
    calib = {
        "threshold": thresholds[best],  # truth: weights_only
        "f1_at_threshold": float(f1s[best]),
        "pos_rate": y_severe.mean(),  # truth: weights_only
        "severe_types": [str(classes[i]) for i in severe_cols],
        "type_support": np.bincount(y, minlength=len(classes)).tolist(),
        "split": strategy,  # truth: weights_only
        "split_name": strategy.value,
        "n_val": len(y),
        "model": trainer.model.state_dict(),
        "best_epoch": trainer.best_epoch,
    }
    path = Path(tmpdir) / "severity_calibration.pt"
    torch.save(calib, path)
    return str(path)


FACTORIES = {
    "SplitStrategy": lambda: SplitStrategy.COLD_PAIR,
    "DDITrainer": lambda: build_trainer(replace(DDIConfig(), n_pairs=120, epochs=1)),
}
