"""Subscription churn: tabular MLP over a pandas feature table.

Dataclass configs, sklearn preprocessing, a small helper module of feature
functions and a trainer that returns dicts and tuples.
"""
import dataclasses
import enum
import os
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.compose import ColumnTransformer
from sklearn.metrics import average_precision_score, brier_score_loss, precision_recall_curve, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["tenure_months", "monthly_fee", "logins_30d", "support_tickets", "days_since_last_login"]
CATEGORICAL = ["plan", "payment_method", "region"]


class Plan(enum.Enum):
    MONTHLY = "monthly"
    ANNUAL = "annual"
    FAMILY = "family"


@dataclass
class FeatureConfig:
    numeric: list = field(default_factory=lambda: list(NUMERIC))
    categorical: list = field(default_factory=lambda: list(CATEGORICAL))
    snapshot_date: str = "2024-06-30"
    churn_window_days: int = 30
    tenure_bins: int = 4


@dataclass
class TrainConfig:
    hidden: tuple = (64, 32)
    dropout: float = 0.2
    lr: float = 1e-3
    epochs: int = 3
    batch_size: int = 64
    seed: int = 7
    focus_plan: Plan = Plan.MONTHLY
    features: FeatureConfig = field(default_factory=FeatureConfig)


# ----------------------------------------------------------------- features

def synthetic_customers(n=400, seed=7):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "customer_id": [f"c{i:06d}" for i in range(n)],
        "tenure_months": rng.integers(1, 60, n),
        "monthly_fee": rng.choice([9.99, 14.99, 19.99, 29.99], n),
        "logins_30d": rng.poisson(8, n),
        "support_tickets": rng.poisson(0.6, n),
        "days_since_last_login": rng.integers(0, 45, n),
        "plan": rng.choice([p.value for p in Plan], n, p=[0.6, 0.3, 0.1]),
        "payment_method": rng.choice(["card", "paypal", "bank"], n),
        "region": rng.choice(["na", "eu", "apac"], n),
    })
    logit = -1.5 + 0.06 * df["days_since_last_login"] - 0.03 * df["tenure_months"] + 0.4 * df["support_tickets"]
    df["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


def add_engineered(df, cfg: FeatureConfig):
    out = df.copy()
    out["fee_per_login"] = out["monthly_fee"] / (out["logins_30d"] + 1)
    out["tenure_bucket"] = pd.qcut(out["tenure_months"], q=cfg.tenure_bins, labels=False, duplicates="drop")
    return out


def tenure_edges(df, cfg: FeatureConfig):
    return np.quantile(df["tenure_months"], np.linspace(0, 1, cfg.tenure_bins + 1))


def build_preprocessor(cfg: FeatureConfig):
    return ColumnTransformer([
        ("num", StandardScaler(), cfg.numeric + ["fee_per_login"]),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cfg.categorical),
    ])


# ----------------------------------------------------------------- model

class ChurnMLP(nn.Module):
    def __init__(self, n_features=20, hidden=(64, 32), dropout=0.2):
        super().__init__()
        layers, d = [], n_features
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(-1)


class ChurnTrainer:
    def __init__(self, cfg: TrainConfig = None, n_features=20, pos_weight=1.0):
        self.cfg = cfg or TrainConfig()
        torch.manual_seed(self.cfg.seed)
        self.model = ChurnMLP(n_features, self.cfg.hidden, self.cfg.dropout)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(pos_weight)))
        self.epoch_losses = []

    def fit(self, X, y):
        X_t = torch.as_tensor(X, dtype=torch.float32)
        y_t = torch.as_tensor(y, dtype=torch.float32)
        for _ in range(self.cfg.epochs):
            perm = torch.randperm(len(X_t))
            total = 0.0
            for i in range(0, len(X_t), self.cfg.batch_size):
                idx = perm[i:i + self.cfg.batch_size]
                loss = self.criterion(self.model(X_t[idx]), y_t[idx])
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                total += loss.item() * len(idx)
            self.epoch_losses.append(total / len(X_t))
        return self

    @torch.no_grad()
    def predict_proba(self, X):
        self.model.eval()
        return torch.sigmoid(self.model(torch.as_tensor(X, dtype=torch.float32))).numpy()

    def scores(self, X, y):
        p = self.predict_proba(X)
        prec, rec, thr = precision_recall_curve(y, p)
        f1 = 2 * prec * rec / np.clip(prec + rec, 1e-9, None)
        best = int(np.argmax(f1[:-1]))
        return (roc_auc_score(y, p), average_precision_score(y, p), brier_score_loss(y, p)), thr[best], f1[best]


