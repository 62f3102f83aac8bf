"""Credit-default scoring with a tabular net: categorical embeddings + numeric tower.

Pipeline: target-encode high-cardinality categoricals, WoE/IV screening of the bureau grade,
train with early stopping on validation AUC, report KS and calibration by score band.
"""
import argparse
import dataclasses
import enum
import os
import random
import time
from collections import defaultdict, deque

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

CAT_COLS = ["grade", "home_ownership", "purpose", "region"]
NUM_COLS = ["income", "dti", "revol_util", "loan_amnt", "emp_length"]
TARGET = "default"


class Segment(enum.Enum):
    RETAIL = "retail"
    SME = "sme"


@dataclasses.dataclass
class CreditConfig:
    emb_dim: int = 6
    hidden: int = 32
    lr: float = 3e-3
    epochs: int = 4
    patience: int = 2
    smoothing: float = 20.0
    segment: Segment = Segment.RETAIL


def make_frame(n=600, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "grade": rng.choice(list("ABCDEFG"), n, p=[.2, .25, .2, .15, .1, .06, .04]),
        "home_ownership": rng.choice(["RENT", "OWN", "MORTGAGE"], n),
        "purpose": rng.choice(["car", "debt_consolidation", "credit_card", "medical", "other"], n),
        "region": rng.choice([f"r{i}" for i in range(12)], n),
        "income": rng.lognormal(10.8, 0.5, n),
        "dti": rng.uniform(0, 40, n),
        "revol_util": rng.uniform(0, 1, n),
        "loan_amnt": rng.uniform(1e3, 4e4, n),
        "emp_length": rng.integers(0, 11, n).astype(float),
    })
    logit = -2.0 + 0.35 * df["grade"].map(dict(zip("ABCDEFG", range(7)))) + 0.03 * df["dti"] - 0.4 * np.log(df["income"] / 5e4)
    df[TARGET] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


def target_encode(train, col, smoothing=20.0):
    """Smoothed mean target per level; returns the mapping and the global prior."""
    prior = train[TARGET].mean()
    stats = train.groupby(col)[TARGET].agg(["mean", "count"])
    enc = (stats["count"] * stats["mean"] + smoothing * prior) / (stats["count"] + smoothing)
    return enc.round(6).to_dict(), prior


def woe_iv(df, col, target=TARGET, eps=0.5):
    tab = pd.crosstab(df[col], df[target])
    good, bad = tab[0] + eps, tab[1] + eps
    dist_good, dist_bad = good / good.sum(), bad / bad.sum()
    woe = np.log(dist_good / dist_bad)
    table = pd.DataFrame({"bin": tab.index, "good": tab[0].values, "bad": tab[1].values, "woe": woe.values})
    iv = ((dist_good - dist_bad) * woe).sum()
    return table, iv


def ks_statistic(y_true, y_score):
    fpr, tpr, _ = roc_curve(y_true, y_score)
    return np.max(tpr - fpr)


def calibration_bins(y_true, y_prob, n_bins=10):
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(y_prob, edges) - 1, 0, n_bins - 1)
    frac_pos = np.array([y_true[idx == b].mean() if (idx == b).any() else 0.0 for b in range(n_bins)])
    mean_pred = np.array([y_prob[idx == b].mean() if (idx == b).any() else 0.0 for b in range(n_bins)])
    counts = np.bincount(idx, minlength=n_bins)
    return frac_pos, mean_pred, counts


class Vocab:
    """Maps categorical levels to embedding indices (0 is reserved for unseen)."""

    def __init__(self, levels=("A", "B")):
        self.itos = ["<unk>"] + sorted(levels)
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    def encode(self, values):
        return [self.stoi.get(v, 0) for v in values]

    def __len__(self):
        return len(self.itos)


class TabularNet(nn.Module):
    def __init__(self, cardinalities=(4, 4), n_num=5, emb_dim=6, hidden=32):
        super().__init__()
        self.embs = nn.ModuleList([nn.Embedding(c, emb_dim) for c in cardinalities])
        self.num_bn = nn.BatchNorm1d(n_num)
        self.mlp = nn.Sequential(
            nn.Linear(emb_dim * len(cardinalities) + n_num, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, 1))

    def forward(self, x_cat, x_num):
        e = [emb(x_cat[:, i]) for i, emb in enumerate(self.embs)]
        return self.mlp(torch.cat(e + [self.num_bn(x_num)], dim=1)).squeeze(1)


