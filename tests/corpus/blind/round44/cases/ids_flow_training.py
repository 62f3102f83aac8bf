"""Flow-based network intrusion detection (UNSW-NB15 / CIC-IDS2017 style flow tables).

    python train_ids.py --data flows.parquet --epochs 20 --fpr-budget 0.001 --out runs/ids

Categorical flow fields go through an OrdinalEncoder into embeddings, byte/packet counters are
clipped, log-scaled and standardised; the classifier predicts the attack family, the alert score
is 1 - P(Normal) and the alert threshold is chosen on validation flows for a false-positive budget.
"""
import argparse
import collections
import datetime
import ipaddress
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score, roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder, OrdinalEncoder, StandardScaler
from sklearn.utils.class_weight import compute_class_weight

CATEGORICAL = ["proto", "service", "conn_state"]
NUMERIC = ["dur", "sbytes", "dbytes", "spkts", "dpkts", "sttl", "dttl", "sload"]
LABEL = "attack_cat"
BENIGN = "Normal"
ATTACKS = ["DoS", "Exploits", "Reconnaissance", "Fuzzers", "Backdoor"]


def synth_flows(n=1500, seed=0):
    """A small synthetic stand-in for a flow export (one row per bidirectional flow)."""
    rng = np.random.default_rng(seed)
    is_attack = rng.random(n) < 0.15
    cat = np.where(is_attack, rng.choice(ATTACKS, n, p=[0.35, 0.3, 0.2, 0.1, 0.05]), BENIGN)
    spkts = rng.poisson(np.where(is_attack, 40, 8)) + 1
    dpkts = rng.poisson(np.where(is_attack, 2, 7))
    dur = rng.exponential(np.where(is_attack, 0.05, 1.2))
    return pd.DataFrame({
        "proto": rng.choice(["tcp", "udp", "icmp", "arp"], n, p=[0.6, 0.3, 0.07, 0.03]),
        "service": rng.choice(["-", "http", "dns", "ftp", "smtp", "ssh"], n),
        "conn_state": np.where(is_attack, rng.choice(["INT", "REQ", "RST"], n), rng.choice(["FIN", "CON"], n)),
        "dur": dur,
        "sbytes": spkts * rng.integers(40, 1500, n),
        "dbytes": dpkts * rng.integers(40, 1500, n),
        "spkts": spkts,
        "dpkts": dpkts,
        "sttl": np.where(is_attack, 254, rng.choice([31, 62, 64], n)),
        "dttl": rng.choice([0, 29, 252], n),
        "sload": spkts * 8.0 / (dur + 1e-3),
        "dst_ip": [f"10.0.{rng.integers(0, 4)}.{rng.integers(1, 255)}" for _ in range(n)],
        "dst_port": rng.choice([22, 53, 80, 123, 443, 8080], n),
        LABEL: cat,
    })


def build_parser():
    p = argparse.ArgumentParser(description="train a flow classifier for intrusion detection")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("runs/ids"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 64])
    p.add_argument("--emb-dim", type=int, default=8)
    p.add_argument("--focal-gamma", type=float, default=2.0)
    p.add_argument("--fpr-budget", type=float, default=0.01)
    p.add_argument("--val-frac", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv)


class FlowPreprocessor:
    """Ordinal codes for categorical fields (0 = unseen), clip + log1p + z-score for counters."""

    def __init__(self, categorical=tuple(CATEGORICAL), numeric=tuple(NUMERIC), clip_quantile=0.999):
        self.categorical = list(categorical)
        self.numeric = list(numeric)
        self.clip_quantile = clip_quantile
        self.encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        self.scaler = StandardScaler()
        self.clip_ = {}

    def fit(self, df):
        self.encoder.fit(df[self.categorical])
        self.clip_ = df[self.numeric].quantile(self.clip_quantile).to_dict()
        self.scaler.fit(self._numeric(df))
        return self

    def _numeric(self, df):
        clipped = df[self.numeric].clip(upper=pd.Series(self.clip_), axis=1)
        return np.log1p(clipped.to_numpy(dtype=np.float64))

    def transform(self, df):
        cats = self.encoder.transform(df[self.categorical]) + 1
        nums = self.scaler.transform(self._numeric(df))
        return torch.as_tensor(cats, dtype=torch.long), torch.as_tensor(nums, dtype=torch.float32)

    @property
    def cardinalities(self):
        return [len(c) + 1 for c in self.encoder.categories_]

    def state(self):
        return {
            "categories": {col: cats.tolist() for col, cats in zip(self.categorical, self.encoder.categories_)},
            "mean": self.scaler.mean_.tolist(),
            "scale": self.scaler.scale_.tolist(),
            "clip": dict(self.clip_),
        }


