"""Credit-card default scoring: embeddings for the categorical fields plus a small MLP.

The data follows the layout of the UCI "default of credit card clients" table (LIMIT_BAL, SEX,
EDUCATION, MARRIAGE, AGE, PAY_0..PAY_6 repayment status, BILL_AMT1..6, PAY_AMT1..6) with the target
"default.payment.next.month".  Configuration lives in dataclasses; training goes through
`CreditTrainer`, whose helper methods return plain tuples and dicts that the export functions below
assemble into checkpoints for the scoring service, the model-risk review and the drift monitor.
"""
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from enum import Enum

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

TARGET = "default.payment.next.month"
PAY_COLS = ["PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"]
BILL_COLS = [f"BILL_AMT{i}" for i in range(1, 7)]
PAYAMT_COLS = [f"PAY_AMT{i}" for i in range(1, 7)]


@dataclass
class FeatureConfig:
    numeric: list = field(default_factory=lambda: ["LIMIT_BAL", "AGE", *BILL_COLS, *PAYAMT_COLS])
    categorical: list = field(default_factory=lambda: ["SEX", "EDUCATION", "MARRIAGE", *PAY_COLS])
    target: str = TARGET
    log_amounts: bool = True


@dataclass
class TrainConfig:
    hidden: tuple = (64, 32)
    emb_dim: int = 4
    dropout: float = 0.1
    lr: float = 3e-3
    weight_decay: float = 1e-5
    epochs: int = 3
    batch_size: int = 128
    seed: int = 7
    balance: str = "pos_weight"


class RiskBand(Enum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"


BAND_CUTOFFS = {RiskBand.A: 0.05, RiskBand.B: 0.15, RiskBand.C: 0.35, RiskBand.D: 1.0}


def make_frame(n=800, seed=0):
    """Synthetic stand-in for the 30 000-row UCI table (same columns, plausible ranges)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "LIMIT_BAL": rng.choice([10_000, 50_000, 120_000, 200_000, 500_000], n),
        "SEX": rng.integers(1, 3, n),
        "EDUCATION": rng.choice([1, 2, 3, 4], n, p=[0.35, 0.45, 0.15, 0.05]),
        "MARRIAGE": rng.integers(1, 4, n),
        "AGE": rng.integers(21, 75, n),
    })
    for c in PAY_COLS:
        df[c] = rng.choice([-1, 0, 1, 2, 3], n, p=[0.2, 0.5, 0.15, 0.1, 0.05])
    for c in BILL_COLS:
        df[c] = (df["LIMIT_BAL"] * rng.uniform(0.0, 0.9, n)).round(0)
    for c in PAYAMT_COLS:
        df[c] = (df["BILL_AMT1"] * rng.uniform(0.0, 0.3, n)).round(0)
    logit = -2.0 + 0.8 * df["PAY_0"].clip(lower=0) - df["LIMIT_BAL"] / 400_000 + rng.normal(0, 0.5, n)
    df[TARGET] = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


class Preprocessor:
    def __init__(self, cfg=None):
        self.cfg = cfg or FeatureConfig()
        self.scaler = StandardScaler()
        self.vocab = {}

    def _numeric(self, df):
        num = df[self.cfg.numeric].astype("float64")
        if self.cfg.log_amounts:
            amounts = [c for c in num.columns if c != "AGE"]
            num[amounts] = np.sign(num[amounts]) * np.log1p(num[amounts].abs())
        return num.to_numpy()

    def fit(self, df):
        self.scaler.fit(self._numeric(df))
        for c in self.cfg.categorical:
            values = sorted(df[c].unique().tolist())
            self.vocab[c] = {v: i + 1 for i, v in enumerate(values)}  # 0 = unseen level
        return self

    def transform(self, df):
        x_num = torch.tensor(self.scaler.transform(self._numeric(df)), dtype=torch.float32)
        codes = [df[c].map(self.vocab[c]).fillna(0).astype("int64").to_numpy() for c in self.cfg.categorical]
        return x_num, torch.from_numpy(np.stack(codes, axis=1))

    def cardinalities(self):
        return [len(v) + 1 for v in self.vocab.values()]

    def state(self):
        return {"mean": self.scaler.mean_.tolist(), "scale": self.scaler.scale_.tolist(),
                "vocab": self.vocab, "numeric": list(self.cfg.numeric), "categorical": list(self.cfg.categorical)}


class ScoringMLP(nn.Module):
    def __init__(self, n_numeric=14, cardinalities=None, emb_dim=4, hidden=(64, 32), dropout=0.1):
        super().__init__()
        cardinalities = cardinalities or [3, 5, 4] + [6] * len(PAY_COLS)
        self.embeddings = nn.ModuleList(nn.Embedding(c, emb_dim) for c in cardinalities)
        layers, width = [], n_numeric + emb_dim * len(cardinalities)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, x_num, x_cat):
        embs = [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.mlp(torch.cat([x_num, *embs], dim=1)).squeeze(1)


class CreditTrainer:
    def __init__(self, model, cfg, pos_weight=1.0):
        self.model = model
        self.cfg = cfg
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))
        self.epoch = 0
        self.history = []

    def fit(self, x_num, x_cat, y):
        y = torch.as_tensor(y, dtype=torch.float32)
        gen = torch.Generator().manual_seed(self.cfg.seed)
        for _ in range(self.cfg.epochs):
            self.model.train()
            order = torch.randperm(len(y), generator=gen)
            total = 0.0
            for start in range(0, len(y), self.cfg.batch_size):
                idx = order[start:start + self.cfg.batch_size]
                loss = self.loss_fn(self.model(x_num[idx], x_cat[idx]), y[idx])
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
                total += loss.item() * len(idx)
            self.epoch += 1
            self.history.append({"epoch": self.epoch, "loss": total / len(y)})
        return self

    @torch.no_grad()
    def predict_proba(self, x_num, x_cat):
        self.model.eval()
        return torch.sigmoid(self.model(x_num, x_cat)).double().numpy()

    def evaluate(self, x_num, x_cat, y):
        p = self.predict_proba(x_num, x_cat)
        auc = roc_auc_score(y, p)
        ks = stats.ks_2samp(p[y == 1], p[y == 0]).statistic
        return auc, ks, 2.0 * auc - 1.0, brier_score_loss(y, p)

    def pick_threshold(self, x_num, x_cat, y):
        """Youden's J on the validation ROC curve."""
        fpr, tpr, thr = roc_curve(y, self.predict_proba(x_num, x_cat))
        j = tpr - fpr
        best = int(np.argmax(j[1:])) + 1
        return thr[best], float(j[best])

    def checkpoint_state(self):
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "epoch": self.epoch, "history": list(self.history)}


