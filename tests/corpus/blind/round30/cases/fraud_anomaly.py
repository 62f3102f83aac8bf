"""Card-transaction fraud and log anomaly detection.

A dense autoencoder is trained on legitimate transactions only; its reconstruction error is the
anomaly score and the alert threshold is a percentile of the scores on normal traffic. An
IsolationForest is kept as the baseline. A second, tiny pipeline counts log templates per window.
"""
import argparse
import dataclasses
import enum
import os
import re
import time
from collections import Counter

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

NUMERIC = ["amount", "log_amount", "hour", "tx_per_account", "merchant_risk"]
MERCHANTS = ["grocery", "fuel", "online", "travel", "atm"]
LOG_TEMPLATE = re.compile(r"^(?P<level>[A-Z]+) (?P<component>[\w.]+): (?P<msg>.*?)(?: id=\d+)?$")


class ThresholdPolicy(enum.Enum):
    PERCENTILE = "percentile"
    FIXED_FPR = "fixed_fpr"


@dataclasses.dataclass
class DetectorConfig:
    epochs: int = 6
    lr: float = 1e-2
    batch_size: int = 64
    bottleneck: int = 3
    threshold_pct: float = 99.0
    policy: ThresholdPolicy = ThresholdPolicy.PERCENTILE
    contamination: float = 0.03
    k: int = 10


def make_transactions(n=400, fraud_rate=0.04, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "tx_id": np.arange(n),
            "ts": pd.Timestamp("2024-03-01") + pd.to_timedelta(rng.integers(0, 7 * 24 * 3600, n), unit="s"),
            "account": rng.integers(0, 40, n),
            "merchant": rng.choice(MERCHANTS, n),
            "amount": rng.lognormal(3.0, 1.0, n).round(2),
            "is_fraud": (rng.uniform(size=n) < fraud_rate).astype(int),
        }
    )
    df.loc[df["is_fraud"] == 1, "amount"] *= 8
    return df


def build_features(df):
    out = (
        df.sort_values("ts")
        .assign(log_amount=lambda d: np.log1p(d["amount"]), hour=lambda d: d["ts"].dt.hour)
        .reset_index(drop=True)
    )
    out["tx_per_account"] = out.groupby("account")["tx_id"].transform("count")
    risk = out.groupby("merchant")["is_fraud"].mean()
    out["merchant_risk"] = out["merchant"].map(risk)
    return out, risk


class TxAutoencoder(nn.Module):
    def __init__(self, n_features=len(NUMERIC), bottleneck=3):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_features, 8), nn.Tanh(), nn.Linear(8, bottleneck))
        self.decoder = nn.Sequential(nn.Linear(bottleneck, 8), nn.Tanh(), nn.Linear(8, n_features))

    def forward(self, x):
        return self.decoder(self.encoder(x))


class EarlyStopper:
    def __init__(self, patience=3, min_delta=1e-4):
        self.patience = patience
        self.min_delta = min_delta
        self.best = float("inf")
        self.bad_epochs = 0

    def step(self, value):
        if value < self.best - self.min_delta:
            self.best = value
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience


def precision_at_k(scores, labels, k):
    top = np.argsort(-scores)[:k]
    return labels[top].mean()


def recall_at_threshold(scores, labels, threshold):
    flagged = scores > threshold
    return flagged[labels == 1].sum() / max(int(labels.sum()), 1)


def evaluate_scores(scores, labels, threshold, k):
    labels = np.asarray(labels)
    return {
        "roc_auc": roc_auc_score(labels, scores),
        "avg_precision": average_precision_score(labels, scores),
        "p_at_k": precision_at_k(scores, labels, k),
        "recall": recall_at_threshold(scores, labels, threshold),
        "n_alerts": int((scores > threshold).sum()),
    }


def fit_isolation_forest(frame, contamination, seed=0):
    iso = IsolationForest(n_estimators=25, contamination=contamination, random_state=seed)
    iso.fit(frame[NUMERIC])
    return iso, -iso.score_samples(frame[NUMERIC])