class FlowMLP(nn.Module):
    def __init__(self, cardinalities=(5, 7, 6), num_numeric=len(NUMERIC), num_classes=6, hidden=(128, 64),
                 emb_dim=8, dropout=0.1):
        super().__init__()
        self.embs = nn.ModuleList(nn.Embedding(c, min(emb_dim, c)) for c in cardinalities)
        width = sum(e.embedding_dim for e in self.embs) + num_numeric
        layers = []
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, cats, nums):
        x = torch.cat([emb(cats[:, i]) for i, emb in enumerate(self.embs)] + [nums], dim=1)
        return self.head(self.body(x))


class FocalLoss(nn.Module):
    def __init__(self, alpha=None, gamma=2.0):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("alpha", alpha if alpha is not None else torch.ones(1))

    def forward(self, logits, target):
        logp = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        w = self.alpha[target] if self.alpha.numel() > 1 else 1.0
        return (-w * (1 - logp.exp()) ** self.gamma * logp).mean()


@dataclass
class SensorBundle:
    """What the capture sensor loads: weights, feature spec and the alert threshold."""
    model_state: dict = field(default_factory=dict)
    feature_spec: dict = field(default_factory=dict)
    labels: list = field(default_factory=list)
    threshold: float = 0.5
    exported_at: str = ""


class StreamingDetector:
    """Scores flows online and keeps a short window of recent scores for drift alarms."""

    def __init__(self, threshold=0.5, window=256, home_net="10.0.0.0/16", alpha=0.05):
        self.threshold = threshold
        self.recent = collections.deque(maxlen=window)
        self.home_net = ipaddress.ip_network(home_net)
        self.suppressed_ports = frozenset({53, 123, 5353})
        self.alpha = alpha
        self.ewma = 0.0
        self.n_alerts = 0
        self.last_alert = None

    def observe(self, scores, dst_ips, dst_ports):
        for s, ip, port in zip(scores, dst_ips, dst_ports):
            self.ewma = (1 - self.alpha) * self.ewma + self.alpha * s
            self.recent.append(float(s))
            if s > self.threshold and port not in self.suppressed_ports \
                    and ipaddress.ip_address(ip) in self.home_net:
                self.n_alerts += 1
                self.last_alert = datetime.datetime.now(datetime.timezone.utc)


def split_flows(df, val_frac, seed):
    return train_test_split(df, test_size=val_frac, stratify=df[LABEL], random_state=seed)