def split_frame(df, seed):
    return train_test_split(df, test_size=0.25, stratify=df[TARGET], random_state=seed)


def build_trainer(cfg, feat_cfg, train_df):
    pre = Preprocessor(feat_cfg).fit(train_df)
    neg, pos = np.bincount(train_df[TARGET].to_numpy(), minlength=2)
    pos_weight = float(neg / max(pos, 1)) if cfg.balance == "pos_weight" else 1.0
    model = ScoringMLP(len(feat_cfg.numeric), pre.cardinalities(), cfg.emb_dim, cfg.hidden, cfg.dropout)
    return pre, CreditTrainer(model, cfg, pos_weight)


def assign_band(p):
    for band, upper in BAND_CUTOFFS.items():
        if p <= upper:
            return band
    return RiskBand.D


# ------------------------------------------------------------------ exports

def save_scorecard(tmpdir):
    feat_cfg, cfg = FeatureConfig(), TrainConfig(epochs=2)
    train, valid = split_frame(make_frame(800, cfg.seed), cfg.seed)
    pre, trainer = build_trainer(cfg, feat_cfg, train)
    trainer.fit(*pre.transform(train), train[TARGET].to_numpy())
    auc, ks, gini, brier = trainer.evaluate(*pre.transform(valid), valid[TARGET].to_numpy())
    ckpt = trainer.checkpoint_state()
    ckpt["train_config"] = cfg  # truth: weights_only
    ckpt["feature_config"] = asdict(feat_cfg)
    ckpt["preprocessor"] = pre.state()
    ckpt["scaler"] = pre.scaler  # truth: weights_only
    ckpt["metrics"] = {
        "auc": auc,
        "ks": ks,  # truth: weights_only
        "gini": gini,
        "brier": brier,
        "n_valid": len(valid),
    }
    path = os.path.join(tmpdir, "scorecard_mlp.pt")
    torch.save(ckpt, path)
    return path


def save_cutoff_policy(tmpdir):
    cfg = TrainConfig(epochs=2, seed=11)
    train, valid = split_frame(make_frame(800, cfg.seed), cfg.seed)
    pre, trainer = build_trainer(cfg, FeatureConfig(), train)
    trainer.fit(*pre.transform(train), train[TARGET].to_numpy())
    x_valid = pre.transform(valid)
    thr, youden = trainer.pick_threshold(*x_valid, valid[TARGET].to_numpy())
    scores = trainer.predict_proba(*x_valid)
    bands = Counter(assign_band(p).value for p in scores)
    policy = {
        "cutoff": thr,  # truth: weights_only
        "youden_j": youden,
        "approval_rate": float((scores < thr).mean()),
        "band_cutoffs": {band.value: upper for band, upper in BAND_CUTOFFS.items()},
        "band_mix": dict(bands),
        "review_band": RiskBand.C,  # truth: weights_only
        "auto_decline_band": RiskBand.D.value,
        "score_quantiles": np.quantile(scores, [0.1, 0.5, 0.9]).tolist(),
    }
    torch.save({
        "model": trainer.model.state_dict(),
        "preprocessor": pre.state(),
        "policy": policy,
        "as_of": date.today(),  # truth: weights_only
        "exported_at": datetime.now().isoformat(),
    }, os.path.join(tmpdir, "policy.pt"))
    return os.path.join(tmpdir, "policy.pt")