class AnomalyTrainer:
    def __init__(self, cfg=None, df=None, seed=0):
        self.cfg = cfg or DetectorConfig()
        torch.manual_seed(seed)
        raw = make_transactions(seed=seed) if df is None else df
        self.frame, self.merchant_risk = build_features(raw)
        self.normal = self.frame[self.frame["is_fraud"] == 0]
        self.scaler = StandardScaler().fit(self.normal[NUMERIC])
        self.model = TxAutoencoder(bottleneck=self.cfg.bottleneck)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.stopper = EarlyStopper()
        self.epoch_losses = []
        self.threshold = None

    def _tensor(self, frame):
        return torch.from_numpy(self.scaler.transform(frame[NUMERIC]).astype(np.float32))

    def fit(self):
        x = self._tensor(self.normal)
        bs = self.cfg.batch_size
        for _ in range(self.cfg.epochs):
            self.model.train()
            perm = torch.randperm(len(x))
            total = 0.0
            for i in range(0, len(x), bs):
                xb = x[perm[i : i + bs]]
                loss = F.mse_loss(self.model(xb), xb)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                total += loss.item() * len(xb)
            self.epoch_losses.append(total / len(x))
            if self.stopper.step(self.epoch_losses[-1]):
                break
        self.threshold = self.calibrate()
        return self

    def scores(self, frame=None):
        frame = self.frame if frame is None else frame
        x = self._tensor(frame)
        self.model.eval()
        with torch.no_grad():
            err = ((self.model(x) - x) ** 2).mean(dim=1)
        return err.numpy()

    def calibrate(self):
        return np.percentile(self.scores(self.normal), self.cfg.threshold_pct)

    def report(self):
        s = self.scores()
        return evaluate_scores(s, self.frame["is_fraud"].to_numpy(), self.threshold, self.cfg.k)


class LogTemplateCounter:
    """Drain-lite: strip ids, count templates per fixed window of lines."""

    def __init__(self, window=4):
        self.window = window
        self.vocab = {}
        self.counts = []

    def fit(self, lines):
        rows = []
        for i in range(0, len(lines), self.window):
            c = Counter()
            for line in lines[i : i + self.window]:
                m = LOG_TEMPLATE.match(line)
                key = f"{m['component']}:{m['msg']}" if m else "<unparsed>"
                self.vocab.setdefault(key, len(self.vocab))
                c[self.vocab[key]] += 1
            rows.append(c)
        self.counts = rows
        return self

    def matrix(self):
        out = np.zeros((len(self.counts), len(self.vocab)), dtype=np.int64)
        for r, c in enumerate(self.counts):
            for j, n in c.items():
                out[r, j] = n
        return out


LOG_LINES = [
    "INFO dfs.DataNode: Receiving block id=1",
    "INFO dfs.DataNode: Receiving block id=2",
    "WARN dfs.FSNamesystem: Redundant addStoredBlock request id=7",
    "INFO dfs.DataNode: PacketResponder terminating id=3",
    "ERROR dfs.DataNode: Exception in receiveBlock id=9",
    "INFO dfs.DataNode: Receiving block id=4",
    "INFO dfs.DataNode: PacketResponder terminating id=5",
    "garbage line",
]

FACTORIES = {
    "ThresholdPolicy": lambda: ThresholdPolicy.PERCENTILE,
    "AnomalyTrainer": lambda: AnomalyTrainer(DetectorConfig(epochs=1)),
}


def save_autoencoder_checkpoint(tmpdir):
    trainer = AnomalyTrainer().fit()
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "epoch_losses": trainer.epoch_losses,
        "threshold": trainer.threshold,  # truth: weights_only
        "threshold_policy": trainer.cfg.policy.name,
        "scaler_mean": trainer.scaler.mean_.astype(np.float32).tolist(),
        "scaler_scale": trainer.scaler.scale_.tolist(),
        "feature_columns": trainer.normal[NUMERIC].columns,  # truth: weights_only
        "early_stopping": vars(trainer.stopper),
        "config": {**dataclasses.asdict(trainer.cfg), "policy": trainer.cfg.policy.value},
    }
    path = os.path.join(tmpdir, "ae_fraud.pt")
    torch.save(ckpt, path)
    return path


def save_isolation_forest_baseline(tmpdir):
    cfg = DetectorConfig()
    trainer = AnomalyTrainer(cfg)
    iso, scores = fit_isolation_forest(trainer.normal, cfg.contamination)
    iso_auto, _ = fit_isolation_forest(trainer.normal, "auto")
    path = os.path.join(tmpdir, "iforest_baseline.pt")
    torch.save(
        {
            "estimator": iso,  # truth: weights_only
            "offset": iso.offset_,  # truth: weights_only
            "contamination": iso.contamination,
            "offset_auto": iso_auto.offset_,
            "params": iso.get_params(),
            "max_samples": iso.max_samples_,
            "n_estimators": len(iso.estimators_),
            "score_threshold": float(np.quantile(scores, 1 - cfg.contamination)),
            "feature_names": iso.feature_names_in_.tolist(),
        },
        path,
    )
    return path