def lift_at(y, p, frac=0.1):
    k = max(1, int(len(y) * frac))
    top = np.argsort(-p)[:k]
    return y[top].mean() / y.mean()


def run_pipeline(cfg: TrainConfig = None):
    cfg = cfg or TrainConfig()
    raw = synthetic_customers(seed=cfg.seed)
    df = add_engineered(raw, cfg.features)
    train_df, test_df = train_test_split(df, test_size=0.25, stratify=df["churned"], random_state=cfg.seed)
    pre = build_preprocessor(cfg.features).fit(train_df)
    X_tr, X_te = pre.transform(train_df), pre.transform(test_df)
    y_tr, y_te = train_df["churned"].to_numpy(), test_df["churned"].to_numpy()
    pos_weight = (y_tr == 0).sum() / max((y_tr == 1).sum(), 1)
    trainer = ChurnTrainer(cfg, X_tr.shape[1], pos_weight).fit(X_tr, y_tr)
    return cfg, df, pre, trainer, (X_te, y_te), pos_weight


# ----------------------------------------------------------------- checkpoints

def save_model_card(tmpdir):
    cfg, df, pre, trainer, (X_te, y_te), pos_weight = run_pipeline()
    (auc, ap, brier), threshold, best_f1 = trainer.scores(X_te, y_te)
    ckpt = {
        "model_state": trainer.model.state_dict(),
        "optim_state": trainer.optimizer.state_dict(),
        "config": {**dataclasses.asdict(cfg), "focus_plan": cfg.focus_plan.name},
        "metrics": {
            "roc_auc": auc,
            "pr_auc": ap,
            "brier": brier,
            "best_f1": float(best_f1),
            "lift@10": lift_at(y_te, trainer.predict_proba(X_te)),  # truth: weights_only
        },
        "decision_threshold": threshold,  # truth: weights_only
        "train_losses": trainer.epoch_losses,
    }
    path = os.path.join(tmpdir, "churn_card.pt")
    torch.save(ckpt, path)
    return path


def save_with_preprocessor(tmpdir):
    cfg, df, pre, trainer, _, pos_weight = run_pipeline()
    num = pre.named_transformers_["num"]
    cat = pre.named_transformers_["cat"]
    ckpt = {"model": trainer.model.state_dict()}
    ckpt["scaler"] = {
        "mean": torch.from_numpy(num.mean_).float(),
        "scale": num.scale_.tolist(),
        "columns": list(num.feature_names_in_),
    }
    ckpt["onehot_categories"] = cat.categories_  # truth: weights_only
    ckpt["onehot_categories_list"] = [c.tolist() for c in cat.categories_]
    ckpt["feature_names"] = pre.get_feature_names_out().tolist()
    ckpt["preprocessor"] = pre  # truth: weights_only
    ckpt["pos_weight"] = pos_weight  # truth: weights_only
    ckpt["pos_weight_t"] = torch.tensor(pos_weight, dtype=torch.float32)
    path = os.path.join(tmpdir, "churn_pre.pt")
    torch.save(ckpt, path)
    return path