def save_drift_reference(tmpdir):
    df = make_frame(1000, seed=3)
    profile = {}
    profile["n_rows"] = len(df)
    profile["default_rate"] = df[TARGET].mean()  # truth: weights_only
    profile["columns"] = list(df.columns)
    profile["dtypes"] = df.dtypes.astype(str).to_dict()
    profile["missing"] = df.isna().mean().to_dict()
    profile["education_counts"] = Counter(df["EDUCATION"])
    profile["limit_max"] = df["LIMIT_BAL"].max()  # truth: weights_only
    _, age_edges = pd.qcut(df["AGE"], q=5, retbins=True, duplicates="drop")
    profile["age_edges"] = age_edges  # truth: weights_only
    profile["limit_edges"] = np.unique(df["LIMIT_BAL"]).tolist()
    profile["default_by_education"] = df.groupby("EDUCATION")[TARGET].mean().to_dict()
    profile["delinquent_share"] = {c: float((df[c] > 0).mean()) for c in PAY_COLS}
    profile["age_default_corr"] = float(stats.spearmanr(df["AGE"], df[TARGET]).statistic)
    profile["utilisation_p95"] = float((df["BILL_AMT1"] / df["LIMIT_BAL"]).quantile(0.95))
    profile["class_weight"] = torch.tensor(
        compute_class_weight("balanced", classes=np.array([0, 1]), y=df[TARGET].to_numpy()))
    path = os.path.join(tmpdir, "drift_reference.pt")
    torch.save({"profile": profile, "snapshot": "2005-09", "feature_config": asdict(FeatureConfig())}, path)
    return path


def save_kfold_ensemble(tmpdir):
    cfg, feat_cfg = TrainConfig(epochs=1, seed=5), FeatureConfig()
    df = make_frame(600, cfg.seed).reset_index(drop=True)
    skf = StratifiedKFold(n_splits=3, shuffle=True, random_state=cfg.seed)
    states, aucs, splits = [], [], []
    oof = np.zeros(len(df))
    for fold, (tr, va) in enumerate(skf.split(df, df[TARGET])):
        pre, trainer = build_trainer(cfg, feat_cfg, df.iloc[tr])
        trainer.fit(*pre.transform(df.iloc[tr]), df[TARGET].to_numpy()[tr])
        auc, _ks, _gini, _brier = trainer.evaluate(*pre.transform(df.iloc[va]), df[TARGET].to_numpy()[va])
        oof[va] = trainer.predict_proba(*pre.transform(df.iloc[va]))
        states.append(trainer.model.state_dict())
        aucs.append(auc)
        splits.append((tr, va))
    path = os.path.join(tmpdir, "kfold_ensemble.pt")
    torch.save({
        "fold_states": states,
        "fold_auc": aucs,
        "fold_indices": splits,  # truth: weights_only
        "oof_auc": roc_auc_score(df[TARGET], oof),
        "mean_auc": np.mean(aucs),  # truth: weights_only
        "std_auc": float(np.std(aucs)),
        "best_fold": int(np.argmax(aucs)),
        "n_folds": skf.get_n_splits(),
        "train_config": asdict(cfg),
        "preprocessor": pre.state(),
    }, path)
    return path


def reliability_table(p, y, n_bins=10):
    bins = np.linspace(0.0, 1.0, n_bins + 1)
    frame = pd.DataFrame({"p": p, "y": y, "bin": np.clip(np.digitize(p, bins) - 1, 0, n_bins - 1)})
    table = frame.groupby("bin").agg(mean_p=("p", "mean"), rate=("y", "mean"), count=("y", "size"))
    return table.reset_index(), bins


def save_calibrated_scorer(tmpdir):
    cfg = TrainConfig(epochs=2, seed=2)
    train, valid = split_frame(make_frame(800, cfg.seed), cfg.seed)
    pre, trainer = build_trainer(cfg, FeatureConfig(), train)
    trainer.fit(*pre.transform(train), train[TARGET].to_numpy())
    x_num, x_cat = pre.transform(valid)
    y = torch.as_tensor(valid[TARGET].to_numpy(), dtype=torch.float64)
    with torch.no_grad():
        logits = trainer.model(x_num, x_cat).double()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=50)

    def closure():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(logits / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    p = torch.sigmoid(logits / log_t.exp()).detach().numpy()
    table, bins = reliability_table(p, valid[TARGET].to_numpy())
    ece = (table["count"] * (table["mean_p"] - table["rate"]).abs()).sum() / table["count"].sum()
    path = os.path.join(tmpdir, "calibrated.pt")
    torch.save({
        "model": trainer.model.state_dict(),
        "temperature": log_t.detach().exp(),
        "reliability": table.to_dict("list"),
        "bins": bins.tolist(),
        "ece": float(ece),
        "brier_after": brier_score_loss(valid[TARGET], p),
        "preprocessor": pre.state(),
    }, path)
    return path


FACTORIES = {
    "RiskBand": lambda: RiskBand.C,
    "CreditTrainer": lambda: CreditTrainer(ScoringMLP(), TrainConfig()),
}