class EarlyStopper:
    def __init__(self, patience=2, mode="max"):
        self.patience, self.mode = patience, mode
        self.best = -float("inf") if mode == "max" else float("inf")
        self.wait = 0
        self.recent = deque(maxlen=5)

    def step(self, value):
        self.recent.append(value)
        improved = value > self.best if self.mode == "max" else value < self.best
        if improved:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        return self.wait > self.patience


def tensorize(df, vocabs, num_mean, num_std):
    x_cat = torch.tensor(np.stack([vocabs[c].encode(df[c]) for c in CAT_COLS], 1), dtype=torch.long)
    x_num = torch.tensor(((df[NUM_COLS] - num_mean) / num_std).to_numpy(), dtype=torch.float32)
    y = torch.tensor(df[TARGET].to_numpy(), dtype=torch.float32)
    return x_cat, x_num, y


class CreditTrainer:
    def __init__(self, cfg=None, seed=0):
        self.cfg = cfg or CreditConfig()
        df = make_frame(seed=seed)
        self.train_df, self.val_df = df.iloc[:450], df.iloc[450:]
        self.vocabs = {c: Vocab(self.train_df[c].unique()) for c in CAT_COLS}
        self.num_mean = self.train_df[NUM_COLS].mean()
        self.num_std = self.train_df[NUM_COLS].std() + 1e-6
        torch.manual_seed(seed)
        self.model = TabularNet([len(self.vocabs[c]) for c in CAT_COLS], len(NUM_COLS), self.cfg.emb_dim, self.cfg.hidden)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=1e-4)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.cfg.epochs)
        self.stopper = EarlyStopper(self.cfg.patience)
        self.history = defaultdict(list)
        self.epoch = 0
        self.best_auc = 0.0
        self.best_ks = 0.0
        self.best_state = None

    def evaluate(self):
        x_cat, x_num, y = tensorize(self.val_df, self.vocabs, self.num_mean, self.num_std)
        self.model.eval()
        with torch.no_grad():
            prob = torch.sigmoid(self.model(x_cat, x_num)).numpy()
        y_np = y.numpy()
        return {
            "auc": roc_auc_score(y_np, prob),
            "ks": ks_statistic(y_np, prob),
            "brier": brier_score_loss(y_np, prob),
            "gini": 2 * roc_auc_score(y_np, prob) - 1,
        }

    def fit(self):
        x_cat, x_num, y = tensorize(self.train_df, self.vocabs, self.num_mean, self.num_std)
        loss_fn = nn.BCEWithLogitsLoss()
        for self.epoch in range(1, self.cfg.epochs + 1):
            self.model.train()
            perm = torch.randperm(len(y))
            losses = []
            for i in range(0, len(y), 64):
                b = perm[i:i + 64]
                loss = loss_fn(self.model(x_cat[b], x_num[b]), y[b])
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                losses.append(loss.item())
            self.scheduler.step()
            metrics = self.evaluate()
            self.history["train_loss"].append(float(np.mean(losses)))
            for k, v in metrics.items():
                self.history[k].append(v)
            if metrics["auc"] > self.best_auc:
                self.best_auc, self.best_ks = metrics["auc"], metrics["ks"]
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if self.stopper.step(metrics["auc"]):
                break
        return self


FACTORIES = {
    "Segment": lambda: Segment.SME,
    "CreditTrainer": lambda: CreditTrainer(CreditConfig(epochs=1)),
}


def save_credit_best(tmpdir):
    cfg = CreditConfig(epochs=3)
    trainer = CreditTrainer(cfg).fit()
    ckpt = {
        "model": trainer.best_state,
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "epoch": trainer.epoch,
    }
    ckpt["best_auc"] = trainer.best_auc
    ckpt["best_ks"] = trainer.best_ks  # truth: weights_only
    ckpt["gini"] = 2 * trainer.best_auc - 1
    ckpt["history"] = trainer.history  # truth: weights_only
    ckpt["train_loss"] = list(trainer.history["train_loss"])
    ckpt["config"] = dataclasses.asdict(cfg) | {"segment": cfg.segment.value}
    ckpt["risk_segment"] = cfg.segment  # truth: weights_only
    ckpt["vocab"] = {c: v.itos for c, v in trainer.vocabs.items()}
    ckpt["num_norm"] = {"mean": trainer.num_mean.to_dict(), "std": trainer.num_std.to_dict()}
    path = os.path.join(tmpdir, "credit_best.pt")
    torch.save(ckpt, path)
    return path