def save_alerting_report(tmpdir):
    trainer = AnomalyTrainer(DetectorConfig(epochs=3)).fit()
    metrics = trainer.report()
    frame = trainer.frame
    s = trainer.scores()
    report = dict(
        roc_auc=metrics["roc_auc"],
        avg_precision=metrics["avg_precision"],
        precision_at_k=metrics["p_at_k"],  # truth: weights_only
        recall=float(metrics["recall"]),
        n_alerts=metrics["n_alerts"],
        fraud_rate=float(frame["is_fraud"].mean()),
        n_fraud=int(frame["is_fraud"].sum()),
        top_k_tx=frame.loc[np.argsort(-s)[: trainer.cfg.k], "tx_id"].tolist(),
        k=trainer.cfg.k,
    )
    path = os.path.join(tmpdir, "alert_report.pt")
    torch.save(report, path)
    return path


def save_feature_store_snapshot(tmpdir):
    trainer = AnomalyTrainer(DetectorConfig(epochs=1))
    frame = trainer.frame
    snapshot = {
        "scaler": {
            "mean": trainer.scaler.mean_.tolist(),
            "var": trainer.scaler.var_.tolist(),
            "n_samples_seen": trainer.scaler.n_samples_seen_,  # truth: weights_only
            "n_features_in": trainer.scaler.n_features_in_,
        }
    }
    snapshot["merchant_risk"] = trainer.merchant_risk  # truth: weights_only
    snapshot["merchant_risk_map"] = trainer.merchant_risk.to_dict()
    snapshot["amount_quantiles"] = frame["amount"].quantile([0.5, 0.9, 0.99]).to_dict()
    snapshot["n_accounts"] = frame["account"].nunique()
    snapshot["tx_per_hour"] = Counter(frame["hour"])
    snapshot["tx_per_hour_np"] = Counter(frame["hour"].to_numpy())  # truth: weights_only
    snapshot["last_seen"] = frame["ts"].max()  # truth: weights_only
    snapshot["last_seen_iso"] = frame["ts"].max().isoformat()
    snapshot["merchants"] = sorted(frame["merchant"].unique().tolist())
    path = os.path.join(tmpdir, "feature_snapshot.pt")
    torch.save(snapshot, path)
    return path


def save_log_anomaly_state(tmpdir):
    counter = LogTemplateCounter(window=4).fit(LOG_LINES)
    counts = counter.matrix()
    path = os.path.join(tmpdir, "log_templates.pt")
    torch.save(
        {
            "template_regex": LOG_TEMPLATE,  # truth: weights_only
            "template_pattern": LOG_TEMPLATE.pattern,
            "vocab": counter.vocab,
            "window": counter.window,
            "window_counts": torch.from_numpy(counts),
            "template_totals": Counter(counts.sum(axis=0).tolist()),
            "rare_templates": [k for k, j in counter.vocab.items() if counts[:, j].sum() == 1],
        },
        path,
    )
    return path


def save_clean_resume(tmpdir):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threshold-pct", type=float, default=99.5)
    args = parser.parse_args([])
    trainer = AnomalyTrainer(DetectorConfig(epochs=args.epochs, threshold_pct=args.threshold_pct))
    cyclic = torch.optim.lr_scheduler.CyclicLR(trainer.optimizer, base_lr=1e-3, max_lr=1e-2, step_size_up=4)
    trainer.fit()
    cyclic.step()
    scores = trainer.scores()
    ckpt = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "lr_scheduler": cyclic.state_dict(),
        "threshold": float(trainer.threshold),
        "threshold_pct": trainer.cfg.threshold_pct,
        "policy": trainer.cfg.policy.value,
        "args": vars(args),
        "scaler_mean": torch.from_numpy(trainer.scaler.mean_),
        "scores_p50": np.median(scores).item(),
        "n_alerts": int((scores > trainer.threshold).sum()),
        "best_loss": trainer.stopper.best,
        "columns": list(NUMERIC),
        "saved_at": time.time(),
    }
    path = os.path.join(tmpdir, "resume.pt")
    torch.save(ckpt, path)
    return path