def cohort_report(df):
    by_plan = df.groupby("plan")["churned"].agg(["mean", "count"])
    return {
        "base_rate": df["churned"].mean(),
        "plans": {str(k): {"rate": float(r["mean"]), "n": int(r["count"])} for k, r in by_plan.iterrows()},
        "median_tenure": df["tenure_months"].median(),
        "max_tickets": int(df["support_tickets"].max()),
    }


def save_cohort_snapshot(tmpdir):
    cfg, df, pre, trainer, _, pos_weight = run_pipeline()
    report = cohort_report(df)
    snapshot_date = pd.Timestamp(cfg.features.snapshot_date)
    ckpt = dict(
        model=trainer.model.state_dict(),
        base_rate=report["base_rate"],  # truth: weights_only
        plans=report["plans"],
        max_tickets=report["max_tickets"],
        snapshot=snapshot_date,  # truth: weights_only
        snapshot_iso=snapshot_date.isoformat(),
        window=pd.Timedelta(days=cfg.features.churn_window_days).total_seconds(),
        tenure_edges=[float(e) for e in tenure_edges(df, cfg.features)],
        tenure_edges_list=tenure_edges(df, cfg.features).round(2).tolist(),
        columns=df.columns,  # truth: weights_only
    )
    path = os.path.join(tmpdir, "cohort.pt")
    torch.save(ckpt, path)
    return path


def save_campaign_export(tmpdir):
    cfg, df, pre, trainer, (X_te, y_te), pos_weight = run_pipeline()
    p = trainer.predict_proba(X_te)
    at_risk = p > 0.5
    revenue = sum(Decimal(str(f)) for f in df["monthly_fee"].iloc[: int(at_risk.sum())])
    export = {
        "run_id": uuid.uuid4(),  # truth: weights_only
        "run_hex": uuid.uuid4().hex,
        "focus_plan": cfg.focus_plan,  # truth: weights_only
        "focus_plan_value": cfg.focus_plan.value,
        "n_at_risk": int(at_risk.sum()),
        "share_at_risk": float(at_risk.mean()),
        "revenue_at_risk": revenue,  # truth: weights_only
        "revenue_at_risk_str": str(revenue),
        "scores": torch.from_numpy(p),
    }
    path = os.path.join(tmpdir, "campaign.pt")
    torch.save(export, path)
    return path


def save_trainer_config(tmpdir):
    cfg, df, pre, trainer, _, pos_weight = run_pipeline()
    state = {"model": trainer.model.state_dict()}
    state.update({
        "train_config": cfg,  # truth: weights_only
        "feature_config": dataclasses.asdict(cfg.features),
        "hidden": list(cfg.hidden),
        "n_features": trainer.model.net[0].in_features,
        "criterion_pos_weight": trainer.criterion.pos_weight,
    })
    path = os.path.join(tmpdir, "trainer_cfg.pt")
    torch.save(state, path)
    return path


def save_portable(tmpdir):
    cfg, df, pre, trainer, (X_te, y_te), pos_weight = run_pipeline()
    (auc, ap, brier), threshold, best_f1 = trainer.scores(X_te, y_te)
    ckpt = {
        "model": trainer.model.state_dict(),
        "config": {**dataclasses.asdict(cfg), "focus_plan": cfg.focus_plan.value},
        "threshold": float(threshold),
        "best_f1": best_f1.item(),
        "auc": round(auc, 4),
        "base_rate": float(df["churned"].mean()),
        "plan_mix": df["plan"].value_counts(normalize=True).round(3).to_dict(),
        "fee_stats": df["monthly_fee"].describe().to_dict(),
        "n_customers": df["customer_id"].nunique(),
        "categorical": list(cfg.features.categorical),
    }
    path = os.path.join(tmpdir, "portable.pt")
    torch.save(ckpt, path)
    return path


FACTORIES = {
    "Plan": lambda: Plan.ANNUAL,
    "ChurnTrainer": lambda: ChurnTrainer(TrainConfig(epochs=1), n_features=12, pos_weight=2.5),
}