def save_encoders(tmpdir):
    df = make_frame(800, seed=1)
    train = df.iloc[:600]
    te_maps, priors = {}, []
    for col in ("purpose", "region"):
        mapping, prior = target_encode(train, col)
        te_maps[col] = mapping
        priors.append(prior)
    woe_table, iv = woe_iv(train, "grade")
    screening = {}
    for col in CAT_COLS:
        _, col_iv = woe_iv(train, col)
        screening[col] = round(float(col_iv), 4)
    artefact = dict(
        target_encoding=te_maps,
        prior=priors[0],  # truth: weights_only
        smoothing=20.0,
        grade_woe=woe_table.set_index("bin")["woe"].round(4).to_dict(),
        grade_iv=float(iv),
        woe_table=woe_table.to_dict("records"),
        iv_screening=screening,
        selected=[c for c, v in screening.items() if v >= 0.02],
        cardinality={c: train[c].nunique() for c in CAT_COLS},
        levels={c: train[c].astype("category").cat.categories.tolist() for c in CAT_COLS},
        feature_order=list(train.columns),
        dtypes=train.dtypes.astype(str).to_dict(),
        n_rows=len(train),
        default_rate=train[TARGET].mean().item(),
    )
    path = os.path.join(tmpdir, "encoders.pt")
    torch.save(artefact, path)
    return path


def save_calibration(tmpdir):
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 500)
    prob = np.clip(0.3 * y + rng.beta(2, 5, 500), 0, 1)
    frac_pos, mean_pred, counts = calibration_bins(y, prob, n_bins=8)
    weights = counts / counts.sum()
    ece = np.sum(weights * np.abs(frac_pos - mean_pred))
    bands = pd.qcut(pd.Series(prob), 5, duplicates="drop")
    band_rates = pd.Series(y).groupby(bands.cat.codes).mean()
    payload = {
        "brier": brier_score_loss(y, prob),
        "auc": roc_auc_score(y, prob),
        "ece": ece,  # truth: weights_only
        "mce": float(np.max(np.abs(frac_pos - mean_pred))),
        "bins": {
            "frac_pos": frac_pos.tolist(),
            "mean_pred": mean_pred,  # truth: weights_only
            "counts": counts.tolist(),
        },
        "band_edges": bands.cat.categories,  # truth: weights_only
        "band_default_rate": band_rates.round(4).to_dict(),
        "n_bins": 8,
    }
    payload["monotone"] = bool(band_rates.is_monotonic_increasing)
    path = os.path.join(tmpdir, "calibration.pt")
    torch.save(payload, path)
    return path


def parse_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--out", default="runs/credit")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def save_resume_state(tmpdir):
    args = parse_args(["--epochs", "2"])
    trainer = CreditTrainer(CreditConfig(epochs=args.epochs, lr=args.lr)).fit()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    state = {
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "grad_scaler": scaler.state_dict(),
        "hparams": vars(args),
    }
    state.update(rng=dict(
        torch=torch.get_rng_state(),
        python=random.getstate(),
        numpy=np.random.get_state(),  # truth: weights_only
    ))
    state["early_stopping"] = {
        "best": trainer.stopper.best,
        "wait": trainer.stopper.wait,
        "recent": trainer.stopper.recent,  # truth: weights_only
        "recent_list": list(trainer.stopper.recent),
    }
    state["saved_at"] = time.time()
    path = os.path.join(tmpdir, "last.pt")
    torch.save(state, path)
    return path


def save_full_model(tmpdir):
    trainer = CreditTrainer(CreditConfig(epochs=1)).fit()
    trainer.model.eval()
    path = os.path.join(tmpdir, "credit_model_full.pt")
    torch.save(trainer.model, path)  # truth: weights_only
    return path


def save_scorecard_export(tmpdir):
    trainer = CreditTrainer(CreditConfig(epochs=2)).fit()
    metrics = trainer.evaluate()
    ks = ks_statistic(trainer.val_df[TARGET].to_numpy(), np.linspace(0, 1, len(trainer.val_df)))
    best_epoch = int(np.argmax(trainer.history["auc"])) + 1
    export = {"weights": trainer.model.state_dict()}
    export["metrics"] = {k: float(v) for k, v in metrics.items()}
    export["ks_baseline"] = ks.item()
    export["best_epoch"] = best_epoch
    export["auc_curve"] = [round(a, 4) for a in trainer.history["auc"]]
    export["cat_cardinalities"] = [len(trainer.vocabs[c]) for c in CAT_COLS]
    export["num_mean"] = trainer.num_mean.tolist()
    export["num_std"] = torch.tensor(trainer.num_std.to_numpy(), dtype=torch.float32)
    export["segment"] = trainer.cfg.segment.value
    export["out_dir"] = str(os.path.join(tmpdir, "scorecard"))
    export["torch"] = str(torch.__version__)
    path = os.path.join(tmpdir, "scorecard.pt")
    torch.save(export, path)
    return path