def train_one_epoch(model, loss_fn, opt, cats, nums, y, batch_size):
    model.train()
    perm = torch.randperm(len(y))
    losses = []
    for i in range(0, len(y), batch_size):
        idx = perm[i:i + batch_size]
        if len(idx) < 2:
            continue
        loss = loss_fn(model(cats[idx], nums[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.mean(losses)


@torch.no_grad()
def predict_proba(model, cats, nums):
    model.eval()
    return F.softmax(model(cats, nums), dim=1).numpy()


def evaluate(y_true, proba, benign_idx):
    is_attack = (y_true != benign_idx).astype(int)
    score = 1.0 - proba[:, benign_idx]
    return {
        "auc": roc_auc_score(is_attack, score),
        "ap": average_precision_score(is_attack, score),
        "f1_macro": f1_score(y_true, proba.argmax(1), average="macro"),
        "is_attack": is_attack,
        "score": score,
    }


def pick_threshold(is_attack, score, fpr_budget):
    fpr, tpr, thr = roc_curve(is_attack, score)
    i = max(int(np.searchsorted(fpr, fpr_budget, side="right")) - 1, 1)
    return thr[i], tpr[i]


def alert_stats(is_attack, score, threshold):
    tn, fp, fn, tp = confusion_matrix(is_attack, score >= threshold, labels=[0, 1]).ravel()
    return {"fpr": fp / max(fp + tn, 1), "recall": tp / max(tp + fn, 1), "fp": int(fp), "tp": int(tp)}


def fit(args, df):
    torch.manual_seed(args.seed)
    train_df, val_df = split_flows(df, args.val_frac, args.seed)
    pre = FlowPreprocessor().fit(train_df)
    le = LabelEncoder().fit(df[LABEL])
    y_tr = le.transform(train_df[LABEL])
    y_va = le.transform(val_df[LABEL])
    weights = compute_class_weight("balanced", classes=np.arange(len(le.classes_)), y=y_tr)
    model = FlowMLP(pre.cardinalities, len(NUMERIC), len(le.classes_), tuple(args.hidden), args.emb_dim)
    loss_fn = FocalLoss(torch.tensor(weights, dtype=torch.float32), gamma=args.focal_gamma)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", patience=2)
    cats, nums = pre.transform(train_df)
    vcats, vnums = pre.transform(val_df)
    history = []
    for epoch in range(args.epochs):
        loss = train_one_epoch(model, loss_fn, opt, cats, nums, torch.as_tensor(y_tr), args.batch_size)
        sched.step(loss)
        val = evaluate(y_va, predict_proba(model, vcats, vnums), int(le.transform([BENIGN])[0]))
        history.append({"epoch": epoch, "loss": float(loss), "auc": val["auc"], "ap": val["ap"]})
    return {"model": model, "opt": opt, "sched": sched, "pre": pre, "le": le, "weights": weights,
            "history": history, "val": val, "epoch": epoch, "loss": loss, "y_val": y_va, "val_df": val_df}


def save_training_checkpoint(tmpdir):
    args = parse_args(["--data", "flows.parquet", "--epochs", "2", "--out", tmpdir])
    run = fit(args, synth_flows(seed=args.seed))
    hparams = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    ckpt = {
        "epoch": run["epoch"],
        "model_state": run["model"].state_dict(),
        "optimizer_state": run["opt"].state_dict(),
        "scheduler_state": run["sched"].state_dict(),
        "hparams": hparams,
        "args": args,  # truth: weights_only
        "label_classes": run["le"].classes_,  # truth: weights_only
        "num_classes": len(run["le"].classes_),
        "class_weights": torch.tensor(run["weights"], dtype=torch.float32),
        "train_loss": run["history"][-1]["loss"],
        "val_auc": run["val"]["auc"],
        "val_ap": run["val"]["ap"],
        "val_f1_macro": run["val"]["f1_macro"],
    }
    path = os.path.join(tmpdir, "last.ckpt")
    torch.save(ckpt, path)
    return path


def save_preprocessing_bundle(tmpdir):
    df = synth_flows(seed=1)
    pre = FlowPreprocessor().fit(df)
    bundle = {"format": "ids-prep/3", "created": time.time(), **pre.state()}
    bundle["scaler"] = pre.scaler  # truth: weights_only
    bundle["cardinalities"] = pre.cardinalities
    bundle["numeric_columns"] = pre.numeric
    bundle["column_dtypes"] = df.dtypes.astype(str).to_dict()
    bundle["label_counts"] = df[LABEL].value_counts().to_dict()
    bundle["numeric_medians"] = df[NUMERIC].median().to_dict()
    bundle["protocols_seen"] = df["proto"].unique()  # truth: weights_only
    bundle["services_seen"] = sorted(df["service"].unique())
    bundle["n_rows"] = len(df)
    path = os.path.join(tmpdir, "preprocessing.pt")
    torch.save(bundle, path)
    return path


def save_operating_point(tmpdir):
    args = parse_args(["--data", "flows.parquet", "--epochs", "2", "--fpr-budget", "0.02"])
    run = fit(args, synth_flows(seed=2))
    val = run["val"]
    thr, tpr = pick_threshold(val["is_attack"], val["score"], args.fpr_budget)
    stats = alert_stats(val["is_attack"], val["score"], thr)
    per_family = {}
    families = run["val_df"][LABEL].to_numpy()
    for name in run["le"].classes_:
        if name == BENIGN:
            continue
        mask = families == name
        per_family[name] = {"recall": float((val["score"][mask] >= thr).mean()) if mask.any() else 0.0,
                            "n": int(mask.sum())}
    ckpt = {
        "model_state": run["model"].state_dict(),
        "threshold": thr,  # truth: weights_only
        "threshold_tpr": float(tpr),
        "fpr_budget": args.fpr_budget,
        "observed_fpr": stats["fpr"],  # truth: weights_only
        "false_alarms": stats["fp"],
        "true_alerts": stats["tp"],
        "per_family": per_family,
        "val_support": collections.Counter(run["y_val"]),  # truth: weights_only
    }
    path = os.path.join(tmpdir, "operating_point.pt")
    torch.save(ckpt, path)
    return path


def save_sensor_export(tmpdir):
    args = parse_args(["--data", "flows.parquet", "--epochs", "1"])
    run = fit(args, synth_flows(seed=3))
    thr, _ = pick_threshold(run["val"]["is_attack"], run["val"]["score"], args.fpr_budget)
    bundle = SensorBundle(
        model_state=run["model"].state_dict(),
        feature_spec=run["pre"].state(),
        labels=run["le"].classes_.tolist(),
        threshold=float(thr),
        exported_at=datetime.datetime.now().isoformat(timespec="seconds"),
    )
    path = os.path.join(tmpdir, "sensor.pt")
    torch.save(bundle, path)  # truth: weights_only
    return path


def save_stream_state(tmpdir):
    df = synth_flows(n=600, seed=4)
    scores = np.random.default_rng(4).beta(0.5, 4.0, len(df))
    det = StreamingDetector(threshold=0.4, window=128)
    det.observe(scores, df["dst_ip"], df["dst_port"])
    state = {
        "detector": {
            "threshold": det.threshold,
            "ewma_score": det.ewma,  # truth: weights_only
            "recent_scores": det.recent,  # truth: weights_only
            "home_net": det.home_net,  # truth: weights_only
            "home_net_cidr": str(det.home_net),
            "suppressed_ports": sorted(det.suppressed_ports),
            "alerts": det.n_alerts,
            "last_alert": det.last_alert.isoformat() if det.last_alert else None,
        },
        "flows_seen": len(df),
        "watched_ports": set(df["dst_port"].tolist()),
    }
    path = os.path.join(tmpdir, "stream_state.pt")
    torch.save(state, path)
    return path


def save_finetune_checkpoint(tmpdir):
    args = parse_args(["--data", "flows.parquet", "--epochs", "3", "--out", os.path.join(tmpdir, "ft")])
    run = fit(args, synth_flows(seed=5))
    aucs = np.array([h["auc"] for h in run["history"]])
    best_epoch = np.argmax(aucs)
    thr, _ = pick_threshold(run["val"]["is_attack"], run["val"]["score"], args.fpr_budget)
    stats = alert_stats(run["val"]["is_attack"], run["val"]["score"], thr)
    sensor = SensorBundle(labels=run["le"].classes_.tolist(), threshold=float(thr))
    ckpt = {
        "model_state": run["model"].state_dict(),
        "optimizer_state": run["opt"].state_dict(),
        "scheduler_state": run["sched"].state_dict(),
        "epoch": int(best_epoch),
        "best_val_ap": max(h["ap"] for h in run["history"]),
        "mean_loss": float(np.mean([h["loss"] for h in run["history"]])),
        "is_best": bool(aucs[-1] >= aucs.max()),
        "threshold": float(thr),
        "log10_fpr": math.log10(stats["fpr"] + 1e-12),
        "labels": run["le"].classes_.tolist(),
        "class_weights": torch.from_numpy(run["weights"]).float(),
        "support": collections.Counter(run["y_val"].tolist()),
        "sensor": asdict(sensor),
        "out_dir": str(args.out),
        "torch_version": str(torch.__version__),
        "n_flows": len(run["val_df"]),
        "rng_state": torch.get_rng_state(),
        "confusion": confusion_matrix(run["val"]["is_attack"], run["val"]["score"] >= thr).tolist(),
    }
    path = os.path.join(tmpdir, "finetune.ckpt")
    torch.save(ckpt, path)
    return path
