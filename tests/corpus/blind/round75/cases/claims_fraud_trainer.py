"""Insurance-claim fraud detection: tabular MLP on engineered claim features.

Pipeline: synthetic claims frame -> ClaimsPreprocessor (scaler + one-hot) -> FraudMLP trained with
BCE + pos_weight -> threshold picked on the validation PR curve at a target recall.
Checkpoints are written for the serving team (threshold bundle), for the SIU analysts (adjuster
stats) and for resuming training.
"""
import dataclasses
import datetime as dt
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import IsolationForest
from sklearn.metrics import (average_precision_score, brier_score_loss, confusion_matrix,
                             precision_recall_curve, roc_auc_score)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn

NUM_COLS = ["claim_amount", "policy_tenure_months", "num_prior_claims", "vehicle_age",
            "incident_hour", "days_to_report"]
BIN_COLS = ["witness_present", "police_report"]
CAT_COLS = ["incident_type", "region", "policy_tier"]
TARGET = "is_fraud"

DEDUCTIBLES = {"basic": Decimal("1000.00"), "plus": Decimal("500.00"), "premium": Decimal("250.00")}


def make_claims(n=1500, seed=7):
    """Synthetic claims table shaped like the carrier's monthly export."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "claim_id": [f"CLM{100000 + i}" for i in range(n)],
        "claim_amount": rng.lognormal(8.0, 0.9, n).round(2),
        "policy_tenure_months": rng.integers(1, 180, n),
        "num_prior_claims": rng.poisson(0.6, n),
        "vehicle_age": rng.integers(0, 20, n),
        "incident_hour": rng.integers(0, 24, n),
        "days_to_report": rng.exponential(4.0, n).round(),
        "witness_present": rng.random(n) < 0.4,
        "police_report": rng.random(n) < 0.55,
        "incident_type": rng.choice(["collision", "theft", "fire", "vandalism"], n, p=[.6, .2, .05, .15]),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "policy_tier": rng.choice(list(DEDUCTIBLES), n),
        "adjuster_id": rng.choice([f"ADJ{i:03d}" for i in range(12)], n),
        "reported_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
    })
    logit = (-3.2 + 0.9 * (df["incident_type"] == "theft") + 0.5 * (df["days_to_report"] > 10)
             - 0.6 * df["police_report"] + 0.3 * df["num_prior_claims"] - 0.004 * df["policy_tenure_months"])
    df[TARGET] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return df


@dataclass
class FraudConfig:
    hidden: tuple = (64, 32)
    dropout: float = 0.2
    lr: float = 2e-3
    weight_decay: float = 1e-4
    epochs: int = 3
    batch_size: int = 256
    seed: int = 13
    target_recall: float = 0.80
    review_budget: Decimal = Decimal("25000.00")
    cutoff: dt.date = dt.date(2024, 10, 1)
    tags: list = field(default_factory=lambda: ["auto", "baseline"])


class ClaimsPreprocessor:
    """Scaler on numeric columns, one-hot on categoricals, booleans passed through."""

    def __init__(self):
        self.scaler = StandardScaler()
        self.encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        self.feature_names_ = []

    def fit(self, df):
        self.scaler.fit(df[NUM_COLS].astype(float))
        self.encoder.fit(df[CAT_COLS])
        self.feature_names_ = NUM_COLS + BIN_COLS + list(self.encoder.get_feature_names_out())
        return self

    def transform(self, df):
        num = self.scaler.transform(df[NUM_COLS].astype(float))
        cat = self.encoder.transform(df[CAT_COLS])
        return np.hstack([num, df[BIN_COLS].to_numpy(float), cat]).astype(np.float32)

    def export(self):
        return {
            "num_cols": list(NUM_COLS),
            "mean": self.scaler.mean_.tolist(),
            "scale": self.scaler.scale_.tolist(),
            "categories": {c: cats.tolist() for c, cats in zip(CAT_COLS, self.encoder.categories_)},
            "feature_names": list(self.feature_names_),
        }


class FraudMLP(nn.Module):
    def __init__(self, n_features=21, hidden=(64, 32), dropout=0.2):
        super().__init__()
        layers, width = [], n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(-1)


class FraudTrainer:
    def __init__(self, cfg, n_features, pos_weight):
        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.model = FraudMLP(n_features, cfg.hidden, cfg.dropout)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.epochs)
        self.criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([pos_weight], dtype=torch.float32))
        self.history = defaultdict(list)
        self.epoch = 0
        self.best_ap = 0.0

    def train_epoch(self, X, y):
        self.model.train()
        perm = torch.randperm(len(X))
        losses = []
        for i in range(0, len(X), self.cfg.batch_size):
            idx = perm[i:i + self.cfg.batch_size]
            loss = self.criterion(self.model(X[idx]), y[idx])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        self.scheduler.step()
        self.epoch += 1
        return np.mean(losses)

    @torch.no_grad()
    def predict_proba(self, X):
        self.model.eval()
        return torch.sigmoid(self.model(X)).numpy()

    def evaluate(self, X, y_true):
        probs = self.predict_proba(X)
        return {
            "roc_auc": roc_auc_score(y_true, probs),
            "pr_auc": average_precision_score(y_true, probs),
            "brier": brier_score_loss(y_true, probs),
            "alert_rate": (probs > 0.5).mean(),
            "mean_score": float(probs.mean()),
        }

    def fit(self, X_tr, y_tr, X_va, y_va):
        for _ in range(self.cfg.epochs):
            loss = self.train_epoch(X_tr, y_tr)
            metrics = self.evaluate(X_va, y_va.numpy())
            self.history["train_loss"].append(float(loss))
            self.history["val_pr_auc"].append(metrics["pr_auc"])
            self.best_ap = max(self.best_ap, metrics["pr_auc"])
        return metrics

    def tune_threshold(self, X, y_true, target_recall):
        """Highest threshold whose recall still meets the SIU target; returns (thr, precision)."""
        precision, recall, thresholds = precision_recall_curve(y_true, self.predict_proba(X))
        ok = np.where(recall[:-1] >= target_recall)[0]
        i = ok[-1] if len(ok) else 0
        return thresholds[i], precision[i]

    def state(self):
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "best_ap": float(self.best_ap),
        }


def prepare(cfg, df=None):
    df = make_claims(seed=cfg.seed) if df is None else df
    train_df, val_df = train_test_split(df, test_size=0.25, stratify=df[TARGET], random_state=cfg.seed)
    prep = ClaimsPreprocessor().fit(train_df)
    X_tr = torch.from_numpy(prep.transform(train_df))
    X_va = torch.from_numpy(prep.transform(val_df))
    y_tr = torch.tensor(train_df[TARGET].to_numpy(), dtype=torch.float32)
    y_va = torch.tensor(val_df[TARGET].to_numpy(), dtype=torch.float32)
    pos_weight = (len(train_df) - train_df[TARGET].sum()) / train_df[TARGET].sum()
    return prep, (X_tr, y_tr, X_va, y_va), pos_weight, train_df, val_df


def train_pipeline(cfg):
    prep, (X_tr, y_tr, X_va, y_va), pos_weight, train_df, val_df = prepare(cfg)
    trainer = FraudTrainer(cfg, X_tr.shape[1], float(pos_weight))
    metrics = trainer.fit(X_tr, y_tr, X_va, y_va)
    return trainer, prep, metrics, (X_va, y_va), (train_df, val_df), pos_weight


def config_to_dict(cfg):
    out = dataclasses.asdict(cfg)
    out["review_budget"] = str(cfg.review_budget)
    out["cutoff"] = cfg.cutoff.isoformat()
    return out


# ---------------------------------------------------------------- checkpoints

def save_fraud_checkpoint(tmpdir):
    cfg = FraudConfig()
    trainer, prep, metrics, _, (train_df, _), pos_weight = train_pipeline(cfg)
    ckpt = trainer.state()
    ckpt.update({
        "config": config_to_dict(cfg),
        "preprocessor": prep.export(),
        "val_roc_auc": metrics["roc_auc"],
        "val_alert_rate": metrics["alert_rate"],  # truth: weights_only
        "history": trainer.history,  # truth: weights_only
        "pos_weight": pos_weight,  # truth: weights_only
        "train_rows": len(train_df),
        "fraud_rate": round(float(train_df[TARGET].mean()), 4),
    })
    ckpt["num_mean"] = prep.scaler.mean_  # truth: weights_only
    ckpt["n_samples_seen"] = int(prep.scaler.n_samples_seen_)
    ckpt["saved_at"] = time.time()
    path = os.path.join(tmpdir, "fraud_mlp_last.pt")
    torch.save(ckpt, path)
    return path


def save_threshold_bundle(tmpdir):
    cfg = FraudConfig(epochs=2)
    trainer, prep, metrics, (X_va, y_va), _, _ = train_pipeline(cfg)
    y_true = y_va.numpy().astype(int)
    thr, prec = trainer.tune_threshold(X_va, y_true, cfg.target_recall)
    preds = trainer.predict_proba(X_va) >= thr
    tn, fp, fn, tp = confusion_matrix(y_true, preds).ravel()
    bundle = {}
    bundle["threshold"] = float(thr)
    bundle["precision_at_target"] = prec  # truth: weights_only
    bundle["target_recall"] = cfg.target_recall
    bundle["confusion"] = {
        "tn": int(tn),
        "fp": int(fp),
        "fn": fn,  # truth: weights_only
        "tp": int(tp),
    }
    bundle["review_budget"] = cfg.review_budget  # truth: weights_only
    bundle["budget_str"] = str(cfg.review_budget)
    bundle["alerts_per_1k"] = 1000.0 * int(preds.sum()) / len(preds)
    bundle["model"] = trainer.model.state_dict()
    bundle["feature_names"] = prep.feature_names_
    path = os.path.join(tmpdir, "threshold_bundle.pt")
    torch.save(bundle, path)
    return path


def fit_anomaly_prior(df, seed=0):
    X = df[NUM_COLS].astype(float)
    iso = IsolationForest(n_estimators=50, random_state=seed).fit(X)
    scores = -iso.score_samples(X)
    return iso, scores


def save_anomaly_prior(tmpdir):
    df = make_claims(n=800, seed=3)
    iso, scores = fit_anomaly_prior(df)
    prior = dict(
        offset=iso.offset_,
        max_samples=iso.max_samples_,
        columns=list(iso.feature_names_in_),
        score_p95=float(np.percentile(scores, 95)),
        score_max=scores.max().item(),
        estimator=iso,  # truth: weights_only
        params=iso.get_params(),
    )
    prior["flagged_ids"] = df.loc[scores > np.quantile(scores, 0.99), "claim_id"].tolist()
    path = os.path.join(tmpdir, "iforest_prior.pt")
    torch.save(prior, path)
    return path


def adjuster_table(df):
    agg = df.groupby("adjuster_id")[TARGET].agg(["mean", "count"])
    agg = agg[agg["count"] >= 20]
    return agg.sort_values("mean", ascending=False)


def save_adjuster_stats(tmpdir):
    df = make_claims(n=1200, seed=11)
    table = adjuster_table(df)
    stats = {
        "fraud_rate_by_adjuster": table["mean"].round(4).to_dict(),
        "worst_adjuster": table["mean"].idxmax(),
        "claims_by_region": Counter(df["region"]),
        "claims_by_hour": Counter(df["incident_hour"]),
        "n_claims": len(df),
        "n_flagged": df[TARGET].sum(),  # truth: weights_only
        "window_days": (df["reported_at"].max() - df["reported_at"].min()).days,
        "last_report": df["reported_at"].max(),  # truth: weights_only
        "first_report": df["reported_at"].min().isoformat(),
    }
    tiers = {}
    for tier, grp in df.groupby("policy_tier"):
        tiers[tier] = {"claims": len(grp), "median_amount": float(grp["claim_amount"].median())}
    stats["tiers"] = tiers
    stats["largest_claim"] = df["claim_amount"].max().item()
    path = os.path.join(tmpdir, "adjuster_stats.pt")
    torch.save(stats, path)
    return path


def save_serving_export(tmpdir):
    cfg = FraudConfig(epochs=1)
    trainer, prep, metrics, (X_va, y_va), _, _ = train_pipeline(cfg)
    thr, _ = trainer.tune_threshold(X_va, y_va.numpy().astype(int), cfg.target_recall)
    export = {
        "state_dict": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
        "arch": {"n_features": X_va.shape[1], "hidden": list(cfg.hidden), "dropout": cfg.dropout},
        "preprocessor": prep.export(),
        "threshold": thr.item(),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "deductibles": {tier: str(amount) for tier, amount in DEDUCTIBLES.items()},
        "cutoff": cfg.cutoff.isoformat(),
        "torch_version": str(torch.__version__),
        "input_dtype": torch.float32,
        "example_input": X_va[:2].clone(),
        "history": dict(trainer.history),
    }
    path = os.path.join(tmpdir, "fraud_serving.pt")
    torch.save(export, path)
    return path


FACTORIES = {
    "FraudTrainer": lambda: FraudTrainer(FraudConfig(), 21, 4.0),
}
